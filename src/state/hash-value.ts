/**
 * A hash value: field -> byte string, in insertion order (HGETALL answers in
 * that order, and snapshots keep it, so every replica answers alike), plus
 * its accounted bytes and an order-independent content hash: the sum of the
 * fields' hashes, updated in O(1) per field.
 *
 * An overwrite does not hash its value: it marks the entry pending, and
 * settle() hashes each pending entry once, from its stored bytes, when the
 * sum is wanted (digest(), a fingerprint, a squeeze, a clone). A field
 * written many times between digests is hashed once; the hash was the
 * larger half of an overwrite's cost. Until settled, h0/h1 and the pending
 * entries' pair hashes are those of their earlier values, consistently, so
 * the key's digest part computed from h0/h1 stays in step with the sum it
 * was added to (keyspace.ts queues the key and settles it before the digest
 * is read).
 *
 * Layout, for HSet of an existing field (the hot write) to cost one Map
 * lookup and a copy of the value:
 * - `index`: field -> entry number. A JS Map, not a table of our own keyed by
 *   our field hash: the Map uses the hash V8 caches in the string (field
 *   names mostly come from the codec's intern cache), where ours would have
 *   to be computed per lookup (measured: Map.get 17-20 ns, a probe with a
 *   cheap FNV-style hash of the name 22-25 ns, for 100 fields).
 * - entries in insertion order, as parallel arrays: `names`, `values` and
 *   STRIDE int32s each in `ints`: the field's part of its hash (so an
 *   overwrite hashes only the value), the pair's hash, the value's length
 *   and its arena handle. A delete leaves a hole (length -1), squeezed out
 *   when holes make up half the entries.
 * Small values live in the arena, written while they are hashed; larger ones
 * as their own Uint8Arrays in `values`, which for small ones caches HGet's
 * copy instead.
 */
import { SMALL_VALUE_BYTES } from './arena.ts';
import type { Arena } from './arena.ts';
import type { ByteWriter } from './bytes.ts';
import { finish, fmix, lanes, lowbias } from './hash.ts';
import { utf8Length } from './bytes.ts';
import { HASH_FIELD_OVERHEAD_BYTES } from './memory.ts';

const FIELD_SEED = 0x48415348; // 'HASH'
/** Added to the position seed per word: odd, so no two positions of a field share a seed. */
const POSITION_STEP = 0x9e3779b9 | 0;

/** Accounted bytes of one field (see memory.ts). */
export function fieldBytes(field: string, valueLength: number): number {
  return utf8Length(field) + valueLength + HASH_FIELD_OVERHEAD_BYTES;
}

/**
 * Hash of one (field, value) pair, in two steps: fieldPart (the field's
 * words, kept per entry) and valueHash (the value's words and the finish).
 * Words: the field's length, its UTF-16 code units two per word, then the
 * value's bytes four per word; the value's length goes in at the finish, so
 * the split is unambiguous.
 *
 * Each word, xored with a seed for its position, goes through a
 * full-avalanche bijection per lane (fmix, lowbias) and the results are
 * summed. Unlike a chain (each step waits for the previous one's multiplies)
 * the words are independent, so the CPU overlaps them, and the field's words
 * can be summed once and kept. The mixers must avalanche fully: with a
 * cheaper one whose output moves by a fixed amount when an input bit flips
 * (Murmur3's per-word k-mix does, for the top bit), changes in two words
 * cancel in the sum; a third of all two-bit changes of a 16-byte value did.
 * model.test.ts ('digest') checks every one- and two-bit change of a value
 * and of a field name.
 */
const part = new Int32Array(3);

/** The field's words summed per lane into part[0], part[1]; part[2] is the position seed its value's words continue from. */
function fieldPart(field: string): void {
  const fieldLength = field.length;
  let p = FIELD_SEED;
  let h0 = fmix(fieldLength ^ p);
  let h1 = lowbias(fieldLength ^ p);
  let i = 0;
  for (; i + 1 < fieldLength; i += 2) {
    p = (p + POSITION_STEP) | 0;
    const k = (field.charCodeAt(i) | (field.charCodeAt(i + 1) << 16)) ^ p;
    h0 = (h0 + fmix(k)) | 0;
    h1 = (h1 + lowbias(k)) | 0;
  }
  if (i < fieldLength) {
    p = (p + POSITION_STEP) | 0;
    const k = field.charCodeAt(i) ^ p;
    h0 = (h0 + fmix(k)) | 0;
    h1 = (h1 + lowbias(k)) | 0;
  }
  part[0] = h0;
  part[1] = h1;
  part[2] = p;
}

/** The pair's hash into `lanes`, from the field's part (h0, h1, p) and the value: bytes [start, start + length) of buf. */
function valueHash(h0: number, h1: number, p: number, buf: Uint8Array, start: number, length: number): void {
  const whole = start + (length & ~3);
  let j = start;
  for (; j < whole; j += 4) {
    p = (p + POSITION_STEP) | 0;
    const k = ((buf[j] as number) | ((buf[j + 1] as number) << 8) | ((buf[j + 2] as number) << 16) | ((buf[j + 3] as number) << 24)) ^ p;
    h0 = (h0 + fmix(k)) | 0;
    h1 = (h1 + lowbias(k)) | 0;
  }
  const rest = length & 3;
  if (rest !== 0) {
    let k = buf[j] as number;
    if (rest > 1) k |= (buf[j + 1] as number) << 8;
    if (rest > 2) k |= (buf[j + 2] as number) << 16;
    p = (p + POSITION_STEP) | 0;
    k ^= p;
    h0 = (h0 + fmix(k)) | 0;
    h1 = (h1 + lowbias(k)) | 0;
  }
  finish(h0 ^ length, h1 ^ length);
}

// An entry's int32s in `ints`.
const STRIDE = 8;
const STRIDE_SHIFT = 3;
/** The field's part of the pair hash, per lane, and the position seed after its words. */
const FIELD0 = 0;
const FIELD1 = 1;
const FIELD_POSITION = 2;
/** The pair's hash, per lane. */
const PAIR0 = 3;
const PAIR1 = 4;
/** The value's length; HOLE for a deleted entry. */
const LENGTH = 5;
/** The value's arena handle, or LARGE when `values` holds it. */
const HANDLE = 6;
/** 1 while the entry's value was written after its pair hash was computed (in `pending`), else 0. */
const PENDING = 7;
const HOLE = -1;
const LARGE = -1;
const INITIAL_ENTRIES = 4;
/** Holes are squeezed out once they are half the entries, and there are at least this many entries. */
const SQUEEZE_MIN_ENTRIES = 32;

export class HashValue {
  /** Field -> entry number. */
  private readonly index = new Map<string, number>();
  /** Per entry: the field ('' for a hole). */
  private names: string[] = [];
  /** Per entry: a large value itself; for a small one, HGet's copy of it, null until read after each write. Never written into, so safe to share. */
  private values: (Uint8Array | null)[] = [];
  /** Per entry, STRIDE int32s (see FIELD0...HANDLE). */
  private ints: Int32Array;
  /** Entries in use, holes included: names.length === values.length === end. */
  private end = 0;
  /**
   * pending[0, pendingCount): entry numbers whose PENDING mark was set since
   * the last settle(); an entry deleted since is skipped. A count, not
   * `length = 0`, which reallocates the array on every settle.
   */
  private pending: number[] = [];
  private pendingCount = 0;
  /** On its keyspace's queue of keys to settle (keyspace.ts). */
  queued = false;
  /** Accounted bytes of the fields. */
  bytes = 0;
  /** Sum of the field hashes per lane (int32 wrap-around). */
  h0 = 0;
  h1 = 0;

  constructor(
    private readonly arena: Arena,
    capacity = INITIAL_ENTRIES,
  ) {
    this.ints = new Int32Array(Math.max(capacity, 1) * STRIDE);
  }

  get size(): number {
    return this.index.size;
  }

  /** Fields, under the name ListValue also answers. */
  get count(): number {
    return this.index.size;
  }

  readonly isHash = true;

  /** The field's entry number, -1 when it is not set. Valid until the next add() or delete(). */
  find(field: string): number {
    return this.index.get(field) ?? -1;
  }

  /** The field's value (a copy when it lives in the arena, kept for the next read). */
  get(field: string): Uint8Array | undefined {
    const e = this.index.get(field);
    if (e === undefined) return undefined;
    const held = this.values[e];
    if (held !== null && held !== undefined) return held;
    const copy = this.arena.read(this.ints[(e << STRIDE_SHIFT) + HANDLE] as number);
    this.values[e] = copy;
    return copy;
  }

  valueLength(field: string): number | undefined {
    const e = this.index.get(field);
    return e === undefined ? undefined : this.lengthAt(e);
  }

  /** Length of the value of entry `e` (from find()). */
  lengthAt(e: number): number {
    return this.ints[(e << STRIDE_SHIFT) + LENGTH] as number;
  }

  /** Sets a field; true when it is new. */
  set(field: string, value: Uint8Array): boolean {
    const e = this.index.get(field);
    if (e === undefined) {
      this.add(field, value);
      return true;
    }
    this.overwrite(e, value);
    return false;
  }

  /** Replaces the value of entry `e` (from find()); its pair hash waits for settle(). */
  overwrite(e: number, value: Uint8Array): void {
    const ints = this.ints;
    const at = e << STRIDE_SHIFT;
    const length = value.length;
    const handle = ints[at + HANDLE] as number;
    // The common overwrite, kept small for V8 to inline: a value of the same length in the arena keeps its slot, class and length byte.
    if (length === ints[at + LENGTH] && handle !== LARGE) {
      this.arena.write(handle, value);
      if (this.values[e] !== null) this.values[e] = null;
    } else {
      this.overwriteElsewhere(e, at, value, handle);
    }
    if (ints[at + PENDING] === 0) this.markPending(e, at);
  }

  /** overwrite() of a value of another length, or a large one: the slot may change. */
  private overwriteElsewhere(e: number, at: number, value: Uint8Array, oldHandle: number): void {
    const ints = this.ints;
    const length = value.length;
    const oldLength = ints[at + LENGTH] as number;
    this.bytes += length - oldLength;
    let handle = oldHandle;
    if (length <= SMALL_VALUE_BYTES) {
      if (handle === LARGE) handle = this.arena.reserve(length);
      else if (length !== oldLength) handle = this.arena.resize(handle, length);
      // A memmove (Arena.write): cheaper than a byte loop for a whole array.
      this.arena.write(handle, value);
      if (this.values[e] !== null) this.values[e] = null;
    } else {
      if (handle !== LARGE) this.arena.release(handle);
      handle = LARGE;
      this.values[e] = value;
    }
    ints[at + LENGTH] = length;
    ints[at + HANDLE] = handle;
  }

  /** Lists entry `e` (at `at` in ints) for settle(). */
  private markPending(e: number, at: number): void {
    // Only deletes and adds again between settles list an entry twice: bound the list by the entries.
    if (this.pendingCount > this.end) this.settle();
    this.ints[at + PENDING] = 1;
    this.pending[this.pendingCount++] = e;
  }

  /** Whether some pair hash waits for settle(): h0/h1 are not yet the content's. */
  get unsettled(): boolean {
    return this.pendingCount > 0;
  }

  /** Hashes the entries overwritten since the last call, bringing h0/h1 up to date. */
  settle(): void {
    const pending = this.pending;
    const count = this.pendingCount;
    if (count === 0) return;
    const ints = this.ints;
    for (let i = 0; i < count; i++) {
      const at = (pending[i] as number) << STRIDE_SHIFT;
      // Cleared by a delete, or already done (an entry deleted, added again and overwritten is listed twice).
      if (ints[at + PENDING] === 0) continue;
      ints[at + PENDING] = 0;
      this.h0 = (this.h0 - (ints[at + PAIR0] as number)) | 0;
      this.h1 = (this.h1 - (ints[at + PAIR1] as number)) | 0;
      this.hashIn(at, pending[i] as number);
    }
    this.pendingCount = 0;
  }

  /** Adds a field that is not set (see find()). */
  add(field: string, value: Uint8Array): void {
    if (this.end << STRIDE_SHIFT === this.ints.length) this.makeRoom();
    const e = this.end++;
    const at = e << STRIDE_SHIFT;
    const ints = this.ints;
    fieldPart(field);
    ints[at + FIELD0] = part[0] as number;
    ints[at + FIELD1] = part[1] as number;
    ints[at + FIELD_POSITION] = part[2] as number;
    const length = value.length;
    const small = length <= SMALL_VALUE_BYTES;
    const handle = small ? this.arena.reserve(length) : LARGE;
    if (small) this.arena.write(handle, value);
    ints[at + LENGTH] = length;
    ints[at + HANDLE] = handle;
    ints[at + PENDING] = 0;
    this.names.push(field);
    this.values.push(small ? null : value);
    this.index.set(field, e);
    this.bytes += fieldBytes(field, length);
    this.hashIn(at, e);
  }

  /** Deletes a field; true when it existed. */
  delete(field: string): boolean {
    const e = this.index.get(field);
    if (e === undefined) return false;
    this.index.delete(field);
    const ints = this.ints;
    const at = e << STRIDE_SHIFT;
    const handle = ints[at + HANDLE] as number;
    if (handle !== LARGE) this.arena.release(handle);
    this.bytes -= fieldBytes(field, ints[at + LENGTH] as number);
    this.h0 = (this.h0 - (ints[at + PAIR0] as number)) | 0;
    this.h1 = (this.h1 - (ints[at + PAIR1] as number)) | 0;
    ints[at + LENGTH] = HOLE;
    // The sum lost the pair hash it counted; nothing is left to settle.
    ints[at + PENDING] = 0;
    this.names[e] = '';
    this.values[e] = null;
    // Holes at the end cost nothing to drop; elsewhere they wait for a squeeze.
    while (this.end > 0 && ints[((this.end - 1) << STRIDE_SHIFT) + LENGTH] === HOLE) {
      this.end--;
      this.names.pop();
      this.values.pop();
    }
    const holes = this.end - this.index.size;
    if (this.end >= SQUEEZE_MIN_ENTRIES && holes * 2 >= this.end) this.squeeze();
    return true;
  }

  /** (field, value) pairs in insertion order, values copied out of the arena. */
  toArray(): [string, Uint8Array][] {
    const out = new Array<[string, Uint8Array]>(this.index.size);
    let i = 0;
    for (let e = 0; e < this.end; e++) {
      const at = e << STRIDE_SHIFT;
      const length = this.ints[at + LENGTH] as number;
      if (length === HOLE) continue;
      const handle = this.ints[at + HANDLE] as number;
      out[i++] = [this.names[e] as string, handle === LARGE ? (this.values[e] as Uint8Array) : (this.values[e] ?? this.arena.read(handle))];
    }
    return out;
  }

  /** Writes each field as a length-prefixed string and its value as length-prefixed bytes. */
  writeFields(w: ByteWriter): void {
    for (let e = 0; e < this.end; e++) {
      const at = e << STRIDE_SHIFT;
      const length = this.ints[at + LENGTH] as number;
      if (length === HOLE) continue;
      w.string(this.names[e] as string);
      const handle = this.ints[at + HANDLE] as number;
      if (handle === LARGE) w.bytes(this.values[e] as Uint8Array);
      else w.bytesRange(this.arena.slab(handle), this.arena.dataStart(handle), length);
    }
  }

  /** An independent copy (its own arena slots), without holes, settled (this one is left as it is). */
  clone(): HashValue {
    const copy = new HashValue(this.arena, this.index.size);
    const to = copy.ints;
    let n = 0;
    for (let e = 0; e < this.end; e++) {
      const at = e << STRIDE_SHIFT;
      const length = this.ints[at + LENGTH] as number;
      if (length === HOLE) continue;
      const dst = n << STRIDE_SHIFT;
      to.set(this.ints.subarray(at, at + STRIDE), dst);
      const handle = this.ints[at + HANDLE] as number;
      if (handle !== LARGE) to[dst + HANDLE] = this.arena.store(this.arena.slab(handle), this.arena.dataStart(handle), length);
      const field = this.names[e] as string;
      copy.names.push(field);
      copy.values.push(this.values[e] ?? null);
      if (to[dst + PENDING] === 1) copy.pending[copy.pendingCount++] = n;
      copy.index.set(field, n++);
    }
    copy.end = n;
    copy.bytes = this.bytes;
    copy.h0 = this.h0;
    copy.h1 = this.h1;
    copy.settle();
    return copy;
  }

  /** Gives the arena slots back; the hash must not be used afterwards (nor settled: it leaves its keyspace's queue). */
  dispose(): void {
    this.queued = false;
    for (let e = 0; e < this.end; e++) {
      const at = e << STRIDE_SHIFT;
      const handle = this.ints[at + HANDLE] as number;
      if (this.ints[at + LENGTH] !== HOLE && handle !== LARGE) this.arena.release(handle);
    }
  }

  /** Entries in use, holes included (for tests of the squeeze). */
  get entrySlots(): number {
    return this.end;
  }

  /** Hashes the stored value of entry `e` (at `at` in ints) with its field's part, and adds the pair's hash to the sum. */
  private hashIn(at: number, e: number): void {
    const ints = this.ints;
    const f0 = ints[at + FIELD0] as number;
    const f1 = ints[at + FIELD1] as number;
    const p = ints[at + FIELD_POSITION] as number;
    const handle = ints[at + HANDLE] as number;
    if (handle === LARGE) {
      const value = this.values[e] as Uint8Array;
      valueHash(f0, f1, p, value, 0, value.length);
    } else {
      valueHash(f0, f1, p, this.arena.slab(handle), this.arena.dataStart(handle), ints[at + LENGTH] as number);
    }
    const n0 = lanes[0] as number;
    const n1 = lanes[1] as number;
    ints[at + PAIR0] = n0;
    ints[at + PAIR1] = n1;
    this.h0 = (this.h0 + n0) | 0;
    this.h1 = (this.h1 + n1) | 0;
  }

  /** Room for one more entry: squeezes out holes when they are a quarter of the entries or more, else doubles. */
  private makeRoom(): void {
    const holes = this.end - this.index.size;
    if (holes * 4 >= this.end && holes > 0) {
      this.squeeze();
      return;
    }
    const grown = new Int32Array(this.ints.length * 2);
    grown.set(this.ints);
    this.ints = grown;
  }

  /** Moves the entries down over the holes, keeping their order, and renumbers them in the index. */
  private squeeze(): void {
    // Pending entry numbers are about to change.
    this.settle();
    const ints = this.ints;
    const names = this.names;
    const values = this.values;
    let n = 0;
    for (let e = 0; e < this.end; e++) {
      const at = e << STRIDE_SHIFT;
      if (ints[at + LENGTH] === HOLE) continue;
      if (n !== e) {
        ints.copyWithin(n << STRIDE_SHIFT, at, at + STRIDE);
        const field = names[e] as string;
        names[n] = field;
        values[n] = values[e] ?? null;
        this.index.set(field, n);
      }
      n++;
    }
    this.end = n;
    names.length = n;
    values.length = n;
  }
}
