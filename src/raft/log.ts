import { invariant } from './errors.ts';
import type { Entry, SnapshotMeta } from './types.ts';

/**
 * The in-memory view of one node's log: a base (the last compacted index and
 * its term) followed by the entries after it. It also tracks what has been
 * handed out for persistence and application.
 *
 * Invariants: base.index <= applied <= applying <= committed <= lastIndex();
 * entries[i].index === base.index + 1 + i; committed entries never change.
 */
export class RaftLog {
  private baseIndex: number;
  private baseTerm: number;
  private entries: Entry[];
  /** Highest index known committed. */
  committed: number;
  /** Highest index the caller has applied (acknowledged through advance()). */
  applied: number;
  /** Highest index handed out for application but not yet acknowledged. */
  applying: number;
  /** First index whose entry has not been handed out for persistence. */
  private unstableFrom: number;
  /** Highest index the caller has confirmed durable (through advance()): what the leader may count for itself. */
  persisted: number;
  /** Lowest index truncated since entries were last handed out: those in flight at or after it are stale. */
  private truncatedSinceHandout = Number.POSITIVE_INFINITY;
  /** The latest snapshot this node has (taken or installed). */
  snapshot: SnapshotMeta | null;
  /** A snapshot received from the leader and not yet handed out for installation. */
  pendingSnapshot: SnapshotMeta | null = null;
  /** While set, committed entries are not handed out for application (the caller's state is not ready for them). */
  applyPaused = false;

  constructor(snapshot: SnapshotMeta | null, entries: readonly Entry[], committed: number) {
    this.snapshot = snapshot;
    const snapIndex = snapshot?.index ?? 0;
    const first = entries[0];
    if (first === undefined || first.index === snapIndex + 1) {
      this.baseIndex = snapIndex;
      this.baseTerm = snapshot?.term ?? 0;
      this.entries = [...entries];
    } else {
      // A trailing window kept below the snapshot: the first entry becomes the base,
      // because the term of the index before it is no longer known.
      invariant(first.index <= snapIndex + 1, () => `log starts at ${first.index}, after the snapshot at ${snapIndex} (a gap)`);
      this.baseIndex = first.index;
      this.baseTerm = first.term;
      this.entries = entries.slice(1);
    }
    for (let i = 0; i < this.entries.length; i++) {
      const entry = this.entries[i] as Entry;
      invariant(entry.index === this.baseIndex + 1 + i, () => `log entry ${entry.index} out of place (expected ${this.baseIndex + 1 + i})`);
    }
    this.committed = Math.max(committed, snapIndex);
    invariant(this.committed <= this.lastIndex(), () => `commit index ${committed} is past the last log index ${this.lastIndex()}`);
    this.applied = snapIndex;
    this.applying = snapIndex;
    this.unstableFrom = this.lastIndex() + 1;
    this.persisted = this.lastIndex();
  }

  firstIndex(): number {
    return this.baseIndex + 1;
  }

  lastIndex(): number {
    return this.baseIndex + this.entries.length;
  }

  lastTerm(): number {
    return this.entries.length === 0 ? this.baseTerm : (this.entries[this.entries.length - 1] as Entry).term;
  }

  /** The term at `index`, or undefined when it was compacted away or does not exist yet. */
  term(index: number): number | undefined {
    if (index === this.baseIndex) return this.baseTerm;
    if (index < this.baseIndex || index > this.lastIndex()) return undefined;
    return (this.entries[index - this.baseIndex - 1] as Entry).term;
  }

  entryAt(index: number): Entry | undefined {
    if (index <= this.baseIndex) return undefined;
    return this.entries[index - this.baseIndex - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The largest index <= `index` whose term is <= `term`: where a leader and a
   * follower may agree, so a rejected append can skip a whole term at once.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let i = Math.min(index, this.lastIndex());
    for (;;) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term || i === this.baseIndex) return { index: i, term: t };
      i--;
    }
  }

  /**
   * Appends a leader's entries after (prevIndex, prevTerm) if that matches.
   * Returns the index of the last entry the leader sent, or null on mismatch.
   */
  maybeAppend(prevIndex: number, prevTerm: number, leaderCommit: number, entries: readonly Entry[]): number | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNew = prevIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      invariant(conflict > this.committed, () => `entry ${conflict} conflicts with the committed prefix (commit ${this.committed})`);
      this.append(entries.slice(conflict - (prevIndex + 1)));
    }
    this.commitTo(Math.min(leaderCommit, lastNew));
    return lastNew;
  }

  /** Index of the first entry that is new or differs in term; 0 when all are present. */
  private findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /** Appends entries, first dropping any existing entry at or after the first one's index. */
  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    invariant(first.index > this.committed, () => `cannot overwrite committed entry ${first.index} (commit ${this.committed})`);
    invariant(first.index <= this.lastIndex() + 1, () => `append at ${first.index} leaves a gap after ${this.lastIndex()}`);
    const keep = first.index - this.baseIndex - 1;
    if (keep < this.entries.length) {
      this.entries.length = keep;
      this.truncatedSinceHandout = Math.min(this.truncatedSinceHandout, first.index);
      this.persisted = Math.min(this.persisted, first.index - 1);
    }
    for (const entry of entries) this.entries.push(entry);
    this.unstableFrom = Math.min(this.unstableFrom, first.index);
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    invariant(index <= this.lastIndex(), () => `commit ${index} is past the last log index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  /** Entries in [lo, hi), at least one if any, then up to maxBytes of data in all. */
  slice(lo: number, hi: number, maxBytes: number, maxCount: number): Entry[] {
    invariant(lo > this.baseIndex, () => `slice from ${lo} reaches into the compacted log (base ${this.baseIndex})`);
    const out: Entry[] = [];
    let bytes = 0;
    const end = Math.min(hi, this.lastIndex() + 1);
    for (let i = lo; i < end && out.length < maxCount; i++) {
      const entry = this.entries[i - this.baseIndex - 1] as Entry;
      bytes += entry.data.length;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  /** Entries not yet handed out for persistence; marks them handed out. */
  takeUnstable(): Entry[] {
    const from = this.unstableFrom;
    this.unstableFrom = this.lastIndex() + 1;
    this.truncatedSinceHandout = Number.POSITIVE_INFINITY;
    if (from > this.lastIndex()) return [];
    return this.entries.slice(from - this.baseIndex - 1);
  }

  hasUnstable(): boolean {
    return this.unstableFrom <= this.lastIndex() || this.pendingSnapshot !== null;
  }

  hasNextCommitted(): boolean {
    return this.committed > this.applying && this.pendingSnapshot === null && !this.applyPaused;
  }

  /** Committed entries not yet handed out for application, up to maxBytes (at least one). */
  takeCommitted(maxBytes: number): Entry[] {
    if (!this.hasNextCommitted()) return [];
    const out = this.slice(this.applying + 1, this.committed + 1, maxBytes, Number.MAX_SAFE_INTEGER);
    const last = out[out.length - 1];
    if (last !== undefined) this.applying = last.index;
    return out;
  }

  /** The caller made the entries handed out through `index` durable (those since overwritten excepted). */
  persistedTo(index: number): void {
    const durable = Math.min(index, this.truncatedSinceHandout - 1, this.lastIndex());
    if (durable > this.persisted) this.persisted = durable;
  }

  appliedTo(index: number): void {
    invariant(index <= this.committed, () => `applied ${index} is past commit ${this.committed}`);
    if (index > this.applied) this.applied = index;
  }

  /** Replaces the whole log with a snapshot from the leader. */
  restore(snapshot: SnapshotMeta): void {
    invariant(snapshot.index > this.committed, () => `snapshot at ${snapshot.index} does not move past commit ${this.committed}`);
    this.baseIndex = snapshot.index;
    this.baseTerm = snapshot.term;
    this.entries = [];
    this.committed = snapshot.index;
    this.applying = snapshot.index;
    this.unstableFrom = snapshot.index + 1;
    this.persisted = snapshot.index;
    this.snapshot = snapshot;
    this.pendingSnapshot = snapshot;
  }

  /** Hands out a received snapshot for installation. */
  takePendingSnapshot(): SnapshotMeta | null {
    const snapshot = this.pendingSnapshot;
    this.pendingSnapshot = null;
    return snapshot;
  }

  /**
   * Records a snapshot taken at `snapshot.index` and drops entries at or below
   * it, keeping `keepEntries` before it for followers that are a little behind.
   */
  compact(snapshot: SnapshotMeta, keepEntries: number): void {
    const newBase = Math.max(this.baseIndex, snapshot.index - keepEntries);
    if (newBase > this.baseIndex) {
      const baseTerm = this.term(newBase) as number;
      this.entries = this.entries.slice(newBase - this.baseIndex);
      this.baseIndex = newBase;
      this.baseTerm = baseTerm;
    }
    this.snapshot = snapshot;
  }
}
