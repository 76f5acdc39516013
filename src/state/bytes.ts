/**
 * Binary primitives for the codecs: a growable writer and a bounds-checked
 * reader of unsigned LEB128 varints, zigzag signed varints, length-prefixed
 * bytes and UTF-8 strings. Numbers stay safe integers end to end.
 */
import { CodecError, InvalidArgumentError } from './errors.ts';
import { longLivedBuffers } from './long-lived-buffers.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Values up to this size are copied out of a decoded buffer: V8 keeps them on its heap, which is cheap. */
const SMALL_COPY_BYTES = 64;
/** A buffer this much larger than the bytes it was handed for is shared with other data: copy out of it. */
const SHARED_BUFFER_SLACK_BYTES = 64;

/** Largest magnitude a signed varint carries: zigzag doubles it and the result must stay safe. */
export const MAX_SIGNED = 2 ** 52 - 1;

/**
 * UTF-8 length of a string, or -1 when it holds a lone surrogate: such a
 * string has no UTF-8 form, and TextEncoder would silently change it.
 */
export function utf8Length(s: string): number {
  let n = 0;
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (c > 0xdbff || d < 0xdc00 || d > 0xdfff) return -1;
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Log entries up to POOLED_MAX_BYTES share pooled buffers of POOL_BYTES: with
 * a buffer each, a leader's million entries were a million ArrayBuffers that
 * died together when a snapshot compacted the log, and V8 then spent 0.8–0.9 s
 * of one scavenge freeing their backing stores. A pooled buffer lives until
 * its last entry is compacted away and the string values read from it are
 * in slabs (ByteReader.stringValue), so it is a long-lived buffer
 * (long-lived-buffers.ts).
 */
const POOL_BYTES = 64 << 10;
const POOLED_MAX_BYTES = 4 << 10;
let pool: Uint8Array = new Uint8Array(0);
let poolUsed = 0;

function poolSlice(length: number): Uint8Array {
  if (poolUsed + length > pool.length) {
    pool = longLivedBuffers().allocate(POOL_BYTES);
    poolUsed = 0;
  }
  const at = poolUsed;
  poolUsed += length;
  return new Uint8Array(pool.buffer, at, length);
}

/**
 * A copy of `bytes` that may live long (a follower's received AppendEntries,
 * whose entries stay in the log as views of it): in a pooled buffer when
 * small, else in a long-lived buffer of its own.
 */
export function longLivedCopy(bytes: Uint8Array): Uint8Array {
  const out = bytes.length <= POOLED_MAX_BYTES ? poolSlice(bytes.length) : longLivedBuffers().allocate(bytes.length);
  out.set(bytes);
  return out;
}

export class ByteWriter {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initialBytes = 256) {
    this.buf = new Uint8Array(initialBytes);
  }

  /** Starts over, keeping the buffer: one writer serves many encodes. */
  reset(): void {
    this.pos = 0;
  }

  /** The bytes written so far, in a buffer of their own (safe to keep after the next reset). */
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  /** finish() for a log entry: small ones in a pooled buffer shared with other entries (see POOL_BYTES). */
  finishPooled(): Uint8Array {
    const length = this.pos;
    if (length > POOLED_MAX_BYTES) return this.finish();
    const out = poolSlice(length);
    out.set(this.buf.subarray(0, length));
    return out;
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  u8(value: number): void {
    this.ensure(1);
    this.buf[this.pos++] = value;
  }

  /** An unsigned safe integer as LEB128. */
  varint(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new InvalidArgumentError(`${value} is not an unsigned safe integer`);
    this.ensure(8);
    const buf = this.buf;
    while (value >= 0x80) {
      buf[this.pos++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    buf[this.pos++] = value;
  }

  /** A signed integer (|value| <= 2^52 - 1) zigzag-mapped, so small negatives stay short. */
  zigzag(value: number): void {
    if (!Number.isSafeInteger(value) || Math.abs(value) > MAX_SIGNED) {
      throw new InvalidArgumentError(`${value} is outside the signed integer range (±${MAX_SIGNED})`);
    }
    this.varint(value >= 0 ? value * 2 : -value * 2 - 1);
  }

  bytes(value: Uint8Array): void {
    this.varint(value.length);
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }

  /** Length-prefixed bytes [start, start + length) of src. */
  bytesRange(src: Uint8Array, start: number, length: number): void {
    this.varint(length);
    this.ensure(length);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < length; i++) buf[p++] = src[start + i] as number;
    this.pos = p;
  }

  /** A length-prefixed UTF-8 string; a lone surrogate is refused rather than silently replaced. */
  string(value: string): void {
    const len = utf8Length(value);
    if (len < 0) throw new InvalidArgumentError('string is not valid Unicode (lone surrogate)');
    this.varint(len);
    this.ensure(len);
    const buf = this.buf;
    if (len === value.length) {
      let p = this.pos;
      for (let i = 0; i < len; i++) buf[p++] = value.charCodeAt(i);
    } else {
      encoder.encodeInto(value, buf.subarray(this.pos, this.pos + len));
    }
    this.pos += len;
  }
}

export class ByteReader {
  private pos: number;
  private end: number;
  /**
   * Whether decoded byte strings may be views of `buf` (see bytes()); -1 until
   * first needed, because reading `.buffer` of a small on-heap typed array
   * makes V8 move it off the heap, which costs more than a whole decode.
   */
  private share = -1;

  constructor(private buf: Uint8Array) {
    this.pos = 0;
    this.end = buf.length;
  }

  /** Starts reading another buffer: one reader serves many decodes without allocating. */
  reset(buf: Uint8Array): void {
    this.buf = buf;
    this.pos = 0;
    this.end = buf.length;
    this.share = -1;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  get offset(): number {
    return this.pos;
  }

  /** Throws unless every byte was consumed: trailing bytes mean a writer this reader does not understand. */
  expectEnd(what: string): void {
    if (this.pos !== this.end) throw new CodecError(`${what}: ${this.end - this.pos} unexpected trailing bytes`);
  }

  u8(): number {
    if (this.pos >= this.end) throw new CodecError('truncated input');
    return this.buf[this.pos++] as number;
  }

  varint(): number {
    const buf = this.buf;
    if (this.pos >= this.end) throw new CodecError('truncated varint');
    let b = buf[this.pos++] as number;
    if (b < 0x80) return b;
    let result = b & 0x7f;
    let scale = 0x80;
    for (;;) {
      if (this.pos >= this.end) throw new CodecError('truncated varint');
      b = buf[this.pos++] as number;
      result += (b & 0x7f) * scale;
      if (b < 0x80) break;
      scale *= 0x80;
      if (scale > 2 ** 49) throw new CodecError('varint longer than a safe integer');
    }
    if (!Number.isSafeInteger(result)) throw new CodecError('varint larger than a safe integer');
    return result;
  }

  zigzag(): number {
    const z = this.varint();
    const value = z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    if (Math.abs(value) > MAX_SIGNED) throw new CodecError('signed varint out of range');
    return value;
  }

  /** A length that must fit in what is left: guards allocations against corrupt lengths. */
  length(itemMinBytes = 1): number {
    const n = this.varint();
    if (n * itemMinBytes > this.end - this.pos) throw new CodecError(`length ${n} exceeds the ${this.end - this.pos} bytes left`);
    return n;
  }

  /**
   * bytes() for a string value (Set's): the state copies one that lasts into
   * a slab (value-slabs.ts), so its view may also share a buffer of up to
   * POOL_BYTES, such as a pooled log entry's: a copy would cost an
   * ArrayBuffer per write.
   */
  stringValue(): Uint8Array {
    const len = this.length();
    const start = this.pos;
    this.pos += len;
    const buf = this.buf;
    if (len > SMALL_COPY_BYTES && buf.buffer.byteLength <= Math.max(POOL_BYTES, buf.byteLength + SHARED_BUFFER_SLACK_BYTES)) {
      return new Uint8Array(buf.buffer, buf.byteOffset + start, len);
    }
    return this.copy(start, len);
  }

  /**
   * A length-prefixed byte string. Large values are views of the input when
   * the input owns its buffer (no copy), and copies otherwise, so a small
   * value never pins a large shared buffer.
   */
  bytes(): Uint8Array {
    const len = this.length();
    const start = this.pos;
    this.pos += len;
    const buf = this.buf;
    if (len > SMALL_COPY_BYTES) {
      if (this.share < 0) this.share = buf.buffer.byteLength <= buf.byteLength + SHARED_BUFFER_SLACK_BYTES ? 1 : 0;
      if (this.share === 1) return new Uint8Array(buf.buffer, buf.byteOffset + start, len);
    }
    return this.copy(start, len);
  }

  private copy(start: number, len: number): Uint8Array {
    const buf = this.buf;
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) out[i] = buf[start + i] as number;
    return out;
  }

  string(): string {
    const len = this.length();
    const start = this.pos;
    this.pos += len;
    if (len <= INTERN_MAX_LENGTH) {
      const s = internAscii(this.buf, start, len);
      if (s !== null) return s;
    }
    return decodeUtf8(this.buf.subarray(start, start + len));
  }
}

/**
 * Short ASCII strings (most keys and field names) go through a small
 * direct-mapped cache of recently decoded strings: a hit skips building a new
 * string, and returns one whose hash V8 has already computed, which makes the
 * Map lookup that follows cheaper too. Purely a speed-up: same string either way.
 */
const INTERN_MAX_LENGTH = 32;
const INTERN_SLOTS = 8192;
const internCache = new Array<string>(INTERN_SLOTS).fill('');

function internAscii(buf: Uint8Array, start: number, len: number): string | null {
  const end = start + len;
  let h = len;
  for (let i = start; i < end; i++) {
    const c = buf[i] as number;
    if (c >= 0x80) return null;
    h = Math.imul(h ^ c, 0x01000193);
  }
  const slot = (h ^ (h >>> 15)) & (INTERN_SLOTS - 1);
  const cached = internCache[slot] as string;
  if (cached.length === len) {
    let same = true;
    for (let i = 0; i < len; i++) {
      if (cached.charCodeAt(i) !== buf[start + i]) {
        same = false;
        break;
      }
    }
    if (same) return cached;
  }
  // Four characters per call: far fewer intermediate strings than one at a time.
  let s = '';
  let i = start;
  for (; i + 4 <= end; i += 4) {
    s += String.fromCharCode(buf[i] as number, buf[i + 1] as number, buf[i + 2] as number, buf[i + 3] as number);
  }
  for (; i < end; i++) s += String.fromCharCode(buf[i] as number);
  internCache[slot] = s;
  return s;
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return decoder.decode(bytes);
  } catch (error) {
    throw new CodecError('string is not valid UTF-8', { cause: error });
  }
}
