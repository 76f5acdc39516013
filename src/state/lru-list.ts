/**
 * Keys in order of last access, least recent first, as an intrusive doubly
 * linked list through the entries: O(1) to append, move and unlink, and no
 * allocation per access.
 */
import type { KeyEntry } from './key-entry.ts';

export class LruList {
  private head: KeyEntry | null = null;
  private tail: KeyEntry | null = null;

  append(e: KeyEntry): void {
    e.lruPrev = this.tail;
    e.lruNext = null;
    if (this.tail !== null) this.tail.lruNext = e;
    else this.head = e;
    this.tail = e;
  }

  remove(e: KeyEntry): void {
    if (e.lruPrev !== null) e.lruPrev.lruNext = e.lruNext;
    else this.head = e.lruNext;
    if (e.lruNext !== null) e.lruNext.lruPrev = e.lruPrev;
    else this.tail = e.lruPrev;
    e.lruPrev = null;
    e.lruNext = null;
  }

  /** Marks an access: the entry becomes the most recent. */
  touch(e: KeyEntry): void {
    const tail = this.tail;
    if (tail === e || tail === null) return;
    // Not the tail, so it has a next: unlink and relink in place, without remove() + append()'s checks.
    const prev = e.lruPrev;
    const next = e.lruNext as KeyEntry;
    if (prev !== null) prev.lruNext = next;
    else this.head = next;
    next.lruPrev = prev;
    e.lruPrev = tail;
    e.lruNext = null;
    tail.lruNext = e;
    this.tail = e;
  }

  clear(): void {
    this.head = null;
    this.tail = null;
  }

  /** Least recent first. */
  *oldestFirst(): IterableIterator<KeyEntry> {
    for (let e = this.head; e !== null; e = e.lruNext) yield e;
  }
}
