/**
 * One stored key: its value and expiry, plus the bookkeeping that keeps every
 * per-key operation O(1): accounted bytes, the digest part of its value, its
 * links in the LRU list, its slots in the expiry heap and the scan index, and
 * a mark for copy-on-write snapshots. Fields are int32 or object references so
 * V8 stores them unboxed.
 */
import type { StoredValue } from './values.ts';
import type { Slab } from './value-slabs.ts';

/** Expiry of a key that has none: compares after every time. */
export const NO_EXPIRY = Infinity;

export class KeyEntry {
  /** Accounted bytes of key, overhead and value (see memory.ts). */
  bytes = 0;
  /** Digest part of (key, type, value); the expiry part is derived from expiresAtMs when needed. */
  c0 = 0;
  c1 = 0;
  lruPrev: KeyEntry | null = null;
  lruNext: KeyEntry | null = null;
  /** Position in the expiry heap, -1 when the key has no expiry. */
  heapPos = -1;
  /** Position in its scan bucket. */
  bucketPos = -1;
  /** Equal to an open snapshot's epoch once that snapshot has this key's row (or must skip it). */
  snapMark = 0;
  /** The slab the string value is a view of, once counted there (value-slabs.ts); null otherwise. */
  slab: Slab<KeyEntry> | null = null;

  constructor(
    readonly key: string,
    /** Key hash lanes: lane 0 (unsigned) is the key's place in the Keys scan order. */
    readonly k0: number,
    readonly k1: number,
    public value: StoredValue,
    public expiresAtMs: number,
  ) {}
}
