/**
 * Snapshot key rows packed into three flat arrays, so that a worker thread
 * can hand a few thousand rows to the main thread as one transfer, and the
 * main thread can walk them without an object per row:
 *
 *   keys    every row's key (UTF-8), one after the other
 *   values  every row's value, one after the other
 *   fields  per row: end of its key in `keys`, end of its value in `values`,
 *           type code (KEY_TYPE_CODES), expiry (NO_EXPIRY for none)
 *
 * A row's key and value start where the previous row's end. Float64 holds
 * every offset and every expiry (safe integers) exactly.
 */
import type { KeyType } from './types.ts';

export const FIELDS_PER_ROW = 4;
export const KEY_TYPE_CODES: Readonly<Record<KeyType, number>> = { string: 0, list: 1, hash: 2 };
const KEY_TYPES: readonly KeyType[] = ['string', 'list', 'hash'];
/** The expiry field of a row without one (a real expiry is never negative). */
export const NO_EXPIRY = -1;

/** One batch of rows; the arrays may be longer than the rows need. */
export interface PackedKeyRows {
  readonly rows: number;
  readonly keys: Uint8Array;
  readonly values: Uint8Array;
  readonly fields: Float64Array;
}

/** Called once per row: `value` is a copy the callee may keep; keyBytes is the key's UTF-8 length. */
export type PackedKeyRowVisitor = (key: string, keyBytes: number, type: KeyType, value: Uint8Array, expiresAtMs: number | null) => void;

/** Calls `visit` for each row of the batch, in order. */
export function forEachPackedKeyRow(batch: PackedKeyRows, visit: PackedKeyRowVisitor): void {
  const { rows, fields, values } = batch;
  const keys = Buffer.from(batch.keys.buffer, batch.keys.byteOffset, batch.keys.byteLength);
  let keyStart = 0;
  let valueStart = 0;
  for (let i = 0, at = 0; i < rows; i++, at += FIELDS_PER_ROW) {
    const keyEnd = fields[at] as number;
    const valueEnd = fields[at + 1] as number;
    const expiry = fields[at + 3] as number;
    // A copy, not a view: a view would keep the whole batch alive for as long as any one of its values lives.
    const value = values.slice(valueStart, valueEnd);
    visit(keys.toString('utf8', keyStart, keyEnd), keyEnd - keyStart, KEY_TYPES[fields[at + 2] as number] as KeyType, value, expiry === NO_EXPIRY ? null : expiry);
    keyStart = keyEnd;
    valueStart = valueEnd;
  }
}
