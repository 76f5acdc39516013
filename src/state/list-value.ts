/**
 * A list value: a deque of byte strings plus what the state needs to keep in
 * O(1) per operation, its accounted bytes and its content hash.
 *
 * The hash is polynomial, per lane: H = sum of e_i * B^i mod 2^32 over items
 * i = 0..n-1, with e_i the item's (well-mixed) hash and B odd. Pushing or
 * popping at either end and replacing one item each update H without
 * visiting the rest, and H depends only on the items, not on how the list was
 * built, which the digest needs (same state by different paths => same
 * digest). Modulo 2^32 rather than a prime because Math.imul is one
 * instruction where a float `%` is a library call; since B is odd, changing
 * one item always changes H, and random differences cancel with chance 2^-32
 * per lane, which is what a divergence check needs (it is not a defence
 * against crafted collisions).
 */
import { Deque } from './list-deque.ts';
import { B0, B0_INV, B1, B1_INV, hashBytes, lanes, powImul } from './hash.ts';
import { LIST_ITEM_OVERHEAD_BYTES } from './memory.ts';

const ITEM_SEED = 0x4c495354; // 'LIST'

export class ListValue {
  readonly items: Deque<Uint8Array>;
  /** Accounted bytes of the items (see memory.ts). */
  bytes = 0;
  /** H per lane. */
  h0 = 0;
  h1 = 0;
  /** B^length per lane, so a push at the back knows its item's weight. */
  private w0 = 1;
  private w1 = 1;

  constructor(capacity?: number) {
    this.items = new Deque<Uint8Array>(capacity);
  }

  static of(values: Iterable<Uint8Array>): ListValue {
    const list = new ListValue();
    for (const value of values) list.pushBack(value);
    return list;
  }

  get length(): number {
    return this.items.length;
  }

  pushBack(value: Uint8Array): void {
    this.items.pushBack(value);
    this.bytes += value.length + LIST_ITEM_OVERHEAD_BYTES;
    hashBytes(value, ITEM_SEED);
    this.h0 = (this.h0 + Math.imul(lanes[0] as number, this.w0)) | 0;
    this.h1 = (this.h1 + Math.imul(lanes[1] as number, this.w1)) | 0;
    this.w0 = Math.imul(this.w0, B0);
    this.w1 = Math.imul(this.w1, B1);
  }

  pushFront(value: Uint8Array): void {
    this.items.pushFront(value);
    this.bytes += value.length + LIST_ITEM_OVERHEAD_BYTES;
    hashBytes(value, ITEM_SEED);
    // Every existing item moves up one place: H' = e + B * H.
    this.h0 = ((lanes[0] as number) + Math.imul(this.h0, B0)) | 0;
    this.h1 = ((lanes[1] as number) + Math.imul(this.h1, B1)) | 0;
    this.w0 = Math.imul(this.w0, B0);
    this.w1 = Math.imul(this.w1, B1);
  }

  popFront(): Uint8Array | undefined {
    const value = this.items.popFront();
    if (value === undefined) return undefined;
    this.bytes -= value.length + LIST_ITEM_OVERHEAD_BYTES;
    hashBytes(value, ITEM_SEED);
    // H' = (H - e) / B.
    this.h0 = Math.imul(this.h0 - (lanes[0] as number), B0_INV);
    this.h1 = Math.imul(this.h1 - (lanes[1] as number), B1_INV);
    this.w0 = Math.imul(this.w0, B0_INV);
    this.w1 = Math.imul(this.w1, B1_INV);
    return value;
  }

  popBack(): Uint8Array | undefined {
    const value = this.items.popBack();
    if (value === undefined) return undefined;
    this.bytes -= value.length + LIST_ITEM_OVERHEAD_BYTES;
    hashBytes(value, ITEM_SEED);
    this.w0 = Math.imul(this.w0, B0_INV);
    this.w1 = Math.imul(this.w1, B1_INV);
    this.h0 = (this.h0 - Math.imul(lanes[0] as number, this.w0)) | 0;
    this.h1 = (this.h1 - Math.imul(lanes[1] as number, this.w1)) | 0;
    return value;
  }

  /** Replaces the item at 0 <= index < length and returns the old one. */
  set(index: number, value: Uint8Array): Uint8Array {
    const old = this.items.at(index);
    if (old === undefined) throw new RangeError(`list index ${index} outside [0, ${this.items.length})`);
    this.items.set(index, value);
    this.bytes += value.length - old.length;
    hashBytes(old, ITEM_SEED);
    const o0 = lanes[0] as number;
    const o1 = lanes[1] as number;
    hashBytes(value, ITEM_SEED);
    // O(log index) for B^index: still far below the cost of rehashing the list.
    this.h0 = (this.h0 + Math.imul((lanes[0] as number) - o0, powImul(B0, index))) | 0;
    this.h1 = (this.h1 + Math.imul((lanes[1] as number) - o1, powImul(B1, index))) | 0;
    return old;
  }

  clone(): ListValue {
    const copy = new ListValue(this.items.length);
    for (const item of this.items) copy.items.pushBack(item);
    copy.bytes = this.bytes;
    copy.h0 = this.h0;
    copy.h1 = this.h1;
    copy.w0 = this.w0;
    copy.w1 = this.w1;
    return copy;
  }
}
