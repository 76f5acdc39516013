/**
 * Keys that have an expiry, in a binary min-heap by expiry time with each
 * entry's position kept on the entry: O(log n) to add, move or remove a key,
 * and the expired ones are found without visiting the rest.
 */
import type { KeyEntry } from './key-entry.ts';

export class ExpiryHeap {
  private items: KeyEntry[] = [];

  get size(): number {
    return this.items.length;
  }

  clear(): void {
    for (const e of this.items) e.heapPos = -1;
    this.items = [];
  }

  add(e: KeyEntry): void {
    e.heapPos = this.items.length;
    this.items.push(e);
    this.up(e.heapPos);
  }

  remove(e: KeyEntry): void {
    const i = e.heapPos;
    const last = this.items.pop() as KeyEntry;
    e.heapPos = -1;
    if (last === e) return;
    this.items[i] = last;
    last.heapPos = i;
    this.down(i);
    this.up(last.heapPos);
  }

  /** Restores order after e.expiresAtMs changed. */
  update(e: KeyEntry): void {
    this.down(e.heapPos);
    this.up(e.heapPos);
  }

  /**
   * Up to `limit` entries whose expiry is at or before nowMs. A depth-first
   * walk that prunes at the first later expiry: O(result) heap visits.
   */
  expired(nowMs: number, limit: number): KeyEntry[] {
    const out: KeyEntry[] = [];
    const stack: number[] = [];
    if (this.items.length > 0) stack.push(0);
    while (stack.length > 0 && out.length < limit) {
      const i = stack.pop() as number;
      const e = this.items[i];
      if (e === undefined || e.expiresAtMs > nowMs) continue;
      out.push(e);
      stack.push(2 * i + 2, 2 * i + 1);
    }
    return out;
  }

  /** How many entries have expired at nowMs (same walk, counting). */
  countExpired(nowMs: number): number {
    let n = 0;
    const stack: number[] = [];
    if (this.items.length > 0) stack.push(0);
    while (stack.length > 0) {
      const i = stack.pop() as number;
      const e = this.items[i];
      if (e === undefined || e.expiresAtMs > nowMs) continue;
      n++;
      stack.push(2 * i + 2, 2 * i + 1);
    }
    return n;
  }

  private up(i: number): void {
    const items = this.items;
    const e = items[i] as KeyEntry;
    while (i > 0) {
      const parentAt = (i - 1) >> 1;
      const parent = items[parentAt] as KeyEntry;
      if (parent.expiresAtMs <= e.expiresAtMs) break;
      items[i] = parent;
      parent.heapPos = i;
      i = parentAt;
    }
    items[i] = e;
    e.heapPos = i;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const e = items[i] as KeyEntry;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let child = l;
      if (r < n && (items[r] as KeyEntry).expiresAtMs < (items[l] as KeyEntry).expiresAtMs) child = r;
      const c = items[child] as KeyEntry;
      if (c.expiresAtMs >= e.expiresAtMs) break;
      items[i] = c;
      c.heapPos = i;
      i = child;
    }
    items[i] = e;
    e.heapPos = i;
  }
}
