/**
 * Where the state keeps string values: as views of slabs, buffers shared by
 * many values, instead of one ArrayBuffer each.
 *
 * An ArrayBuffer of its own costs V8 two heap objects per value plus a
 * backing store it tracks apart; with 1M keys that made a full GC take 400+ ms
 * where views of shared buffers take 230 ms, and a restore spend a third more
 * CPU. So a restore's values stay views of the batch buffers they arrived in,
 * and a written value (a view of its log entry's buffer) is copied into the
 * current slab once it has lasted YOUNG_VALUES writes: the values of hot keys,
 * overwritten sooner, are never copied.
 *
 * Slabs are append-only: bytes once written never change, so a view handed
 * out (a result, a snapshot row, an undo record) stays valid for as long as
 * anyone holds it, and the GC frees a slab once no view of it is left. Each
 * slab counts the entries whose value it holds (KeyEntry.slab); once half of
 * a full slab's values are gone, the rest are copied into the current slab
 * (the same bytes: no result, digest or snapshot sees a difference) and the
 * old slab is let go. Memory held by slabs thus stays within about twice the
 * bytes of the values they serve, plus the current slab.
 *
 * Purely a representation, like the arena: replicas may differ in it.
 */
import { longLivedBuffers } from './long-lived-buffers.ts';

/** What a slab needs of a stored key (KeyEntry): its value, and the slab that value is counted in. */
export interface SlabHolder {
  value: unknown;
  slab: Slab<SlabHolder> | null;
}

/** Bytes of a slab: 1,000 values of 256 bytes. */
export const SLAB_BYTES = 256 << 10;
/** Values above this size keep a buffer of their own: copying them costs more than the objects saved. */
export const MAX_SLAB_VALUE_BYTES = 16 << 10;
/** Values up to this size gain nothing from a slab: V8 keeps a typed array this small on its heap, one object, no backing store. */
export const ON_HEAP_BYTES = 64;
/** Written values wait this many writes, or this many bytes, before the ones still held are copied into a slab. */
export const YOUNG_VALUES = 4096;
export const YOUNG_BYTES = 1 << 20;

export class Slab<E extends SlabHolder = SlabHolder> {
  /** The entries given a value in this slab (some may hold another since: their `slab` says). */
  readonly entries: E[] = [];
  /** How many of them still hold one. */
  live = 0;

  constructor(
    readonly buffer: ArrayBufferLike,
    /** No more values are written into it: it may be let go. */
    public full: boolean,
  ) {}
}

/** Uint8Array.prototype.set through a reference: see arena.ts (a hot slab.set() compiled to a generic call). */
const copyBytes = Uint8Array.prototype.set;

export class ValueSlabs<E extends SlabHolder> {
  private current: Uint8Array = new Uint8Array(0);
  private currentSlab: Slab<E> | null = null;
  /** The restore batch whose views are being stored. */
  private sharing: Slab<E> | null = null;
  private used = 0;
  private reserved = 0;
  /** Written values not in a slab yet, and the entries they were written to. */
  private youngEntries: E[] = [];
  private youngValues: Uint8Array[] = [];
  private youngBytes = 0;
  private readonly isStored: (e: E) => boolean;

  /** `isStored(e)`: `e` is the state's entry for its key (not removed). */
  constructor(isStored: (e: E) => boolean) {
    this.isStored = isStored;
  }

  /** Bytes of the slabs still in use. */
  get reservedBytes(): number {
    return this.reserved;
  }

  /** A restore's batch buffer: the values stored next that are views of it are counted as its own. */
  share(buffer: ArrayBufferLike): void {
    if (this.sharing?.buffer === buffer) return;
    this.sharing = new Slab(buffer, true);
    this.reserved += buffer.byteLength;
  }

  /** The restore is over: writes no longer look for views of its batches (reading a small typed array's buffer would move it off V8's heap). */
  endSharing(): void {
    this.sharing = null;
  }

  /** `e` now holds `value` (its `slab` must be null): counted if it is a view of the shared batch, else young (unless too small or too large for a slab). */
  hold(e: E, value: Uint8Array): void {
    const sharing = this.sharing;
    if (sharing !== null && value.buffer === sharing.buffer) {
      e.slab = sharing;
      sharing.entries.push(e);
      sharing.live++;
      return;
    }
    const length = value.length;
    if (length <= ON_HEAP_BYTES || length > MAX_SLAB_VALUE_BYTES) return;
    this.youngEntries.push(e);
    this.youngValues.push(value);
    this.youngBytes += length;
    if (this.youngEntries.length >= YOUNG_VALUES || this.youngBytes >= YOUNG_BYTES) this.promote();
  }

  /** An entry no longer holds its value in `slab`. */
  release(slab: Slab<E>): void {
    slab.live--;
    if (slab.full && slab.live * 2 <= slab.entries.length) this.letGo(slab);
  }

  clear(): void {
    this.current = new Uint8Array(0);
    this.currentSlab = null;
    this.sharing = null;
    this.used = 0;
    this.reserved = 0;
    this.youngEntries = [];
    this.youngValues = [];
    this.youngBytes = 0;
  }

  /** The young values still held move into the current slab. */
  private promote(): void {
    const entries = this.youngEntries;
    const values = this.youngValues;
    this.youngEntries = [];
    this.youngValues = [];
    this.youngBytes = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i] as E;
      const value = values[i] as Uint8Array;
      if (e.value === value && this.isStored(e)) e.value = this.copyIn(e, value);
    }
  }

  /** A view of a copy of `value` in the current slab, held by `e`. */
  private copyIn(e: E, value: Uint8Array): Uint8Array {
    const length = value.length;
    if (this.currentSlab === null || this.used + length > this.current.length) this.startSlab();
    const at = this.used;
    copyBytes.call(this.current, value, at);
    this.used = at + length;
    const slab = this.currentSlab as Slab<E>;
    e.slab = slab;
    slab.entries.push(e);
    slab.live++;
    return new Uint8Array(slab.buffer, at, length);
  }

  private startSlab(): void {
    const previous = this.currentSlab;
    this.current = longLivedBuffers().allocate(SLAB_BYTES);
    this.currentSlab = new Slab(this.current.buffer, false);
    this.used = 0;
    this.reserved += SLAB_BYTES;
    if (previous !== null) {
      previous.full = true;
      if (previous.live * 2 <= previous.entries.length) this.letGo(previous);
    }
  }

  /** The values still held in `slab` move to the current slab; the slab is no longer counted. */
  private letGo(slab: Slab<E>): void {
    this.reserved -= slab.buffer.byteLength;
    if (this.sharing === slab) this.sharing = null;
    for (const e of slab.entries) {
      if (e.slab !== slab) continue;
      e.slab = null;
      if (!this.isStored(e)) continue;
      const held = e.value as Uint8Array;
      // A restore's batch may hold values too small or too large for a slab: those get an array of their own.
      e.value = held.length <= ON_HEAP_BYTES || held.length > MAX_SLAB_VALUE_BYTES ? new Uint8Array(held) : this.copyIn(e, held);
    }
  }
}
