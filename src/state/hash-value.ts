/**
 * A hash value: field -> byte string, in insertion order (HGETALL answers in
 * that order, and snapshots keep it, so every replica answers alike), plus
 * its accounted bytes and an order-independent content hash: the sum of the
 * fields' hashes, updated in O(1) per field. Each field's hash is kept beside
 * its value, so overwriting or deleting a field does not hash the old one again.
 */
import { finish, hashBytes, hashString, lanes, step0, step1 } from './hash.ts';
import { utf8Length } from './bytes.ts';
import { HASH_FIELD_OVERHEAD_BYTES } from './memory.ts';

const FIELD_SEED = 0x48415348; // 'HASH'
const FIELD_VALUE_SEED = 0x46564c55; // 'FVLU'

/** Accounted bytes of one field (see memory.ts). */
export function fieldBytes(field: string, value: Uint8Array): number {
  return utf8Length(field) + value.length + HASH_FIELD_OVERHEAD_BYTES;
}

/** Hash of one (field, value) pair into `lanes`. */
function hashField(field: string, value: Uint8Array): void {
  hashString(field, FIELD_SEED);
  const a0 = lanes[0] as number;
  const a1 = lanes[1] as number;
  hashBytes(value, FIELD_VALUE_SEED);
  finish(step0(a0, lanes[0] as number), step1(a1, lanes[1] as number));
}

class FieldSlot {
  constructor(
    public value: Uint8Array,
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

  static of(entries: Iterable<readonly [string, Uint8Array]>): HashValue {
    const hash = new HashValue();
    for (const [field, value] of entries) hash.set(field, value);
    return hash;
  }

  get size(): number {
    return this.slots.size;
  }

  get(field: string): Uint8Array | undefined {
    return this.slots.get(field)?.value;
  }

  /** Sets a field; true when it is new. */
  set(field: string, value: Uint8Array): boolean {
    hashField(field, value);
    const n0 = lanes[0] as number;
    const n1 = lanes[1] as number;
    this.h0 = (this.h0 + n0) | 0;
    this.h1 = (this.h1 + n1) | 0;
    const slot = this.slots.get(field);
    if (slot !== undefined) {
      this.bytes += value.length - slot.value.length;
      this.h0 = (this.h0 - slot.h0) | 0;
      this.h1 = (this.h1 - slot.h1) | 0;
      slot.value = value;
      slot.h0 = n0;
      slot.h1 = n1;
      return false;
    }
    this.slots.set(field, new FieldSlot(value, n0, n1));
    this.bytes += fieldBytes(field, value);
    return true;
  }

  /** Deletes a field; true when it existed. */
  delete(field: string): boolean {
    const slot = this.slots.get(field);
    if (slot === undefined) return false;
    this.slots.delete(field);
    this.bytes -= fieldBytes(field, slot.value);
    this.h0 = (this.h0 - slot.h0) | 0;
    this.h1 = (this.h1 - slot.h1) | 0;
    return true;
  }

  /** (field, value) pairs in insertion order. */
  *entries(): IterableIterator<[string, Uint8Array]> {
    for (const [field, slot] of this.slots) yield [field, slot.value];
  }

  /** entries() as an array, without a generator in the way. */
  toArray(): [string, Uint8Array][] {
    const out = new Array<[string, Uint8Array]>(this.slots.size);
    let i = 0;
    for (const [field, slot] of this.slots) out[i++] = [field, slot.value];
    return out;
  }

  clone(): HashValue {
    const copy = new HashValue();
    for (const [field, slot] of this.slots) copy.slots.set(field, new FieldSlot(slot.value, slot.h0, slot.h1));
    copy.bytes = this.bytes;
    copy.h0 = this.h0;
    copy.h1 = this.h1;
    return copy;
  }
}
