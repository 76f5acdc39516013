/**
 * CRC-32 (IEEE 802.3, the zlib/gzip polynomial) over stored records.
 *
 * node:zlib has a native crc32 from Node 20.15 / 22.2; package.json allows
 * Node >= 20.12, so a table-driven version computes the same values when it
 * is missing. Both accept a running value, so a record is checksummed field
 * by field without concatenating its bytes.
 */
import * as zlib from 'node:zlib';

const TABLE_COUNT = 8;
const TABLES: readonly Uint32Array[] = buildTables();

function buildTables(): Uint32Array[] {
  const tables = Array.from({ length: TABLE_COUNT }, () => new Uint32Array(256));
  const first = tables[0] as Uint32Array;
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    first[n] = c >>> 0;
  }
  // Slicing-by-8: table t maps a byte that is t positions further back.
  for (let t = 1; t < TABLE_COUNT; t++) {
    const prev = tables[t - 1] as Uint32Array;
    const cur = tables[t] as Uint32Array;
    for (let n = 0; n < 256; n++) {
      const p = prev[n] as number;
      cur[n] = ((p >>> 8) ^ (first[p & 0xff] as number)) >>> 0;
    }
  }
  return tables;
}

/** The portable implementation; exported so tests can check it against node:zlib. */
export function crc32Portable(data: Uint8Array, value = 0): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
  ];
  let crc = ~value >>> 0;
  let i = 0;
  const end8 = data.length - (data.length % 8);
  // Indexes below are in bounds by construction; `as number` only tells the compiler so.
  for (; i < end8; i += 8) {
    const lo = (crc ^ ((data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24))) >>> 0;
    crc =
      (t7[lo & 0xff] as number) ^
      (t6[(lo >>> 8) & 0xff] as number) ^
      (t5[(lo >>> 16) & 0xff] as number) ^
      (t4[lo >>> 24] as number) ^
      (t3[data[i + 4] as number] as number) ^
      (t2[data[i + 5] as number] as number) ^
      (t1[data[i + 6] as number] as number) ^
      (t0[data[i + 7] as number] as number);
  }
  for (; i < data.length; i++) crc = (t0[(crc ^ (data[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}

type Crc32 = (data: Uint8Array, value?: number) => number;

// zlib.crc32 returns 0, not `value`, for an empty buffer with no backing memory (as SQLite's
// empty BLOBs come back): the CRC of nothing is the running value, so skip the call.
const native: Crc32 | undefined =
  typeof zlib.crc32 === 'function' ? (data, value = 0) => (data.length === 0 ? value : zlib.crc32(data, value)) : undefined;

/** Whether the native node:zlib crc32 is in use (reported by the benchmark). */
export const nativeCrc32 = native !== undefined;

/** CRC-32 of `data`, continuing from `value` (the CRC of what came before). */
export const crc32: Crc32 = native ?? crc32Portable;

/** Byte spans up to this long are fed to FieldCrc byte by byte; longer ones go to crc32 (a native call costs ~150 ns). */
const INLINE_SPAN_BYTES = 64;

/**
 * The CRC of fields as FieldEncoder encodes them (same bytes, same value),
 * computed as the fields are fed, with no buffer: for records checksummed in bulk
 * (a snapshot's million rows), where FieldEncoder's copies and its crc32
 * call cost more than the table steps over a short key and a few numbers.
 */
export class FieldCrc {
  /** The register, inverted as crc32 keeps it, as an int32. */
  private register = -1;
  private readonly table = TABLES[0] as Uint32Array;

  /** Starts over, continuing from `value` (the CRC of what came before). */
  reset(value = 0): this {
    this.register = ~value;
    return this;
  }

  u8(value: number): this {
    const r = this.register;
    this.register = (this.table[(r ^ value) & 0xff] as number) ^ (r >>> 8);
    return this;
  }

  u32(value: number): this {
    return this.u8(value >>> 24)
      .u8((value >>> 16) & 0xff)
      .u8((value >>> 8) & 0xff)
      .u8(value & 0xff);
  }

  /** A non-negative safe integer as 8 big-endian bytes. */
  u53(value: number): this {
    return this.u32(Math.floor(value / 0x1_0000_0000)).u32(value >>> 0);
  }

  /** Bytes [start, end) of `src` as their length, then the bytes (FieldEncoder.bytes). */
  bytes(src: Uint8Array, start: number, end: number): this {
    this.u32(end - start);
    if (end - start > INLINE_SPAN_BYTES) {
      this.register = ~crc32(src.subarray(start, end), ~this.register >>> 0);
      return this;
    }
    const table = this.table;
    let r = this.register;
    for (let i = start; i < end; i++) r = (table[(r ^ (src[i] as number)) & 0xff] as number) ^ (r >>> 8);
    this.register = r;
    return this;
  }

  /** The CRC of what was fed since reset(). */
  value(): number {
    return ~this.register >>> 0;
  }
}

/**
 * Encodes a record's fields into a reused buffer, so that checksumming a
 * record costs one or two CRC calls and allocates nothing on the hot path.
 * Strings and byte strings are length-prefixed, which keeps ('ab', 'c') and
 * ('a', 'bc') apart.
 */
export class FieldEncoder {
  private buffer: Buffer;
  private view: DataView;
  private length = 0;
  private readonly utf8 = new TextEncoder();

  constructor(capacity = 256) {
    this.buffer = Buffer.alloc(capacity);
    this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
  }

  reset(): this {
    this.length = 0;
    return this;
  }

  u8(value: number): this {
    this.reserve(1);
    this.view.setUint8(this.length, value);
    this.length += 1;
    return this;
  }

  u32(value: number): this {
    this.reserve(4);
    this.view.setUint32(this.length, value);
    this.length += 4;
    return this;
  }

  /** A non-negative safe integer as 8 big-endian bytes. */
  u53(value: number): this {
    this.reserve(8);
    this.view.setUint32(this.length, Math.floor(value / 0x1_0000_0000));
    this.view.setUint32(this.length + 4, value >>> 0);
    this.length += 8;
    return this;
  }

  /** A string as its UTF-8 byte length, then its bytes. */
  string(value: string): this {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    this.reserve(4 + value.length * 3);
    const { written } = this.utf8.encodeInto(value, this.buffer.subarray(this.length + 4));
    this.view.setUint32(this.length, written);
    this.length += 4 + written;
    return this;
  }

  /** Bytes [start, end) of `src` as their length, then the bytes: a string's UTF-8 gives what string() gives. */
  bytes(src: Uint8Array, start: number, end: number): this {
    const length = end - start;
    this.reserve(4 + length);
    this.view.setUint32(this.length, length);
    this.buffer.set(src.subarray(start, end), this.length + 4);
    this.length += 4 + length;
    return this;
  }

  /** CRC of the encoded fields, continuing from `value`. */
  crc(value = 0): number {
    return crc32(this.buffer.subarray(0, this.length), value);
  }

  private reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    const grown = Buffer.alloc(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
    this.view = new DataView(grown.buffer, grown.byteOffset, grown.byteLength);
  }
}
