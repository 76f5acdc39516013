/**
 * String values that are views of one buffer shared by many values, and the
 * rule that keeps such a buffer from being held by a few survivors.
 *
 * A restore takes each batch's values as views of the batch's buffer instead
 * of giving every value an ArrayBuffer of its own: a restore of 1M keys then
 * spends about a third less CPU (the per-value allocations and their GC), and
 * the heap holds one object less per key. A buffer lives as long as any of
 * its views does, though. So each shared buffer counts its values still
 * stored; once half of them are gone, the rest get buffers of their own (the
 * same bytes: nothing a result, the digest or a snapshot sees changes) and
 * the shared buffer is left to the GC. Memory held by shared buffers thus
 * stays within about twice the bytes of the values they serve.
 *
 * Purely a representation, like the arena: replicas may differ in it.
 */
import type { KeyEntry } from './key-entry.ts';

interface SharedBuffer {
  /** The stored entries whose value was a view of this buffer when it was adopted (some may be gone since). */
  readonly entries: KeyEntry[];
  /** How many of them still hold their view, as far as release() was told. */
  live: number;
}

export class SharedValueBuffers {
  private readonly buffers = new Map<ArrayBufferLike, SharedBuffer>();
  private reserved = 0;

  /** No buffer is shared: the callers' hot paths skip every other call. */
  get none(): boolean {
    return this.buffers.size === 0;
  }

  /** Bytes of the buffers still shared. */
  get reservedBytes(): number {
    return this.reserved;
  }

  get count(): number {
    return this.buffers.size;
  }

  /** Views of `buffer` stored from now on are counted (adopt); registering it again changes nothing. */
  share(buffer: ArrayBufferLike): void {
    if (this.buffers.has(buffer)) return;
    this.buffers.set(buffer, { entries: [], live: 0 });
    this.reserved += buffer.byteLength;
  }

  /** `e` now holds `value`: counted if it is a view of a shared buffer. */
  adopt(e: KeyEntry, value: Uint8Array): void {
    const shared = this.buffers.get(value.buffer);
    if (shared === undefined) return;
    shared.entries.push(e);
    shared.live++;
  }

  /**
   * `value` is no longer stored. When that leaves its buffer half used, the
   * values still stored (isStored) get a copy of their own.
   */
  release(value: Uint8Array, isStored: (e: KeyEntry) => boolean): void {
    const buffer = value.buffer;
    const shared = this.buffers.get(buffer);
    if (shared === undefined) return;
    shared.live--;
    if (shared.live * 2 > shared.entries.length) return;
    this.buffers.delete(buffer);
    this.reserved -= buffer.byteLength;
    for (const e of shared.entries) {
      const held = e.value;
      if (held instanceof Uint8Array && held.buffer === buffer && isStored(e)) e.value = new Uint8Array(held); // a copy (a Buffer's slice() would be a view)
    }
  }

  clear(): void {
    this.buffers.clear();
    this.reserved = 0;
  }
}
