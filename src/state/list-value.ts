/**
 * A list value: a deque of byte strings plus what the state needs to keep in
 * O(1) per operation, its accounted bytes and its content hash. Small items
 * live in the arena (a handle in the deque), larger ones as Uint8Arrays.
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
import { SMALL_VALUE_BYTES } from './arena.ts';
import type { Arena } from './arena.ts';
import type { ByteWriter } from './bytes.ts';
import { Deque } from './list-deque.ts';
import { B0, B0_INV, B1, B1_INV, hashBytes, hashRange, lanes, powImul } from './hash.ts';
import { LIST_ITEM_OVERHEAD_BYTES } from './memory.ts';

const ITEM_SEED = 0x4c495354; // 'LIST'

/** An arena handle, or a large value's own bytes. */
type Item = number | Uint8Array;

export class ListValue {
  private readonly items: Deque<Item>;
  /** Accounted bytes of the items (see memory.ts). */
  bytes = 0;
  /** H per lane. */
  h0 = 0;
  h1 = 0;
  /** B^length per lane, so a push at the back knows its item's weight. */
  private w0 = 1;
  private w1 = 1;

  constructor(
    private readonly arena: Arena,
    capacity?: number,
  ) {
    this.items = new Deque<Item>(capacity);
  }

  get length(): number {
    return this.items.length;
  }

  /** Items, under the name HashValue also answers (digest.ts reads either without a type test). */
  get count(): number {
    return this.items.length;
  }

  readonly isHash = false;

  pushBack(value: Uint8Array): void {
    this.items.pushBack(this.toItem(value));
    this.bytes += value.length + LIST_ITEM_OVERHEAD_BYTES;
    hashBytes(value, ITEM_SEED);
    this.h0 = (this.h0 + Math.imul(lanes[0] as number, this.w0)) | 0;
    this.h1 = (this.h1 + Math.imul(lanes[1] as number, this.w1)) | 0;
    this.w0 = Math.imul(this.w0, B0);
    this.w1 = Math.imul(this.w1, B1);
  }

  pushFront(value: Uint8Array): void {
    this.items.pushFront(this.toItem(value));
    this.bytes += value.length + LIST_ITEM_OVERHEAD_BYTES;
    hashBytes(value, ITEM_SEED);
    // Every existing item moves up one place: H' = e + B * H.
    this.h0 = ((lanes[0] as number) + Math.imul(this.h0, B0)) | 0;
    this.h1 = ((lanes[1] as number) + Math.imul(this.h1, B1)) | 0;
    this.w0 = Math.imul(this.w0, B0);
    this.w1 = Math.imul(this.w1, B1);
  }

  popFront(): Uint8Array | undefined {
    const item = this.items.popFront();
    if (item === undefined) return undefined;
    const value = this.take(item);
    // H' = (H - e) / B.
    this.h0 = Math.imul(this.h0 - (lanes[0] as number), B0_INV);
    this.h1 = Math.imul(this.h1 - (lanes[1] as number), B1_INV);
    this.w0 = Math.imul(this.w0, B0_INV);
    this.w1 = Math.imul(this.w1, B1_INV);
    return value;
  }

  popBack(): Uint8Array | undefined {
    const item = this.items.popBack();
    if (item === undefined) return undefined;
    const value = this.take(item);
    this.w0 = Math.imul(this.w0, B0_INV);
    this.w1 = Math.imul(this.w1, B1_INV);
    this.h0 = (this.h0 - Math.imul(lanes[0] as number, this.w0)) | 0;
    this.h1 = (this.h1 - Math.imul(lanes[1] as number, this.w1)) | 0;
    return value;
  }

  /** The item at 0 <= index < length (a copy when it lives in the arena), else undefined. */
  at(index: number): Uint8Array | undefined {
    const item = this.items.at(index);
    if (item === undefined) return undefined;
    return typeof item === 'number' ? this.arena.read(item) : item;
  }

  /** Byte length of the item at 0 <= index < length, else undefined. */
  lengthAt(index: number): number | undefined {
    const item = this.items.at(index);
    if (item === undefined) return undefined;
    return typeof item === 'number' ? this.arena.length(item) : item.length;
  }

  /** Items [start, end) with 0 <= start <= end <= length. */
  slice(start: number, end: number): Uint8Array[] {
    const out = new Array<Uint8Array>(Math.max(0, end - start));
    for (let i = start; i < end; i++) out[i - start] = this.at(i) as Uint8Array;
    return out;
  }

  /** Replaces the item at 0 <= index < length. */
  set(index: number, value: Uint8Array): void {
    const old = this.items.at(index);
    if (old === undefined) throw new RangeError(`list index ${index} outside [0, ${this.items.length})`);
    this.hashItem(old);
    const o0 = lanes[0] as number;
    const o1 = lanes[1] as number;
    this.bytes += value.length - this.itemLength(old);
    if (typeof old === 'number' && value.length <= SMALL_VALUE_BYTES) {
      this.items.set(index, this.arena.overwrite(old, value, 0, value.length));
    } else {
      if (typeof old === 'number') this.arena.release(old);
      this.items.set(index, this.toItem(value));
    }
    hashBytes(value, ITEM_SEED);
    // O(log index) for B^index: still far below the cost of rehashing the list.
    this.h0 = (this.h0 + Math.imul((lanes[0] as number) - o0, powImul(B0, index))) | 0;
    this.h1 = (this.h1 + Math.imul((lanes[1] as number) - o1, powImul(B1, index))) | 0;
  }

  /** Writes each item as length-prefixed bytes, front to back. */
  writeItems(w: ByteWriter): void {
    for (const item of this.items) {
      if (typeof item === 'number') w.bytesRange(this.arena.slab(item), this.arena.dataStart(item), this.arena.length(item));
      else w.bytes(item);
    }
  }

  /** An independent copy (its own arena slots). */
  clone(): ListValue {
    const copy = new ListValue(this.arena, this.items.length);
    for (const item of this.items) copy.items.pushBack(typeof item === 'number' ? this.copyHandle(item) : item);
    copy.bytes = this.bytes;
    copy.h0 = this.h0;
    copy.h1 = this.h1;
    copy.w0 = this.w0;
    copy.w1 = this.w1;
    return copy;
  }

  /** Gives the arena slots back; the list must not be used afterwards. */
  dispose(): void {
    for (const item of this.items) if (typeof item === 'number') this.arena.release(item);
  }

  private toItem(value: Uint8Array): Item {
    return value.length <= SMALL_VALUE_BYTES ? this.arena.store(value, 0, value.length) : value;
  }

  private itemLength(item: Item): number {
    return typeof item === 'number' ? this.arena.length(item) : item.length;
  }

  private copyHandle(handle: number): number {
    return this.arena.store(this.arena.slab(handle), this.arena.dataStart(handle), this.arena.length(handle));
  }

  /** Hash of an item into `lanes`. */
  private hashItem(item: Item): void {
    if (typeof item === 'number') hashRange(this.arena.slab(item), this.arena.dataStart(item), this.arena.length(item), ITEM_SEED);
    else hashBytes(item, ITEM_SEED);
  }

  /** A removed item's bytes (its slot released), with its hash left in `lanes` and its bytes unaccounted. */
  private take(item: Item): Uint8Array {
    this.hashItem(item);
    let value: Uint8Array;
    if (typeof item === 'number') {
      value = this.arena.read(item);
      this.arena.release(item);
    } else {
      value = item;
    }
    this.bytes -= value.length + LIST_ITEM_OVERHEAD_BYTES;
    return value;
  }
}
