/**
 * Protocol buffers wire format, just what raft.proto needs: varints (uint64
 * held as safe integers, bool, enum), length-delimited strings, bytes and
 * sub-messages. Hand-written rather than generic (protobufjs) because Raft
 * traffic is the hot path: encoding writes straight from Message objects into
 * one exactly sized buffer, and decoding hands out entry data as views of the
 * received buffer instead of copies. test/unit/transport checks the result
 * against protobufjs reading raft.proto, so the .proto stays the contract.
 */
import { MalformedMessageError } from './errors.ts';

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LENGTH_DELIMITED = 2;
export const WIRE_FIXED32 = 5;

const TWO_POW_32 = 2 ** 32;
/** The high 32 bits of a safe integer are below 2^21. */
const SAFE_HIGH_LIMIT = 2 ** 21;

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** Bytes a varint of `n` (a safe non-negative integer) takes. */
export function varintSize(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x4000) return 2;
  if (n < 0x200000) return 3;
  if (n < 0x10000000) return 4;
  let size = 4;
  for (let rest = Math.floor(n / 0x10000000); rest > 0; rest = Math.floor(rest / 0x80)) size++;
  return size;
}

/** Bytes a non-default uint64/enum field takes, tag (field < 16) included; 0 when n is 0 (proto3 omits it). */
export function uintFieldSize(n: number): number {
  return n === 0 ? 0 : 1 + varintSize(n);
}

/** Bytes a length-delimited field of `length` bytes takes, tag (field < 16) included. */
export function lengthFieldSize(length: number): number {
  return 1 + varintSize(length) + length;
}

/** UTF-8 length of a string; ids are short and mostly ASCII, which this counts without a call into C++. */
export function utf8Length(s: string): number {
  const n = s.length;
  for (let i = 0; i < n; i++) {
    if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  }
  return n;
}

function assertUint(n: number, what: string): void {
  if (!(Number.isSafeInteger(n) && n >= 0)) throw new RangeError(`${what} must be a safe non-negative integer to encode as uint64 (got ${n})`);
}

/** Writes into a buffer sized in advance; every field number here is below 16, so a tag is one byte. */
export class Writer {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  static alloc(size: number): Writer {
    return new Writer(Buffer.allocUnsafe(size));
  }

  varint(n: number): void {
    const buf = this.buf;
    let pos = this.pos;
    if (n <= 0x7fffffff) {
      while (n > 0x7f) {
        buf[pos++] = (n & 0x7f) | 0x80;
        n >>>= 7;
      }
    } else {
      while (n > 0x7f) {
        buf[pos++] = (n % 0x80) | 0x80;
        n = Math.floor(n / 0x80);
      }
    }
    buf[pos++] = n;
    this.pos = pos;
  }

  tag(field: number, wireType: number): void {
    this.buf[this.pos++] = (field << 3) | wireType;
  }

  /** A uint64 field, omitted when 0 (the proto3 default). */
  uint(field: number, n: number, what: string): void {
    if (n === 0) return;
    assertUint(n, what);
    this.tag(field, WIRE_VARINT);
    this.varint(n);
  }

  bool(field: number, value: boolean): void {
    if (!value) return;
    this.tag(field, WIRE_VARINT);
    this.buf[this.pos++] = 1;
  }

  /** The header of a length-delimited field; the caller writes `length` bytes next. */
  lengthDelimited(field: number, length: number): void {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.varint(length);
  }

  /** A string field of known UTF-8 length, omitted when empty. */
  string(field: number, s: string, byteLength: number): void {
    if (byteLength === 0) return;
    this.lengthDelimited(field, byteLength);
    this.pos += this.buf.write(s, this.pos, byteLength, 'utf8');
  }

  /** A string field that is written even when empty (a repeated string element). */
  repeatedString(field: number, s: string, byteLength: number): void {
    this.lengthDelimited(field, byteLength);
    if (byteLength > 0) this.pos += this.buf.write(s, this.pos, byteLength, 'utf8');
  }

  /** A bytes field, omitted when empty. */
  bytes(field: number, data: Uint8Array): void {
    if (data.length === 0) return;
    this.lengthDelimited(field, data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  /** The buffer, checked to be exactly full: a size computed wrong would otherwise send garbage. */
  finish(): Buffer {
    if (this.pos !== this.buf.length) throw new RangeError(`encoder wrote ${this.pos} bytes into a buffer sized ${this.buf.length}`);
    return this.buf;
  }
}

/** Reads protobuf fields from a Buffer; sub-messages are read in place between `pos` and an end. */
export class Reader {
  pos: number;
  readonly buf: Buffer;

  constructor(bytes: Uint8Array, pos = 0) {
    // A Buffer view over the same memory: no copy, and Buffer's utf8 slicing.
    this.buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = pos;
  }

  get length(): number {
    return this.buf.length;
  }

  /** A varint of up to 32 bits (tags, lengths, enums, bools). */
  uint32(what: string): number {
    const n = this.uint64(what);
    if (n > 0xffffffff) throw new MalformedMessageError(`${what}: ${n} does not fit 32 bits`);
    return n;
  }

  /** A uint64 varint as a number, refused unless it is a safe integer. */
  uint64(what: string): number {
    const buf = this.buf;
    let pos = this.pos;
    const end = buf.length;
    if (pos >= end) throw this.truncated(what);
    let b = buf[pos++] as number;
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let lo = b & 0x7f;
    let hi = 0;
    for (let shift = 7; shift < 28; shift += 7) {
      if (pos >= end) throw this.truncated(what);
      b = buf[pos++] as number;
      lo |= (b & 0x7f) << shift;
      if (b < 0x80) {
        this.pos = pos;
        return lo;
      }
    }
    if (pos >= end) throw this.truncated(what);
    b = buf[pos++] as number;
    lo |= (b & 0x0f) << 28;
    hi = (b & 0x7f) >> 4;
    if (b >= 0x80) {
      for (let shift = 3; ; shift += 7) {
        if (shift > 31) throw new MalformedMessageError(`${what}: a varint longer than 10 bytes`);
        if (pos >= end) throw this.truncated(what);
        b = buf[pos++] as number;
        hi |= (b & 0x7f) << shift;
        if (b < 0x80) break;
      }
    }
    this.pos = pos;
    hi >>>= 0;
    if (hi >= SAFE_HIGH_LIMIT) throw new MalformedMessageError(`${what}: a value of 2^53 or more, beyond what this node can hold exactly`);
    return hi * TWO_POW_32 + (lo >>> 0);
  }

  bool(what: string): boolean {
    return this.uint64(what) !== 0;
  }

  /** The length of a length-delimited field, checked to fit in `end`; returns the field's end. */
  lengthDelimitedEnd(what: string, end: number): number {
    const length = this.uint64(what);
    const fieldEnd = this.pos + length;
    if (fieldEnd > end) throw new MalformedMessageError(`${what}: ${length} bytes claimed, ${end - this.pos} left`);
    return fieldEnd;
  }

  string(what: string, end: number): string {
    const fieldEnd = this.lengthDelimitedEnd(what, end);
    const s = this.buf.toString('utf8', this.pos, fieldEnd);
    this.pos = fieldEnd;
    return s;
  }

  /** A bytes field as a view of the received buffer (not a copy). */
  bytes(what: string, end: number): Uint8Array {
    const fieldEnd = this.lengthDelimitedEnd(what, end);
    const view = fieldEnd === this.pos ? EMPTY_BYTES : this.buf.subarray(this.pos, fieldEnd);
    this.pos = fieldEnd;
    return view;
  }

  /** Skips a field of an unknown number (a newer sender's addition). */
  skip(wireType: number, what: string, end: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        for (let i = 0; ; i++) {
          if (i >= 10) throw new MalformedMessageError(`${what}: a varint longer than 10 bytes`);
          if (this.pos >= end) throw this.truncated(what);
          if ((this.buf[this.pos++] as number) < 0x80) break;
        }
        break;
      case WIRE_FIXED64:
        this.advance(8, what, end);
        break;
      case WIRE_LENGTH_DELIMITED:
        this.pos = this.lengthDelimitedEnd(what, end);
        break;
      case WIRE_FIXED32:
        this.advance(4, what, end);
        break;
      default:
        throw new MalformedMessageError(`${what}: unsupported wire type ${wireType}`);
    }
  }

  private advance(n: number, what: string, end: number): void {
    if (this.pos + n > end) throw this.truncated(what);
    this.pos += n;
  }

  private truncated(what: string): MalformedMessageError {
    return new MalformedMessageError(`${what}: the message ends in the middle of a field`);
  }
}
