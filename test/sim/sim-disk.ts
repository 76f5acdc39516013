import type { Entry, HardState, InitialState, SnapshotMeta } from '../../src/raft/index.ts';

export interface StoredSnapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

export interface DiskWrite {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: StoredSnapshot | null;
}

/**
 * A node's durable storage. A write becomes durable only when its (simulated)
 * fsync completes; a crash before then loses it whole, as a SQLite transaction would be.
 */
export class SimDisk {
  private hardState: HardState;
  private snapshot: StoredSnapshot | null;
  private entries: Entry[];

  constructor(initial: InitialState, snapshotData: Uint8Array | null) {
    this.hardState = initial.hardState;
    this.snapshot = initial.snapshot === null ? null : { meta: initial.snapshot, data: snapshotData ?? new Uint8Array(0) };
    this.entries = [...initial.entries];
  }

  load(): { initial: InitialState; snapshotData: Uint8Array | null } {
    return {
      initial: { hardState: this.hardState, snapshot: this.snapshot?.meta ?? null, entries: [...this.entries] },
      snapshotData: this.snapshot?.data ?? null,
    };
  }

  latestSnapshot(): StoredSnapshot | null {
    return this.snapshot;
  }

  /** Applies one Ready's writes atomically. */
  commit(write: DiskWrite): void {
    if (write.snapshot !== null) {
      // A snapshot from the leader replaces the whole log, as it does in the core:
      // entries after it came from a branch the leader does not share.
      this.snapshot = write.snapshot;
      this.entries = [];
    }
    if (write.hardState !== null) this.hardState = write.hardState;
    const first = write.entries[0];
    if (first !== undefined) {
      const keep = this.entries.findIndex((e) => e.index >= first.index);
      if (keep !== -1) this.entries.length = keep;
      const last = this.entries[this.entries.length - 1];
      if (last !== undefined && last.index + 1 !== first.index) {
        throw new Error(`disk: append at ${first.index} leaves a gap after ${last.index}`);
      }
      this.entries.push(...write.entries);
    }
  }

  /** Saves a snapshot taken by the node and drops entries it covers, keeping a trailing window. */
  saveSnapshot(snapshot: StoredSnapshot, keepEntries: number): void {
    this.snapshot = snapshot;
    const firstKept = snapshot.meta.index - keepEntries + 1;
    this.entries = this.entries.filter((e) => e.index >= firstKept);
  }

  /** Whether `next` changes nothing durable but the commit index. */
  differsOnlyInCommit(next: HardState): boolean {
    return next.term === this.hardState.term && next.vote === this.hardState.vote;
  }

  lastIndex(): number {
    return this.entries[this.entries.length - 1]?.index ?? this.snapshot?.meta.index ?? 0;
  }
}
