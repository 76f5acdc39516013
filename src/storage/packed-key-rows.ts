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
/** A row's slots among its FIELDS_PER_ROW: where its key ends, where its value ends, its type code, its expiry. */
export const KEY_END_SLOT = 0;
export const VALUE_END_SLOT = 1;
export const TYPE_SLOT = 2;
export const EXPIRY_SLOT = 3;
export const KEY_TYPE_CODES: Readonly<Record<KeyType, number>> = { string: 0, list: 1, hash: 2 };
export const KEY_TYPES: readonly KeyType[] = ['string', 'list', 'hash'];
/** The expiry field of a row without one (a real expiry is never negative). */
export const NO_EXPIRY = -1;

/** One batch of rows; the arrays may be longer than the rows need. */
export interface PackedKeyRows {
  readonly rows: number;
  readonly keys: Uint8Array;
  readonly values: Uint8Array;
  readonly fields: Float64Array;
}

/**
 * Called once per row with where its fields are in the batch: the key is
 * keys[keyStart, keyEnd) (UTF-8), the value values[valueStart, valueEnd).
 */
export type PackedRowSpanVisitor = (keys: Buffer, keyStart: number, keyEnd: number, typeCode: number, valueStart: number, valueEnd: number, expiresAtMs: number) => void;

/** Calls `visit` for each row of the batch, in order, with its fields' places (no copies). */
export function forEachPackedRowSpan(batch: PackedKeyRows, visit: PackedRowSpanVisitor): void {
  const { rows, fields } = batch;
  const keys = Buffer.from(batch.keys.buffer, batch.keys.byteOffset, batch.keys.byteLength);
  let keyStart = 0;
  let valueStart = 0;
  for (let i = 0, at = 0; i < rows; i++, at += FIELDS_PER_ROW) {
    const keyEnd = fields[at + KEY_END_SLOT] as number;
    const valueEnd = fields[at + VALUE_END_SLOT] as number;
    visit(keys, keyStart, keyEnd, fields[at + TYPE_SLOT] as number, valueStart, valueEnd, fields[at + EXPIRY_SLOT] as number);
    keyStart = keyEnd;
    valueStart = valueEnd;
  }
}

/** Called once per row; keyBytes is the key's UTF-8 length. `value` is a view of the batch's buffer, which is never reused: the callee may keep it. */
export type PackedKeyRowVisitor = (key: string, keyBytes: number, type: KeyType, value: Uint8Array, expiresAtMs: number | null) => void;

/** Calls `visit` for each row of the batch, in order. */
export function forEachPackedKeyRow(batch: PackedKeyRows, visit: PackedKeyRowVisitor): void {
  const { values } = batch;
  forEachPackedRowSpan(batch, (keys, keyStart, keyEnd, typeCode, valueStart, valueEnd, expiresAtMs) => {
    // A view, not a copy: the state counts the batch's values still stored and copies them out
    // once half are gone (src/state/value-slabs.ts), so survivors never hold it for long.
    const value = new Uint8Array(values.buffer, values.byteOffset + valueStart, valueEnd - valueStart);
    visit(keys.toString('utf8', keyStart, keyEnd), keyEnd - keyStart, KEY_TYPES[typeCode] as KeyType, value, expiresAtMs === NO_EXPIRY ? null : expiresAtMs);
  });
}

/** Rows per batch a PackedKeyRowsBuilder makes at most. */
export const MAX_BATCH_ROWS = 4096;
/** Bytes of keys and values past which a PackedKeyRowsBuilder's batch is full. */
export const MAX_BATCH_BYTES = 4 << 20;
const INITIAL_KEY_BYTES = 64 << 10;
const INITIAL_VALUE_BYTES = 256 << 10;

/**
 * Packs rows into batches, the other direction of forEachPackedKeyRow: the
 * main thread packs a snapshot's rows for the writer thread. Each batch's
 * arrays have buffers of their own, never reused: the next batch starts with
 * new ones, sized by the last. Keys and values are in SharedArrayBuffers,
 * posted without a transfer: a transferred ArrayBuffer still counts as
 * external memory in the main thread until its next GC, and a whole 1M-key
 * snapshot's 300 MB of batches started several major GCs of the full heap
 * there (see src/state/long-lived-buffers.ts). Fields are transferred.
 */
export class PackedKeyRowsBuilder {
  private keys: Buffer;
  private values: Buffer;
  private fields = new Float64Array(MAX_BATCH_ROWS * FIELDS_PER_ROW);
  private rows = 0;
  private keyEnd = 0;
  private valueEnd = 0;

  constructor() {
    this.keys = sharedBuffer(INITIAL_KEY_BYTES);
    this.values = sharedBuffer(INITIAL_VALUE_BYTES);
  }

  get rowCount(): number {
    return this.rows;
  }

  /** The batch has as many rows or bytes as one should hold: take() it. */
  get full(): boolean {
    return this.rows >= MAX_BATCH_ROWS || this.keyEnd + this.valueEnd >= MAX_BATCH_BYTES;
  }

  /** Adds a row; `expiresAtMs` is NO_EXPIRY for none. Call take() first when full. */
  add(key: string, typeCode: number, value: Uint8Array, expiresAtMs: number): void {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit; write() would stop short of a full buffer.
    if (this.keyEnd + key.length * 3 > this.keys.length) this.keys = grown(this.keys, this.keyEnd, this.keyEnd + key.length * 3);
    if (this.valueEnd + value.length > this.values.length) this.values = grown(this.values, this.valueEnd, this.valueEnd + value.length);
    this.keyEnd += this.keys.write(key, this.keyEnd, 'utf8');
    this.values.set(value, this.valueEnd);
    this.valueEnd += value.length;
    const at = this.rows * FIELDS_PER_ROW;
    this.fields[at + KEY_END_SLOT] = this.keyEnd;
    this.fields[at + VALUE_END_SLOT] = this.valueEnd;
    this.fields[at + TYPE_SLOT] = typeCode;
    this.fields[at + EXPIRY_SLOT] = expiresAtMs;
    this.rows++;
  }

  /** The rows added since the last take(), as a batch whose arrays are its own. */
  take(): PackedKeyRows {
    const batch: PackedKeyRows = { rows: this.rows, keys: this.keys, values: this.values, fields: this.fields };
    this.keys = sharedBuffer(Math.max(INITIAL_KEY_BYTES, this.keyEnd));
    this.values = sharedBuffer(Math.max(INITIAL_VALUE_BYTES, this.valueEnd));
    this.fields = new Float64Array(MAX_BATCH_ROWS * FIELDS_PER_ROW);
    this.rows = 0;
    this.keyEnd = 0;
    this.valueEnd = 0;
    return batch;
  }
}

/**
 * The batch with its keys and values copied into one SharedArrayBuffer, for
 * the snapshot reader thread to post without a transfer. The restored values
 * stay views of it (the state's live data), and a transferred ArrayBuffer
 * would count as new external memory in the main thread: 64 MB of it starts
 * a major GC there, three or four of them in a 1M-key restore. V8 does not
 * count shared bytes (see src/state/long-lived-buffers.ts). The copy, one
 * memcpy per batch, costs the reader far less than those GCs cost the main
 * thread (restore-prof: 1M keys restored in 2.1–2.4 s wall, against
 * 2.2–2.75 s with transfers).
 */
export function sharedCopy(batch: PackedKeyRows): PackedKeyRows {
  const bytes = sharedBuffer(batch.keys.length + batch.values.length);
  bytes.set(batch.keys, 0);
  bytes.set(batch.values, batch.keys.length);
  return { rows: batch.rows, keys: bytes.subarray(0, batch.keys.length), values: bytes.subarray(batch.keys.length), fields: batch.fields };
}

/** A Buffer over a SharedArrayBuffer of `bytes` (zeroed: fresh pages from the allocator, cheap). */
function sharedBuffer(bytes: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(bytes));
}

/** A buffer of at least `needed` bytes (at least twice `buffer`'s) holding `buffer`'s first `used` bytes; a buffer of its own. */
function grown(buffer: Buffer, used: number, needed: number): Buffer {
  const next = sharedBuffer(Math.max(needed, buffer.length * 2));
  buffer.copy(next, 0, 0, used);
  return next;
}
