/**
 * The stored keys and everything kept in step with them on every change: the
 * digest sum, the memory estimate, the LRU order, the expiry heap and the
 * scan index. Every change to a key goes through create / replace /
 * beginChange+endChange (endHashChange for a hash; overwriteHashField for
 * one field's overwrite) / setExpiry / remove, which
 * is also where the two observers of changes hook in:
 *
 * - a Txn's undo log, which records a key's state before the Txn first
 *   changes it, so a failed Txn can be rolled back whole;
 * - an open snapshot's copy-on-write, which saves a key's row before the first
 *   change after the snapshot was opened, unless the snapshot already has it;
 * - the change set of incremental snapshots: the keys changed since the base
 *   snapshot, so that the next snapshot file rewrites only their rows.
 *
 * A hash overwrite leaves its pair hash pending (hash-value.ts): the key is
 * queued, and settledSum() (the digest) and fingerprint() settle it first, so
 * what they read does not depend on when they were read before.
 *
 * Expiry is not acted on here: an expired key stays stored (and in the
 * digest) until a write meets it or an expireSweep entry deletes it, the same
 * on every replica. Callers ask live() for what is visible at a time.
 */
import { utf8Length } from './bytes.ts';
import { Arena } from './arena.ts';
import { cloneValue, disposeValue, encodeValue, typeOf, valueBytes } from './values.ts';
import type { Container, StoredValue } from './values.ts';
import { containerPart, DigestSum, expiryPart, keyHash, valuePart } from './digest.ts';
import { ExpiryHeap } from './expiry-heap.ts';
import { lanes } from './hash.ts';
import { HashValue } from './hash-value.ts';
import { KeyEntry, NO_EXPIRY } from './key-entry.ts';
import { LruList } from './lru-list.ts';
import { KEY_OVERHEAD_BYTES } from './memory.ts';
import type { KeyRow } from './rows.ts';
import { BUCKET_COUNT, compareScanOrder, ScanIndex, scanHash } from './scan-index.ts';
import { ValueSlabs } from './value-slabs.ts';

/**
 * Past this many changed keys, and more than half of those stored, the change
 * set is dropped: the next snapshot is written whole anyway (storage does so
 * past a fifth), and a bulk load need not hold a set of every key it wrote.
 */
const CHANGE_SET_MIN_KEYS = 4096;

interface UndoRecord {
  readonly value: StoredValue;
  readonly expiresAtMs: number;
}

/** An open snapshot: its epoch marks entries it has (or must skip), `saved` holds rows saved by copy-on-write. */
class Capture {
  readonly saved: KeyRow[] = [];
  open = true;
  /** Once an incremental export is iterating: the only keys whose old rows copy-on-write must save. */
  only: ReadonlySet<string> | null = null;
  constructor(readonly epoch: number) {}
}

export function toKeyRow(e: KeyEntry): KeyRow {
  return {
    key: e.key,
    type: typeOf(e.value),
    value: encodeValue(e.value),
    expiresAtMs: e.expiresAtMs === NO_EXPIRY ? null : e.expiresAtMs,
  };
}

/** One page of a Keys scan; next is -1 when the scan is complete. */
export interface ScanPage {
  readonly keys: string[];
  readonly next: number;
}

export class Keyspace {
  /** Where lists and hashes of this keyspace keep their small items. */
  readonly arena = new Arena();
  private map = new Map<string, KeyEntry>();
  /** String values live in slabs (value-slabs.ts). */
  readonly slabs = new ValueSlabs<KeyEntry>((e) => this.map.get(e.key) === e);
  private readonly scan = new ScanIndex();
  private readonly lru = new LruList();
  private readonly heap = new ExpiryHeap();
  /** Digest sum of all keys; read it through settledSum(). */
  private readonly sum = new DigestSum();
  /** unsettled[0, unsettledCount): keys whose hash had overwrites not yet hashed (hash-value.ts), possibly gone since. */
  private unsettled: (KeyEntry | null)[] = [];
  private unsettledCount = 0;
  private used = 0;
  private undo: Map<string, UndoRecord | null> | null = null;
  private capture: Capture | null = null;
  private epoch = 0;
  /** Keys changed since the last takeChangedKeys(), when tracking is on (for Watch). */
  private changed: string[] | null = null;
  private changedAtUndo = 0;
  /**
   * Keys created, changed or removed since the base snapshot (see
   * takeChangedSinceBase), least recently changed first; null when there is
   * no base, so the next snapshot must be written whole.
   */
  private changedSinceBase: Set<string> | null = null;

  /** Starts (or stops) recording which keys each change touches. */
  trackChanges(enabled: boolean): void {
    this.changed = enabled ? [] : null;
  }

  /** The keys touched since the last call, in order, possibly repeated; empty when tracking is off. */
  takeChangedKeys(): string[] {
    const changed = this.changed;
    if (changed === null || changed.length === 0) return [];
    this.changed = [];
    return changed;
  }

  /** Stored keys, counting expired ones not yet swept. */
  get storedCount(): number {
    return this.map.size;
  }

  get memoryUsed(): number {
    return this.used;
  }

  /** The stored entry, even if expired. */
  stored(key: string): KeyEntry | undefined {
    return this.map.get(key);
  }

  /** The entry if it exists at nowMs (expiry strictly after it). */
  live(key: string, nowMs: number): KeyEntry | undefined {
    const e = this.map.get(key);
    return e !== undefined && e.expiresAtMs > nowMs ? e : undefined;
  }

  liveCount(nowMs: number): number {
    return this.map.size - this.heap.countExpired(nowMs);
  }

  /** Adds a key that is not stored; keyBytes is its UTF-8 length. */
  create(key: string, keyBytes: number, value: StoredValue, expiresAtMs: number): KeyEntry {
    // A new hash is not queued: its part must be final now.
    if (value instanceof HashValue) value.settle();
    this.recordUndo(key, undefined);
    this.changed?.push(key);
    this.noteChangedSinceBase(key);
    keyHash(key);
    const e = new KeyEntry(key, lanes[0] as number, lanes[1] as number, value, expiresAtMs);
    if (this.capture !== null) e.snapMark = this.capture.epoch; // not part of the open snapshot
    e.bytes = keyBytes + KEY_OVERHEAD_BYTES + valueBytes(value);
    this.used += e.bytes;
    valuePart(e.k0, e.k1, value);
    e.c0 = lanes[0] as number;
    e.c1 = lanes[1] as number;
    this.sum.add(e.c0, e.c1);
    if (expiresAtMs !== NO_EXPIRY) {
      expiryPart(e.k0, e.k1, expiresAtMs);
      this.sum.add(lanes[0] as number, lanes[1] as number);
      this.heap.add(e);
    }
    this.lru.append(e);
    this.scan.add(e);
    this.map.set(key, e);
    if (value instanceof Uint8Array) this.slabs.hold(e, value);
    return e;
  }

  /** Replaces a stored key's value (any type by any type). */
  replace(e: KeyEntry, value: StoredValue): void {
    this.beforeChange(e);
    this.sum.sub(e.c0, e.c1);
    const old = e.value;
    const oldSlab = e.slab;
    const delta = valueBytes(value) - valueBytes(old);
    e.value = value;
    e.slab = null;
    if (value instanceof Uint8Array) this.slabs.hold(e, value);
    valuePart(e.k0, e.k1, value);
    e.c0 = lanes[0] as number;
    e.c1 = lanes[1] as number;
    this.sum.add(e.c0, e.c1);
    this.used += delta;
    e.bytes += delta;
    this.lru.touch(e);
    disposeValue(old);
    if (oldSlab !== null) this.slabs.release(oldSlab);
  }

  /**
   * Call before changing a key's list or hash (`container`, which is e.value)
   * in place; endChange(e, container) after. Taking the container, not
   * reading e.value, spares the hot write paths a type test per call.
   */
  beginChange(e: KeyEntry, container: Container): void {
    this.beforeChange(e);
    this.sum.sub(e.c0, e.c1);
    this.used -= container.bytes;
    e.bytes -= container.bytes;
  }

  /**
   * endChange() for a hash, which may now have overwrites to settle: the key
   * is queued for settledSum(). Hash writes must end with this one.
   */
  endHashChange(e: KeyEntry, hash: HashValue): void {
    this.endChange(e, hash);
    if (hash.unsettled && !hash.queued) {
      hash.queued = true;
      this.unsettled[this.unsettledCount++] = e;
    }
  }

  /**
   * HashValue.overwrite() of entry `slot` (from find()) with `value`, instead
   * of beginChange() and endHashChange(): the overwrite leaves the hash's sum,
   * so the key's digest part, as it was until settled; only the bytes (by
   * bytesDelta, the value's growth), recency and the settle queue change.
   */
  overwriteHashField(e: KeyEntry, hash: HashValue, slot: number, value: Uint8Array, bytesDelta: number): void {
    // The observers tested here, not in beforeChange(), which V8 then need not inline into this hot path.
    if (this.changed !== null || this.changedSinceBase !== null || this.undo !== null || this.capture !== null) this.beforeChange(e);
    hash.overwrite(slot, value);
    this.used += bytesDelta;
    e.bytes += bytesDelta;
    this.lru.touch(e);
    if (!hash.queued) {
      hash.queued = true;
      this.unsettled[this.unsettledCount++] = e;
    }
  }

  /** The digest sum of all keys, after hashing what overwrites left pending. */
  settledSum(): DigestSum {
    const queue = this.unsettled;
    const count = this.unsettledCount;
    for (let i = 0; i < count; i++) {
      const e = queue[i] as KeyEntry;
      queue[i] = null;
      // Not queued any more: disposed (its key removed, or given another value), or already settled (a key listed twice).
      const hash = e.value;
      if (!(hash instanceof HashValue) || !hash.queued) continue;
      hash.queued = false;
      this.settle(e, hash);
    }
    this.unsettledCount = 0;
    return this.sum;
  }

  /** Brings a key's digest part up to date with its hash's pending overwrites. Not a change: the content is the same. */
  private settle(e: KeyEntry, hash: HashValue): void {
    // Recomputed even when the hash has nothing pending: it may have settled itself since its key's part was computed.
    this.sum.sub(e.c0, e.c1);
    hash.settle();
    containerPart(e.k0, e.k1, hash);
    e.c0 = lanes[0] as number;
    e.c1 = lanes[1] as number;
    this.sum.add(e.c0, e.c1);
  }

  endChange(e: KeyEntry, container: Container): void {
    containerPart(e.k0, e.k1, container);
    e.c0 = lanes[0] as number;
    e.c1 = lanes[1] as number;
    this.sum.add(e.c0, e.c1);
    this.used += container.bytes;
    e.bytes += container.bytes;
    this.lru.touch(e);
  }

  setExpiry(e: KeyEntry, expiresAtMs: number): void {
    const old = e.expiresAtMs;
    if (old === expiresAtMs) return;
    this.beforeChange(e);
    if (old !== NO_EXPIRY) {
      expiryPart(e.k0, e.k1, old);
      this.sum.sub(lanes[0] as number, lanes[1] as number);
    }
    e.expiresAtMs = expiresAtMs;
    if (expiresAtMs !== NO_EXPIRY) {
      expiryPart(e.k0, e.k1, expiresAtMs);
      this.sum.add(lanes[0] as number, lanes[1] as number);
    }
    if (old === NO_EXPIRY) this.heap.add(e);
    else if (expiresAtMs === NO_EXPIRY) this.heap.remove(e);
    else this.heap.update(e);
    this.lru.touch(e);
  }

  remove(e: KeyEntry): void {
    this.beforeChange(e);
    this.sum.sub(e.c0, e.c1);
    if (e.expiresAtMs !== NO_EXPIRY) {
      expiryPart(e.k0, e.k1, e.expiresAtMs);
      this.sum.sub(lanes[0] as number, lanes[1] as number);
      this.heap.remove(e);
    }
    this.used -= e.bytes;
    this.lru.remove(e);
    this.scan.remove(e);
    this.map.delete(e.key);
    disposeValue(e.value);
    if (e.slab !== null) this.slabs.release(e.slab);
  }

  /** Removes every key; returns how many were stored. */
  clear(): number {
    const n = this.map.size;
    // Rewriting every row of the base costs more than writing the (now empty) snapshot whole.
    this.changedSinceBase = null;
    if (this.changed !== null) for (const key of this.map.keys()) this.changed.push(key);
    if (this.undo !== null || this.capture !== null) {
      // Observers need each key's old state: go key by key.
      for (const e of [...this.map.values()]) this.remove(e);
      return n;
    }
    this.map = new Map();
    this.arena.reset();
    this.slabs.clear();
    this.scan.clear();
    this.lru.clear();
    this.heap.clear();
    this.sum.reset();
    this.unsettled = [];
    this.unsettledCount = 0;
    this.used = 0;
    return n;
  }

  /** An access that changes nothing but recency. */
  touch(e: KeyEntry): void {
    this.lru.touch(e);
  }

  /** A 53-bit fingerprint of the key's content (value, type and expiry), for evict's guard. */
  fingerprint(e: KeyEntry): number {
    // Every replica must see the same figure, however often each has read its digest.
    if (e.value instanceof HashValue) this.settle(e, e.value);
    let f0 = e.c0;
    let f1 = e.c1;
    if (e.expiresAtMs !== NO_EXPIRY) {
      expiryPart(e.k0, e.k1, e.expiresAtMs);
      f0 = (f0 + (lanes[0] as number)) | 0;
      f1 = (f1 + (lanes[1] as number)) | 0;
    }
    return (f1 >>> 11) * 0x1_0000_0000 + (f0 >>> 0);
  }

  /** Up to `limit` stored keys expired at nowMs, earliest expiry tending first. */
  expired(nowMs: number, limit: number): KeyEntry[] {
    return this.heap.expired(nowMs, limit);
  }

  /** Least recently accessed first. */
  oldestFirst(): IterableIterator<KeyEntry> {
    return this.lru.oldestFirst();
  }

  // --- Txn undo --------------------------------------------------------------

  beginUndo(): void {
    this.undo = new Map();
    this.changedAtUndo = this.changed?.length ?? 0;
  }

  /** Keeps the Txn's changes; the saved copies are dropped. */
  commitUndo(): void {
    const undo = this.undo;
    this.undo = null;
    if (undo === null) return;
    for (const saved of undo.values()) if (saved !== null) disposeValue(saved.value);
  }

  /** Puts every key the Txn changed back as it was: digest, memory and expiry follow. */
  rollbackUndo(): void {
    const undo = this.undo;
    this.undo = null;
    if (undo === null) return;
    for (const [key, saved] of undo) {
      const current = this.map.get(key);
      if (saved === null) {
        if (current !== undefined) this.remove(current);
      } else if (current === undefined) {
        this.create(key, utf8Length(key), saved.value, saved.expiresAtMs);
      } else {
        this.replace(current, saved.value);
        this.setExpiry(current, saved.expiresAtMs);
      }
    }
    // Rolled back: nothing changed after all.
    if (this.changed !== null) this.changed.length = this.changedAtUndo;
  }

  private recordUndo(key: string, e: KeyEntry | undefined): void {
    const undo = this.undo;
    if (undo === null || undo.has(key)) return;
    undo.set(key, e === undefined ? null : { value: cloneValue(e.value), expiresAtMs: e.expiresAtMs });
  }

  /** The four observers here are also tested in overwriteHashField before it calls this: keep the two in step. */
  private beforeChange(e: KeyEntry): void {
    this.changed?.push(e.key);
    this.noteChangedSinceBase(e.key);
    if (this.undo !== null) this.recordUndo(e.key, e);
    const capture = this.capture;
    if (capture !== null && e.snapMark !== capture.epoch) {
      if (capture.only === null || capture.only.has(e.key)) capture.saved.push(toKeyRow(e));
      e.snapMark = capture.epoch;
    }
  }

  private noteChangedSinceBase(key: string): void {
    const changed = this.changedSinceBase;
    if (changed === null) return;
    // Delete, then add: the set stays in order of each key's latest change, which is the order an incremental snapshot appends rows in.
    changed.delete(key);
    changed.add(key);
    if (changed.size > CHANGE_SET_MIN_KEYS && changed.size * 2 > this.map.size) this.changedSinceBase = null;
  }

  // --- Incremental snapshots -------------------------------------------------

  /**
   * Makes the current state the base: the change set starts empty. For a
   * keyspace just restored from a snapshot file, whose rows are that state.
   */
  resetChangedSinceBase(): void {
    this.changedSinceBase = new Set();
  }

  /**
   * Hands over the keys changed since the base (null when there is none) and
   * starts an empty set: called as an export opens, whose state becomes the
   * next base once its file is stored.
   */
  takeChangedSinceBase(): Set<string> | null {
    const taken = this.changedSinceBase;
    this.changedSinceBase = new Set();
    return taken;
  }

  /** Puts back a set taken for an export that was not stored: the base is still the one before it. */
  returnChangedSinceBase(taken: Set<string> | null): void {
    const since = this.changedSinceBase;
    if (taken === null || since === null) {
      this.changedSinceBase = null;
      return;
    }
    // A new set: the writer of the failed export may still hold `taken`.
    const merged = new Set(taken);
    for (const key of since) {
      merged.delete(key);
      merged.add(key);
    }
    this.changedSinceBase = merged;
  }

  // --- Snapshots -----------------------------------------------------------

  /**
   * Freezes the current keys for iteration by snapshotRows() while changes go
   * on. Opening one closes any earlier one (whose iterator then throws), so an
   * abandoned snapshot cannot keep copy-on-write running forever.
   */
  openSnapshot(): Capture {
    if (this.capture !== null) this.capture.open = false;
    const capture = new Capture(++this.epoch);
    this.capture = capture;
    return capture;
  }

  closeSnapshot(capture: Capture): void {
    capture.open = false;
    if (this.capture === capture) this.capture = null;
  }

  /**
   * The rows as of openSnapshot(), in scan order, then the rows of keys that
   * changed or went away before the walk reached them. Each bucket is copied
   * before its rows are yielded, so a swap-remove in it cannot hide a key.
   */
  *snapshotRows(capture: Capture): Generator<KeyRow, void, undefined> {
    try {
      for (let b = 0; b < BUCKET_COUNT; b++) {
        const bucket = this.scan.bucket(b);
        if (bucket === undefined || bucket.length === 0) continue;
        for (const e of bucket.slice()) {
          if (!capture.open) throw new Error('snapshot was closed: a newer one was opened, or close() was called');
          if (e.snapMark === capture.epoch) continue;
          e.snapMark = capture.epoch;
          yield toKeyRow(e);
        }
      }
      // Every stored entry is marked now, so nothing more is saved while these are yielded.
      for (const row of capture.saved) {
        if (!capture.open) throw new Error('snapshot was closed: a newer one was opened, or close() was called');
        yield row;
      }
    } finally {
      this.closeSnapshot(capture);
    }
  }

  /**
   * For an incremental snapshot: the rows as of openSnapshot() of those of
   * `keys` that existed then, least recently changed first (`keys`' order),
   * then those saved by copy-on-write. Use either this or snapshotRows(), not
   * both: each marks the entries it has yielded.
   */
  *changedRows(capture: Capture, keys: ReadonlySet<string>): Generator<KeyRow, void, undefined> {
    // From here on copy-on-write need only save these keys' rows.
    capture.only = keys;
    try {
      for (const key of keys) {
        if (!capture.open) throw new Error('snapshot was closed: a newer one was opened, or close() was called');
        const e = this.map.get(key);
        // Absent then (or created since, which marks it): the snapshot has no row for it.
        if (e === undefined || e.snapMark === capture.epoch) continue;
        e.snapMark = capture.epoch;
        yield toKeyRow(e);
      }
      for (const row of capture.saved) {
        if (!capture.open) throw new Error('snapshot was closed: a newer one was opened, or close() was called');
        // Saved before `only` was set, rows of unchanged keys too: the base already has those.
        if (keys.has(row.key)) yield row;
      }
    } finally {
      this.closeSnapshot(capture);
    }
  }

  // --- Keys scan -----------------------------------------------------------

  /**
   * Walks the scan order from position `from` (a 32-bit scan hash) and returns
   * the live keys that match, stopping after `limit` of them or `maxExamined`
   * keys looked at, always at a hash boundary so the next page starts cleanly.
   */
  scanPage(from: number, limit: number, maxExamined: number, match: (key: string) => boolean, nowMs: number): ScanPage {
    const keys: string[] = [];
    let examined = 0;
    let pos = from;
    for (let b = pos >>> 16; b < BUCKET_COUNT; b++, pos = b * 0x10000) {
      const bucket = this.scan.bucket(b);
      if (bucket === undefined || bucket.length === 0) continue;
      const todo = bucket.filter((e) => scanHash(e) >= pos).sort(compareScanOrder);
      let i = 0;
      while (i < todo.length) {
        const hash = scanHash(todo[i] as KeyEntry);
        for (; i < todo.length && scanHash(todo[i] as KeyEntry) === hash; i++) {
          const e = todo[i] as KeyEntry;
          examined++;
          if (e.expiresAtMs > nowMs && match(e.key)) keys.push(e.key);
        }
        if (keys.length >= limit || examined >= maxExamined) {
          return { keys, next: hash + 1 >= 0x1_0000_0000 ? -1 : hash + 1 };
        }
      }
    }
    return { keys, next: -1 };
  }
}

export type { Capture };
