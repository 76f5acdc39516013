/**
 * Snapshot key rows packed into two flat arrays, so that a worker thread can
 * hand a few thousand rows to the main thread as one transfer, and the main
 * thread can walk them without an object per row:
 *
 *   bytes   key 1 (UTF-8), value 1, key 2, value 2, ...
 *   fields  per row: end of its key, end of its value (offsets into bytes),
 *           type code (+ ASCII_KEY when the key is ASCII), expiry (-1 for none)
 *
 * A row starts where the previous one's value ends. Float64 holds every
 * offset and every expiry (safe integers) exactly.
 */
import type { KeyType, SnapshotKeyRow } from './types.ts';

const FIELDS_PER_ROW = 4;
const TYPES: readonly KeyType[] = ['string', 'list', 'hash'];
const TYPE_CODES: Readonly<Record<KeyType, number>> = { string: 0, list: 1, hash: 2 };
/** Added to the type code of a key whose UTF-8 bytes are all ASCII: it decodes as latin1, the cheapest way. */
const ASCII_KEY = 4;
const NO_EXPIRY = -1;

/** One batch of rows; `bytes` and `fields` may be longer than the rows need. */
export interface PackedKeyRows {
  readonly rows: number;
  readonly bytes: Uint8Array;
  readonly fields: Float64Array;
}

/** Called once per row: `value` is a copy the callee may keep; keyBytes is the key's UTF-8 length. */
export type PackedKeyRowVisitor = (key: string, keyBytes: number, type: KeyType, value: Uint8Array, expiresAtMs: number | null) => void;

const encoder = new TextEncoder();

/** Packs rows into batches of about `targetBytes` (a larger row gets a batch of its own size) and at most `maxRows`. */
export class PackedKeyRowsWriter {
  private bytes: Uint8Array;
  private fields: Float64Array;
  private length = 0;
  private rows = 0;

  constructor(
    private readonly targetBytes: number,
    private readonly maxRows: number,
  ) {
    this.bytes = new Uint8Array(targetBytes);
    this.fields = new Float64Array(maxRows * FIELDS_PER_ROW);
  }

  /** Whether a row of this size would not fit in the current batch: take() it first. */
  wouldOverflow(row: SnapshotKeyRow): boolean {
    return this.rows > 0 && (this.rows === this.maxRows || this.length + row.key.length * 3 + row.value.length > this.bytes.length);
  }

  add(row: SnapshotKeyRow): void {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    const need = this.length + row.key.length * 3 + row.value.length;
    if (need > this.bytes.length) {
      const grown = new Uint8Array(Math.max(need, this.targetBytes));
      grown.set(this.bytes.subarray(0, this.length));
      this.bytes = grown;
    }
    const { written } = encoder.encodeInto(row.key, this.bytes.subarray(this.length));
    const keyEnd = this.length + written;
    this.bytes.set(row.value, keyEnd);
    this.length = keyEnd + row.value.length;
    const at = this.rows * FIELDS_PER_ROW;
    this.fields[at] = keyEnd;
    this.fields[at + 1] = this.length;
    this.fields[at + 2] = TYPE_CODES[row.type] + (written === row.key.length ? ASCII_KEY : 0);
    this.fields[at + 3] = row.expiresAtMs ?? NO_EXPIRY;
    this.rows++;
  }

  /** The rows added since the last take(), or null when there are none; the writer starts a new batch. */
  take(): PackedKeyRows | null {
    if (this.rows === 0) return null;
    const batch: PackedKeyRows = { rows: this.rows, bytes: this.bytes, fields: this.fields };
    // The batch's arrays are transferred away: the next batch needs arrays of its own.
    this.bytes = new Uint8Array(this.targetBytes);
    this.fields = new Float64Array(this.maxRows * FIELDS_PER_ROW);
    this.length = 0;
    this.rows = 0;
    return batch;
  }
}

/** Calls `visit` for each row of the batch, in order. */
export function forEachPackedKeyRow(batch: PackedKeyRows, visit: PackedKeyRowVisitor): void {
  const { rows, fields } = batch;
  const bytes = Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.byteLength);
  let start = 0;
  for (let i = 0, at = 0; i < rows; i++, at += FIELDS_PER_ROW) {
    const keyEnd = fields[at] as number;
    const valueEnd = fields[at + 1] as number;
    const code = fields[at + 2] as number;
    const expiry = fields[at + 3] as number;
    const key = bytes.toString(code >= ASCII_KEY ? 'latin1' : 'utf8', start, keyEnd);
    // A copy, not a view: a view would keep the whole batch alive for as long as any one of its values lives.
    const value = batch.bytes.slice(keyEnd, valueEnd);
    visit(key, keyEnd - start, TYPES[code & (ASCII_KEY - 1)] as KeyType, value, expiry === NO_EXPIRY ? null : expiry);
    start = valueEnd;
  }
}
