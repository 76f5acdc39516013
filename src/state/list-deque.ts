/**
 * A double-ended queue on a power-of-two ring buffer: O(1) push and pop at
 * both ends and O(1) access by index (Array.shift would be O(n)). It grows by
 * doubling and shrinks by half when a quarter full, so both stay amortized O(1).
 */

const MIN_CAPACITY = 4;

export class Deque<T> {
  private items: (T | undefined)[];
  private head = 0;
  private size = 0;
  private mask: number;

  constructor(capacity = MIN_CAPACITY) {
    let cap = MIN_CAPACITY;
    while (cap < capacity) cap *= 2;
    this.items = new Array<T | undefined>(cap).fill(undefined);
    this.mask = cap - 1;
  }

  get length(): number {
    return this.size;
  }

  pushBack(value: T): void {
    if (this.size === this.items.length) this.resize(this.items.length * 2);
    this.items[(this.head + this.size) & this.mask] = value;
    this.size++;
  }

  pushFront(value: T): void {
    if (this.size === this.items.length) this.resize(this.items.length * 2);
    this.head = (this.head - 1) & this.mask;
    this.items[this.head] = value;
    this.size++;
  }

  popFront(): T | undefined {
    if (this.size === 0) return undefined;
    const value = this.items[this.head];
    this.items[this.head] = undefined; // let the value be collected
    this.head = (this.head + 1) & this.mask;
    this.size--;
    this.maybeShrink();
    return value;
  }

  popBack(): T | undefined {
    if (this.size === 0) return undefined;
    const at = (this.head + this.size - 1) & this.mask;
    const value = this.items[at];
    this.items[at] = undefined;
    this.size--;
    this.maybeShrink();
    return value;
  }

  /** The element at 0 <= index < length, else undefined. */
  at(index: number): T | undefined {
    if (index < 0 || index >= this.size) return undefined;
    return this.items[(this.head + index) & this.mask];
  }

  /** Replaces the element at 0 <= index < length; the caller checks the range. */
  set(index: number, value: T): void {
    if (index < 0 || index >= this.size) throw new RangeError(`deque index ${index} outside [0, ${this.size})`);
    this.items[(this.head + index) & this.mask] = value;
  }

  /** Elements [start, end) with 0 <= start <= end <= length, as an array. */
  slice(start: number, end: number): T[] {
    const out = new Array<T>(Math.max(0, end - start));
    for (let i = start, j = 0; i < end; i++, j++) out[j] = this.items[(this.head + i) & this.mask] as T;
    return out;
  }

  toArray(): T[] {
    return this.slice(0, this.size);
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.size; i++) yield this.items[(this.head + i) & this.mask] as T;
  }

  private maybeShrink(): void {
    const cap = this.items.length;
    if (cap > MIN_CAPACITY && this.size <= cap >>> 2) this.resize(cap >>> 1);
  }

  private resize(capacity: number): void {
    const next = new Array<T | undefined>(capacity).fill(undefined);
    for (let i = 0; i < this.size; i++) next[i] = this.items[(this.head + i) & this.mask];
    this.items = next;
    this.head = 0;
    this.mask = capacity - 1;
  }
}
