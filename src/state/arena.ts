/**
 * Storage for small byte strings (list items and hash field values of at most
 * SMALL_VALUE_BYTES) packed into 1 MiB slabs, instead of one Uint8Array each.
 * A Uint8Array costs V8 well over 100 bytes of objects and, when kept, GC work
 * on every write; a slab slot costs its size rounded up to a class (8, 16, 32,
 * 64 bytes), and the GC sees one object per MiB.
 *
 * A value is named by a handle: its slot's address (slab * 2^20 + offset),
 * which stays below 2^31 so V8 stores it as a small integer, unboxed, in the
 * list's ring buffer. A slot starts with the value's length. Each slab serves
 * one size class; freed slots go on that class's free list and are reused
 * first. Slabs are not returned while the state lives (as with memcached's
 * slabs); Clear and restore start afresh. Reads copy out: a result must not
 * change when its slot is reused.
 *
 * Purely a representation: nothing about it reaches results, the digest or
 * snapshots, so it may differ between replicas.
 */

/** Largest value kept in the arena; larger ones stay Uint8Arrays of their own. */
export const SMALL_VALUE_BYTES = 63;

const SLAB_SHIFT = 20;
const SLAB_BYTES = 1 << SLAB_SHIFT;
/** Addresses stay below 2^31: 2,048 slabs, 2 GiB of small values. */
const MAX_SLABS = 2048;
const CLASS_BYTES = [8, 16, 32, 64] as const;

function classOf(length: number): number {
  return length < 8 ? 0 : length < 16 ? 1 : length < 32 ? 2 : 3;
}

/**
 * Uint8Array.prototype.set, called through this reference: at a hot
 * `slab.set(...)` V8's optimizing compiler left the method's lookup to a
 * generic load IC call, per write (seen in a perf profile of HSet).
 */
const copyBytes = Uint8Array.prototype.set;

export class Arena {
  private slabs: Uint8Array[] = [];
  /** Size class of each slab. */
  private slabClass: number[] = [];
  /** Per class: freed addresses, reused last-in first-out. */
  private free: number[][] = [[], [], [], []];
  /** Per class: the next never-used address in its newest slab, and that slab's end. */
  private next = [0, 0, 0, 0];
  private end = [0, 0, 0, 0];
  private live = 0;

  /** Copies bytes [start, start + length) of src into a new slot; length <= SMALL_VALUE_BYTES. */
  store(src: Uint8Array, start: number, length: number): number {
    const c = classOf(length);
    const handle = this.take(c);
    const slab = this.slabs[handle >>> SLAB_SHIFT] as Uint8Array;
    let at = handle & (SLAB_BYTES - 1);
    slab[at++] = length;
    for (let i = 0; i < length; i++) slab[at + i] = src[start + i] as number;
    return handle;
  }

  /**
   * Replaces the value in a slot when the new one fits its class, else frees
   * it and stores anew; returns the (possibly new) handle.
   */
  overwrite(handle: number, src: Uint8Array, start: number, length: number): number {
    const slab = this.slabs[handle >>> SLAB_SHIFT] as Uint8Array;
    if (classOf(length) !== this.slabClass[handle >>> SLAB_SHIFT]) {
      this.release(handle);
      return this.store(src, start, length);
    }
    const at = handle & (SLAB_BYTES - 1);
    slab[at] = length;
    // A whole array goes by set() (a memmove), cheaper than the byte loop for HSet's values.
    if (start === 0 && length === src.length) slab.set(src, at + 1);
    else for (let i = 0; i < length; i++) slab[at + 1 + i] = src[start + i] as number;
    return handle;
  }

  /**
   * A new slot for a value of `length` <= SMALL_VALUE_BYTES bytes, its length
   * written; the caller writes the bytes at dataStart(handle) of slab(handle).
   * For writers that copy while doing something else with each byte.
   */
  reserve(length: number): number {
    const handle = this.take(classOf(length));
    (this.slabs[handle >>> SLAB_SHIFT] as Uint8Array)[handle & (SLAB_BYTES - 1)] = length;
    return handle;
  }

  /** reserve() for a value replacing the one at `handle`: the same slot when its class fits, else a new one (the old one freed). */
  resize(handle: number, length: number): number {
    if (classOf(length) !== this.slabClass[handle >>> SLAB_SHIFT]) {
      this.release(handle);
      return this.reserve(length);
    }
    (this.slabs[handle >>> SLAB_SHIFT] as Uint8Array)[handle & (SLAB_BYTES - 1)] = length;
    return handle;
  }

  /** Copies a whole array into the slot at `handle`, reserved for its length. */
  write(handle: number, value: Uint8Array): void {
    copyBytes.call(this.slabs[handle >>> SLAB_SHIFT] as Uint8Array, value, (handle & (SLAB_BYTES - 1)) + 1);
  }

  length(handle: number): number {
    return (this.slabs[handle >>> SLAB_SHIFT] as Uint8Array)[handle & (SLAB_BYTES - 1)] as number;
  }

  /** The slab holding a handle's bytes, which start at dataStart(handle). For reading in place. */
  slab(handle: number): Uint8Array {
    return this.slabs[handle >>> SLAB_SHIFT] as Uint8Array;
  }

  dataStart(handle: number): number {
    return (handle & (SLAB_BYTES - 1)) + 1;
  }

  /** A copy of the value. */
  read(handle: number): Uint8Array {
    const slab = this.slabs[handle >>> SLAB_SHIFT] as Uint8Array;
    const at = (handle & (SLAB_BYTES - 1)) + 1;
    const length = slab[at - 1] as number;
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = slab[at + i] as number;
    return out;
  }

  release(handle: number): void {
    this.live--;
    (this.free[this.slabClass[handle >>> SLAB_SHIFT] as number] as number[]).push(handle);
  }

  /** Forgets every value at once (Clear, when nothing else holds on to them). */
  reset(): void {
    this.slabs = [];
    this.slabClass = [];
    this.free = [[], [], [], []];
    this.next = [0, 0, 0, 0];
    this.end = [0, 0, 0, 0];
    this.live = 0;
  }

  /** Bytes of slabs held, for diagnostics. */
  get reservedBytes(): number {
    return this.slabs.length * SLAB_BYTES;
  }

  /** Values stored and not released, for diagnostics (and leak tests). */
  get liveValues(): number {
    return this.live;
  }

  private take(c: number): number {
    this.live++;
    const reused = (this.free[c] as number[]).pop();
    if (reused !== undefined) return reused;
    const size = CLASS_BYTES[c as 0 | 1 | 2 | 3];
    let at = this.next[c] as number;
    if (at + size > (this.end[c] as number)) {
      if (this.slabs.length >= MAX_SLABS) throw new RangeError(`the small-value arena is full (${MAX_SLABS} slabs of ${SLAB_BYTES} bytes)`);
      const slab = this.slabs.length;
      this.slabs.push(new Uint8Array(SLAB_BYTES));
      this.slabClass.push(c);
      at = slab * SLAB_BYTES;
      this.end[c] = at + SLAB_BYTES;
    }
    this.next[c] = at + size;
    return at;
  }
}
