/**
 * Keys grouped by the top 16 bits of their 32-bit scan hash into 65,536
 * buckets. Both the Keys cursor and snapshot iteration walk this order: it
 * depends only on the keys themselves, so a cursor means the same on every
 * replica and after a snapshot restore, and a key never moves while present.
 * A bucket is an unordered array (swap-remove); walkers sort the few keys of
 * one bucket when they need order. At 1M keys a bucket holds ~16.
 */
import type { KeyEntry } from './key-entry.ts';

export const BUCKET_BITS = 16;
export const BUCKET_COUNT = 1 << BUCKET_BITS;
const BUCKET_SHIFT = 32 - BUCKET_BITS;

export function scanHash(e: KeyEntry): number {
  return e.k0 >>> 0;
}

export function bucketOf(hash: number): number {
  return hash >>> BUCKET_SHIFT;
}

/** Scan order: by hash, then by key, so equal hashes still order the same everywhere. */
export function compareScanOrder(a: KeyEntry, b: KeyEntry): number {
  const ha = scanHash(a);
  const hb = scanHash(b);
  if (ha !== hb) return ha - hb;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

export class ScanIndex {
  private buckets: (KeyEntry[] | undefined)[] = new Array<KeyEntry[] | undefined>(BUCKET_COUNT).fill(undefined);

  add(e: KeyEntry): void {
    const b = bucketOf(scanHash(e));
    let bucket = this.buckets[b];
    if (bucket === undefined) {
      bucket = [];
      this.buckets[b] = bucket;
    }
    e.bucketPos = bucket.length;
    bucket.push(e);
  }

  remove(e: KeyEntry): void {
    const bucket = this.buckets[bucketOf(scanHash(e))] as KeyEntry[];
    const last = bucket.pop() as KeyEntry;
    if (last !== e) {
      bucket[e.bucketPos] = last;
      last.bucketPos = e.bucketPos;
    }
    e.bucketPos = -1;
  }

  /** The entries of bucket b in no particular order; do not keep it across changes. */
  bucket(b: number): readonly KeyEntry[] | undefined {
    return this.buckets[b];
  }

  clear(): void {
    this.buckets = new Array<KeyEntry[] | undefined>(BUCKET_COUNT).fill(undefined);
  }
}
