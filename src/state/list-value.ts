/**
 * A list value: a deque of byte strings plus what the state needs to keep in
 * O(1) per operation, its accounted bytes and its content hash.
 *
 * The hash is polynomial, per lane modulo a prime P: H = sum of e_i * B^i over
 * items i = 0..n-1, with e_i the item's hash. Pushing or popping at either end
 * and replacing one item each update H without visiting the rest, and H
 * depends only on the items, not on how the list was built, which the digest
 * needs (same state by different paths => same digest).
 */
import { Deque } from './list-deque.ts';
import { B0, B0_INV, B1, B1_INV, hashBytes, lanes, mulmod, P0, P1, powmod } from './hash.ts';
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
    const e0 = (lanes[0] as number) >>> 0;
    const e1 = (lanes[1] as number) >>> 0;
    this.h0 = (this.h0 + mulmod(e0 % P0, this.w0, P0)) % P0;
    this.h1 = (this.h1 + mulmod(e1 % P1, this.w1, P1)) % P1;
    this.w0 = mulmod(this.w0, B0, P0);
    this.w1 = mulmod(this.w1, B1, P1);
  }

  pushFront(value: Uint8Array): void {
    this.items.pushFront(value);
    this.bytes += value.length + LIST_ITEM_OVERHEAD_BYTES;
    hashBytes(value, ITEM_SEED);
    const e0 = (lanes[0] as number) >>> 0;
    const e1 = (lanes[1] as number) >>> 0;
    // Every existing item moves up one place: H' = e + B * H.
    this.h0 = ((e0 % P0) + mulmod(this.h0, B0, P0)) % P0;
    this.h1 = ((e1 % P1) + mulmod(this.h1, B1, P1)) % P1;
    this.w0 = mulmod(this.w0, B0, P0);
    this.w1 = mulmod(this.w1, B1, P1);
  }

  popFront(): Uint8Array | undefined {
    const value = this.items.popFront();
    if (value === undefined) return undefined;
    this.bytes -= value.length + LIST_ITEM_OVERHEAD_BYTES;
    hashBytes(value, ITEM_SEED);
    const e0 = ((lanes[0] as number) >>> 0) % P0;
    const e1 = ((lanes[1] as number) >>> 0) % P1;
    // H' = (H - e) / B.
    this.h0 = mulmod((this.h0 - e0 + P0) % P0, B0_INV, P0);
    this.h1 = mulmod((this.h1 - e1 + P1) % P1, B1_INV, P1);
    this.w0 = mulmod(this.w0, B0_INV, P0);
    this.w1 = mulmod(this.w1, B1_INV, P1);
    return value;
  }

  popBack(): Uint8Array | undefined {
    const value = this.items.popBack();
    if (value === undefined) return undefined;
    this.bytes -= value.length + LIST_ITEM_OVERHEAD_BYTES;
    hashBytes(value, ITEM_SEED);
    const e0 = ((lanes[0] as number) >>> 0) % P0;
    const e1 = ((lanes[1] as number) >>> 0) % P1;
    this.w0 = mulmod(this.w0, B0_INV, P0);
    this.w1 = mulmod(this.w1, B1_INV, P1);
    this.h0 = (this.h0 - mulmod(e0, this.w0, P0) + P0) % P0;
    this.h1 = (this.h1 - mulmod(e1, this.w1, P1) + P1) % P1;
    return value;
  }

  /** Replaces the item at 0 <= index < length and returns the old one. */
  set(index: number, value: Uint8Array): Uint8Array {
    const old = this.items.at(index);
    if (old === undefined) throw new RangeError(`list index ${index} outside [0, ${this.items.length})`);
    this.items.set(index, value);
    this.bytes += value.length - old.length;
    hashBytes(old, ITEM_SEED);
    const o0 = ((lanes[0] as number) >>> 0) % P0;
    const o1 = ((lanes[1] as number) >>> 0) % P1;
    hashBytes(value, ITEM_SEED);
    const n0 = ((lanes[0] as number) >>> 0) % P0;
    const n1 = ((lanes[1] as number) >>> 0) % P1;
    // O(log index) for B^index: still far below the cost of rehashing the list.
    const d0 = mulmod((n0 - o0 + P0) % P0, powmod(B0, index, P0), P0);
    const d1 = mulmod((n1 - o1 + P1) % P1, powmod(B1, index, P1), P1);
    this.h0 = (this.h0 + d0) % P0;
    this.h1 = (this.h1 + d1) % P1;
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
