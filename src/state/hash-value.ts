/**
 * A hash value: field -> byte string, in insertion order (HGETALL answers in
 * that order, and snapshots keep it, so every replica answers alike), plus
 * its accounted bytes and an order-independent content hash: the sum of the
 * fields' hashes, updated in O(1) per field. Each field's hash is kept beside
 * its value, so overwriting or deleting a field does not hash the old one
 * again. Small values live in the arena, larger ones as Uint8Arrays.
 */
import { SMALL_VALUE_BYTES } from './arena.ts';
import type { Arena } from './arena.ts';
import type { ByteWriter } from './bytes.ts';
import { finish, fmix, lanes, lowbias } from './hash.ts';
import { utf8Length } from './bytes.ts';
import { HASH_FIELD_OVERHEAD_BYTES } from './memory.ts';

const FIELD_SEED = 0x48415348; // 'HASH'

/** Accounted bytes of one field (see memory.ts). */
export function fieldBytes(field: string, valueLength: number): number {
  return utf8Length(field) + valueLength + HASH_FIELD_OVERHEAD_BYTES;
}

/** Added to the position seed per word: odd, so no two positions of a field share a seed. */
const POSITION_STEP = 0x9e3779b9 | 0;

/**
 * Hash of one (field, value) pair into `lanes`. Words: the field's length,
 * its UTF-16 code units two per word, then the value's bytes four per word;
 * the value's length goes in at the finish, so the split is unambiguous.
 *
 * Each word, xored with a seed for its position, goes through a
 * full-avalanche bijection per lane (fmix, lowbias) and the results are
 * summed. Unlike a chain (each step waits for the previous one's multiplies)
 * the words are independent, so the CPU overlaps them. The mixers must
 * avalanche fully: with a cheaper one whose output moves by a fixed amount
 * when an input bit flips (Murmur3's per-word k-mix does, for the top bit),
 * changes in two words cancel in the sum; a third of all two-bit changes of
 * a 16-byte value did. model.test.ts ('digest') checks every one- and
 * two-bit change of a value and of a field name.
 */
function hashField(field: string, value: Uint8Array): void {
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
  const length = value.length;
  const whole = length & ~3;
  let j = 0;
  for (; j < whole; j += 4) {
    p = (p + POSITION_STEP) | 0;
    const k = ((value[j] as number) | ((value[j + 1] as number) << 8) | ((value[j + 2] as number) << 16) | ((value[j + 3] as number) << 24)) ^ p;
    h0 = (h0 + fmix(k)) | 0;
    h1 = (h1 + lowbias(k)) | 0;
  }
  if (j < length) {
    let k = value[j] as number;
    if (j + 1 < length) k |= (value[j + 1] as number) << 8;
    if (j + 2 < length) k |= (value[j + 2] as number) << 16;
    p = (p + POSITION_STEP) | 0;
    k ^= p;
    h0 = (h0 + fmix(k)) | 0;
    h1 = (h1 + lowbias(k)) | 0;
  }
  finish(h0 ^ length, h1 ^ length);
}

class FieldSlot {
  /**
   * A copy of an arena value made by the first HGet since the field was last
   * written, handed to later HGets too: reads of a hot field allocate nothing,
   * and fields nobody reads stay compact. Never written into, so safe to share.
   */
  copy: Uint8Array | null = null;

  constructor(
    /** An arena handle, or a large value's own bytes. */
    public value: number | Uint8Array,
    public length: number,
    public h0: number,
    public h1: number,
  ) {}
}

export class HashValue {
  private readonly slots = new Map<string, FieldSlot>();
  /** Accounted bytes of the fields. */
  bytes = 0;
  /** Sum of the field hashes per lane (int32 wrap-around). */
  h0 = 0;
  h1 = 0;

  constructor(private readonly arena: Arena) {}

  get size(): number {
    return this.slots.size;
  }

  /** Fields, under the name ListValue also answers. */
  get count(): number {
    return this.slots.size;
  }

  readonly isHash = true;

  /** The field's value (a copy when it lives in the arena, kept for the next read). */
  get(field: string): Uint8Array | undefined {
    const slot = this.slots.get(field);
    if (slot === undefined) return undefined;
    const v = slot.value;
    if (typeof v !== 'number') return v;
    if (slot.copy === null) slot.copy = this.arena.read(v);
    return slot.copy;
  }

  valueLength(field: string): number | undefined {
    return this.slots.get(field)?.length;
  }

  /** Sets a field; true when it is new. */
  set(field: string, value: Uint8Array): boolean {
    hashField(field, value);
    const n0 = lanes[0] as number;
    const n1 = lanes[1] as number;
    this.h0 = (this.h0 + n0) | 0;
    this.h1 = (this.h1 + n1) | 0;
    const length = value.length;
    const slot = this.slots.get(field);
    if (slot !== undefined) {
      this.bytes += length - slot.length;
      this.h0 = (this.h0 - slot.h0) | 0;
      this.h1 = (this.h1 - slot.h1) | 0;
      const old = slot.value;
      if (typeof old === 'number' && length <= SMALL_VALUE_BYTES) {
        slot.value = this.arena.overwrite(old, value, 0, length);
      } else {
        if (typeof old === 'number') this.arena.release(old);
        slot.value = length <= SMALL_VALUE_BYTES ? this.arena.store(value, 0, length) : value;
      }
      slot.length = length;
      slot.copy = null;
      slot.h0 = n0;
      slot.h1 = n1;
      return false;
    }
    const stored = length <= SMALL_VALUE_BYTES ? this.arena.store(value, 0, length) : value;
    this.slots.set(field, new FieldSlot(stored, length, n0, n1));
    this.bytes += fieldBytes(field, length);
    return true;
  }

  /** Deletes a field; true when it existed. */
  delete(field: string): boolean {
    const slot = this.slots.get(field);
    if (slot === undefined) return false;
    this.slots.delete(field);
    if (typeof slot.value === 'number') this.arena.release(slot.value);
    this.bytes -= fieldBytes(field, slot.length);
    this.h0 = (this.h0 - slot.h0) | 0;
    this.h1 = (this.h1 - slot.h1) | 0;
    return true;
  }

  /** (field, value) pairs in insertion order, values copied out of the arena. */
  toArray(): [string, Uint8Array][] {
    const out = new Array<[string, Uint8Array]>(this.slots.size);
    let i = 0;
    for (const [field, slot] of this.slots) out[i++] = [field, this.read(slot)];
    return out;
  }

  /** Writes each field as a length-prefixed string and its value as length-prefixed bytes. */
  writeFields(w: ByteWriter): void {
    for (const [field, slot] of this.slots) {
      w.string(field);
      const v = slot.value;
      if (typeof v === 'number') w.bytesRange(this.arena.slab(v), this.arena.dataStart(v), slot.length);
      else w.bytes(v);
    }
  }

  /** An independent copy (its own arena slots). */
  clone(): HashValue {
    const copy = new HashValue(this.arena);
    for (const [field, slot] of this.slots) {
      const v = slot.value;
      const value = typeof v === 'number' ? this.arena.store(this.arena.slab(v), this.arena.dataStart(v), slot.length) : v;
      copy.slots.set(field, new FieldSlot(value, slot.length, slot.h0, slot.h1));
    }
    copy.bytes = this.bytes;
    copy.h0 = this.h0;
    copy.h1 = this.h1;
    return copy;
  }

  /** Gives the arena slots back; the hash must not be used afterwards. */
  dispose(): void {
    for (const slot of this.slots.values()) if (typeof slot.value === 'number') this.arena.release(slot.value);
  }

  private read(slot: FieldSlot): Uint8Array {
    return typeof slot.value === 'number' ? (slot.copy ?? this.arena.read(slot.value)) : slot.value;
  }
}
