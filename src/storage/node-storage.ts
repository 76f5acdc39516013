/**
 * A node's durable state in its data dir:
 *
 *   <dir>/node.db                 log, hard state, snapshot catalog, identity (SQLite, WAL, synced by WalSync)
 *   <dir>/LOCK                    who holds the data dir (informational; the lock is node.db's)
 *   <dir>/snapshots/*.sqlite      snapshot files, the newest few
 *
 * The Raft core's Ready is persisted by one persist() call, in one
 * transaction, durable when it returns; or by persistAsync(), which commits
 * the same transaction now and makes it durable off the event loop. Writes that would break the log's
 * invariants (a gap, an overwrite of committed entries, a term or commit
 * going backwards) are refused with InvalidWriteError: they are bugs
 * upstream, and storing them would spread the damage.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Entry, HardState, NodeId } from '../raft/types.ts';
import { NONE } from '../raft/types.ts';
import { forgetHolder } from './data-dir-lock.ts';
import { fsyncDir, removeIfPresent } from './durable-fs.ts';
import { CorruptDataError, InvalidWriteError, StorageClosedError } from './errors.ts';
import { HardStateStore } from './hard-state-store.ts';
import { LogStore } from './log-store.ts';
import type { LogBounds } from './log-store.ts';
import { NODE_DB_FILE, openNodeDb } from './node-db.ts';
import { SnapshotCatalog } from './snapshot-catalog.ts';
import type { SnapshotRecord } from './snapshot-catalog.ts';
import { SnapshotFileReader, SnapshotFileWriter, fileSize } from './snapshot-file.ts';
import type { PackedKeyRows } from './packed-key-rows.ts';
import { readSnapshotRowsInWorker } from './snapshot-read-thread.ts';
import type { ReadPriority } from './snapshot-read-thread.ts';
import { IncrementalDeclinedError } from './snapshot-update.ts';
import type { IncrementalLimits } from './snapshot-update.ts';
import { SnapshotWriterThread } from './snapshot-write-thread.ts';
import type { WriterThreadInfo } from './snapshot-write-thread.ts';
import { SnapshotReceiver, readFileChunks } from './snapshot-transfer.ts';
import { WalSync } from './wal-sync.ts';
import { withCorruptionMapped } from './sqlite.ts';
import type { Db } from './sqlite.ts';
import type { SnapshotContent, SnapshotHeader, SnapshotSessionRow, StoredSnapshot } from './types.ts';
import { confStateText, isCount } from './validate.ts';

export const SNAPSHOTS_DIR = 'snapshots';

/** Snapshot files kept by default: the newest, and the one before it for a follower still downloading it. */
export const DEFAULT_RETAINED_SNAPSHOTS = 2;

const SNAPSHOT_NAME = /^snapshot-\d{20}-\d+-[0-9a-f]{8}\.sqlite$/;

/**
 * A snapshot is written as an update of the newest file while at most a
 * fifth of its keys changed since it: a changed key costs SQLite about 4x
 * what a key of a whole write costs (a random delete and an insert in two
 * b-trees against an append), so past about a fifth writing whole is
 * cheaper (`npm run bench -- storage`, BENCHMARKS.md). And until the rows
 * replaced since the file was last written whole reach its row count: the
 * holes they leave make the file up to about 1.4x its size.
 */
export const DEFAULT_INCREMENTAL_LIMITS: IncrementalLimits = { maxChangedFraction: 0.2, maxReplacedFraction: 1 };

/** How writeSnapshot wrote its file: as an update of the newest one (incremental), or whole and why. */
export interface SnapshotWriteReport {
  readonly incremental: boolean;
  /** Keys changed since the base, when the content said. */
  readonly changedKeys: number | null;
  /** Why an incremental write was not possible; null when it was, or was not offered. */
  readonly wholeBecause: string | null;
}

export interface OpenOptions {
  /** Chosen at bootstrap; a data dir of another cluster is refused. */
  readonly clusterId: string;
  readonly nodeId: NodeId;
  /** Create the node database when the dir has none (bootstrap or join); otherwise its absence is an error. */
  readonly create: boolean;
  /** Snapshot files to keep, newest first (at least 1; default 2). */
  readonly retainSnapshots?: number;
  /** When a snapshot is written as an update of the newest file; default DEFAULT_INCREMENTAL_LIMITS. */
  readonly incrementalLimits?: IncrementalLimits;
}

/** What a node restarts from. */
export interface LoadedState {
  readonly hardState: HardState;
  /** The newest snapshot; restore the state machine from its file, then apply entries after its index. */
  readonly snapshot: StoredSnapshot | null;
  /**
   * Every stored entry in index order, after compaction. With a snapshot at
   * index S, this may start at or below S (the trailing window kept for slow
   * followers); entries after S are the ones to apply.
   */
  readonly entries: readonly Entry[];
}

/** A received snapshot (from SnapshotReceiver.finish) that the Raft core has decided to install. */
export interface SnapshotInstall {
  readonly file: StoredSnapshot;
  /**
   * Keep the entries after the snapshot's index when the log holds the
   * snapshot's index at the snapshot's term (they agree with the leader).
   * Otherwise, and by default, the snapshot replaces the whole log.
   */
  readonly keepLogSuffix?: boolean;
}

/**
 * One Ready's worth of writes; persist() applies the snapshot, then the
 * entries, then the hard state. Absent and null mean the same (the Raft
 * core's Ready says null for "nothing").
 */
export interface PersistBatch {
  readonly hardState?: HardState | null;
  readonly entries?: readonly Entry[];
  readonly snapshot?: SnapshotInstall | null;
}

/** The writes of one persist(), validated, for its transaction. */
interface BatchPlan {
  readonly record: SnapshotRecord | undefined;
  readonly keepSuffix: boolean;
  readonly entries: readonly Entry[];
  readonly hardState: HardState | null;
}

export class NodeStorage {
  /** Absolute path of the data dir. */
  readonly dir: string;
  readonly clusterId: string;
  readonly nodeId: NodeId;
  private readonly dbFile: string;
  private readonly snapshotDir: string;
  private readonly retainSnapshots: number;
  private readonly incrementalLimits: IncrementalLimits;
  /** A snapshot file an incremental write failed on (after consuming rows): the next write is whole. */
  private failedBase: string | null = null;
  private lastWrite: SnapshotWriteReport | null = null;
  /** Writes snapshot files off the main thread, started on the first write. */
  private readonly writer = new SnapshotWriterThread();
  private readonly log: LogStore;
  private readonly hardStates: HardStateStore;
  private readonly catalog: SnapshotCatalog;
  private readonly wal: WalSync;
  // Mirrors of what is committed (durable once the WAL is synced), so that persist() validates without reading.
  private durableHardState: HardState;
  private snapshots: SnapshotRecord[];
  private bounds: LogBounds | null;
  private closed = false;
  // Transaction wrappers, built once: persist() is the hot path.
  private readonly writeBatch: (plan: BatchPlan) => [SnapshotRecord[], SnapshotRecord[]] | null;
  private readonly recordSnapshot: (record: SnapshotRecord) => [SnapshotRecord[], SnapshotRecord[]];

  private constructor(
    private readonly db: Db,
    dir: string,
    options: OpenOptions,
  ) {
    this.dir = dir;
    this.clusterId = options.clusterId;
    this.nodeId = options.nodeId;
    this.dbFile = join(dir, NODE_DB_FILE);
    this.snapshotDir = join(dir, SNAPSHOTS_DIR);
    this.retainSnapshots = options.retainSnapshots ?? DEFAULT_RETAINED_SNAPSHOTS;
    this.incrementalLimits = options.incrementalLimits ?? DEFAULT_INCREMENTAL_LIMITS;
    this.log = new LogStore(db, this.dbFile);
    this.hardStates = new HardStateStore(db, this.dbFile);
    this.catalog = new SnapshotCatalog(db, this.dbFile);
    this.wal = new WalSync(this.dbFile);
    this.durableHardState = this.hardStates.read();
    this.snapshots = this.catalog.list();
    this.bounds = this.log.bounds();
    this.writeBatch = db.transaction((plan: BatchPlan) => {
      let catalog: [SnapshotRecord[], SnapshotRecord[]] | null = null;
      if (plan.record !== undefined) {
        this.catalog.insert(plan.record);
        if (plan.keepSuffix) this.log.deleteThrough(plan.record.index);
        else this.log.deleteFrom(0);
        catalog = this.withRecord(plan.record);
      }
      this.log.append(plan.entries);
      if (plan.hardState !== null) this.hardStates.write(plan.hardState);
      return catalog;
    });
    this.recordSnapshot = db.transaction((record: SnapshotRecord) => {
      this.catalog.insert(record);
      return this.withRecord(record);
    });
  }

  /**
   * Opens and locks the data dir. Refuses (with a StorageError) a dir that is
   * locked, not initialized (without `create`), of another cluster or node,
   * of a newer format, or damaged. Full entry checksums are verified by load().
   */
  static open(dir: string, options: OpenOptions): NodeStorage {
    const retain = options.retainSnapshots ?? DEFAULT_RETAINED_SNAPSHOTS;
    if (!Number.isSafeInteger(retain) || retain < 1) throw new RangeError(`retainSnapshots must be at least 1 (got ${retain})`);
    const absolute = resolve(dir);
    const db = openNodeDb(absolute, { clusterId: options.clusterId, nodeId: options.nodeId }, options.create);
    try {
      const storage = withCorruptionMapped(join(absolute, NODE_DB_FILE), () => new NodeStorage(db, absolute, options));
      storage.checkOnOpen();
      storage.removeStrayFiles();
      return storage;
    } catch (error) {
      forgetHolder(absolute);
      db.close();
      throw error;
    }
  }

  get hardState(): HardState {
    return this.durableHardState;
  }

  /** The newest recorded snapshot, or null. */
  get latestSnapshot(): StoredSnapshot | null {
    const latest = this.snapshots[0];
    return latest === undefined ? null : this.toStored(latest);
  }

  /**
   * Starts the snapshot writer thread now instead of at the first snapshot:
   * loading its modules costs a few hundred milliseconds of CPU under tsx,
   * better spent while the node starts than while it serves.
   */
  startSnapshotWriter(): void {
    this.assertOpen();
    this.writer.start();
  }

  /** The thread that writes snapshot files, once started: its OS thread id and nice value. */
  get snapshotWriterThread(): WriterThreadInfo | null {
    return this.writer.thread;
  }

  /** How the last writeSnapshot() wrote its file; null before any. */
  get lastSnapshotWrite(): SnapshotWriteReport | null {
    return this.lastWrite;
  }

  /** Index of the first stored entry, or null when the log is empty. */
  get firstIndex(): number | null {
    return this.bounds?.firstIndex ?? null;
  }

  /** The last index the node has: its last entry, or the snapshot's index when the log is empty beyond it. */
  get lastIndex(): number {
    return Math.max(this.bounds?.lastIndex ?? 0, this.snapshots[0]?.index ?? 0);
  }

  /**
   * Reads everything a restarting node needs, verifying each entry's
   * checksum, that indexes are contiguous and terms never decrease, and that
   * log, snapshot and hard state agree. Throws CorruptDataError otherwise.
   */
  load(): LoadedState {
    this.assertOpen();
    return withCorruptionMapped(this.dbFile, () => {
      const hardState = this.hardStates.read();
      const latest = this.catalog.list()[0];
      const entries = this.log.readAll();
      const first = entries[0];
      const last = entries[entries.length - 1];
      const bounds = first === undefined || last === undefined ? null : { firstIndex: first.index, lastIndex: last.index, lastTerm: last.term };
      this.checkConsistency(hardState, latest, bounds);
      if (latest !== undefined && first !== undefined) {
        const atSnapshot = entries[latest.index - first.index];
        if (atSnapshot !== undefined && atSnapshot.term !== latest.term) {
          throw new CorruptDataError(
            this.dbFile,
            `log entry ${latest.index} has term ${atSnapshot.term}, but the snapshot at that index has term ${latest.term}`,
          );
        }
        const afterSnapshot = entries[latest.index + 1 - first.index];
        if (afterSnapshot !== undefined && afterSnapshot.term < latest.term) {
          throw new CorruptDataError(
            this.dbFile,
            `log entry ${afterSnapshot.index} has term ${afterSnapshot.term}, below the term ${latest.term} of the snapshot at index ${latest.index}`,
          );
        }
      }
      return { hardState, snapshot: latest === undefined ? null : this.toStored(latest), entries };
    });
  }

  /**
   * Persists one Ready in one durable transaction: a snapshot to install
   * (replacing the log), entries to append (first deleting any stored entries
   * from the first one's index on), and the hard state. Returns once it is on
   * disk; the Ready's messages may be sent after that.
   */
  persist(batch: PersistBatch): void {
    if (this.write(batch)) this.wal.syncNow();
  }

  /**
   * persist(), with the fsync on libuv's thread pool: the transaction commits
   * now (later reads and writes see it), and is durable once the promise
   * resolves. Nothing that depends on the batch may leave the node before.
   * Rejects on an I/O error, after which the node must stop: what is on disk is unknown.
   */
  persistAsync(batch: PersistBatch): Promise<void> {
    return this.write(batch) ? this.wal.sync() : Promise.resolve();
  }

  /** Validates and commits `batch` (not yet durable); false when there was nothing to write. */
  private write(batch: PersistBatch): boolean {
    this.assertOpen();
    const entries = batch.entries ?? [];
    const install = batch.snapshot ?? undefined;
    const hardState = batch.hardState ?? undefined;
    const hardStateChanged = hardState !== undefined && !sameHardState(hardState, this.durableHardState);
    if (entries.length === 0 && install === undefined && !hardStateChanged) return false;

    const previous = this.durableHardState;
    let snapshotIndex = this.snapshots[0]?.index ?? 0;
    let snapshotTerm = this.snapshots[0]?.term ?? 0;
    let bounds = this.bounds;
    let record: SnapshotRecord | undefined;
    let keepSuffix = false;

    if (install !== undefined) {
      record = this.checkInstall(install.file);
      if (record.index <= snapshotIndex) {
        throw new InvalidWriteError(
          `cannot install the snapshot at index ${record.index}: the latest snapshot is already at index ${snapshotIndex}`,
        );
      }
      keepSuffix = install.keepLogSuffix === true && this.termAt(record.index) === record.term;
      snapshotIndex = record.index;
      snapshotTerm = record.term;
      bounds = keepSuffix && bounds !== null && bounds.lastIndex > record.index ? { ...bounds, firstIndex: record.index + 1 } : null;
    }

    const first = entries[0];
    const last = entries[entries.length - 1];
    if (first !== undefined && last !== undefined) {
      checkEntries(entries);
      const lastIndex = Math.max(bounds?.lastIndex ?? 0, snapshotIndex);
      if (first.index > lastIndex + 1) {
        throw new InvalidWriteError(`cannot append at index ${first.index}: the log ends at ${lastIndex}, so that would leave a gap`);
      }
      if (first.index <= snapshotIndex) {
        throw new InvalidWriteError(`cannot append at index ${first.index}: entries through ${snapshotIndex} are covered by a snapshot`);
      }
      if (first.index <= previous.commit) {
        throw new InvalidWriteError(
          `cannot append at index ${first.index}: it would overwrite committed entries (commit is ${previous.commit})`,
        );
      }
      const prevIndex = first.index - 1;
      const prevTerm =
        prevIndex === snapshotIndex ? snapshotTerm : prevIndex === bounds?.lastIndex ? bounds.lastTerm : (this.log.termAt(prevIndex) ?? 0);
      if (first.term < prevTerm) {
        throw new InvalidWriteError(`entry ${first.index} has term ${first.term}, below the term ${prevTerm} of entry ${prevIndex}`);
      }
      bounds = {
        firstIndex: bounds === null ? first.index : Math.min(bounds.firstIndex, first.index),
        lastIndex: last.index,
        lastTerm: last.term,
      };
    }

    const next = hardState ?? previous;
    if (hardState !== undefined) checkHardStateStep(previous, hardState);
    const lastIndex = Math.max(bounds?.lastIndex ?? 0, snapshotIndex);
    if (next.commit > lastIndex) {
      throw new InvalidWriteError(`commit ${next.commit} is beyond the last index ${lastIndex}: only stored entries can be committed`);
    }
    if (snapshotIndex > next.commit) {
      throw new InvalidWriteError(
        `the snapshot at index ${snapshotIndex} is beyond commit ${next.commit}: persist the hard state with the new commit in the same batch`,
      );
    }

    const plan: BatchPlan = { record, keepSuffix, entries, hardState: hardStateChanged ? next : null };
    const catalog = withCorruptionMapped(this.dbFile, () => this.writeBatch(plan));
    this.durableHardState = next;
    this.bounds = bounds;
    if (catalog !== null) {
      this.snapshots = catalog[0];
      this.removeFiles(catalog[1]);
    }
    return true;
  }

  /**
   * Deletes the entries through `throughIndex`, which a snapshot must cover.
   * The node passes (snapshot index - trailing window) to keep recent entries
   * for followers that are only a little behind; below 1 it is a no-op.
   * Not synced here: a crash that loses it only leaves entries a snapshot covers.
   */
  compact(throughIndex: number): void {
    this.assertOpen();
    const latest = this.snapshots[0];
    if (!Number.isSafeInteger(throughIndex)) throw new InvalidWriteError(`cannot compact through ${throughIndex}: not an index`);
    // (snapshot index - trailing window) is below 1 while the log is young: nothing to delete yet.
    if (throughIndex < 1) return;
    if (latest === undefined || throughIndex > latest.index) {
      throw new InvalidWriteError(
        `cannot compact through index ${throughIndex}: no snapshot covers it (the latest snapshot is at ${latest?.index ?? 'none'})`,
      );
    }
    const bounds = this.bounds;
    if (bounds === null || throughIndex < bounds.firstIndex) return;
    withCorruptionMapped(this.dbFile, () => this.log.deleteThrough(throughIndex));
    this.bounds = throughIndex >= bounds.lastIndex ? null : { ...bounds, firstIndex: throughIndex + 1 };
  }

  /**
   * Makes an empty data dir the first state of a new cluster's member: an
   * empty snapshot at `header.index` holding the membership, and a hard state
   * that commits it, recorded in one transaction. Refuses a dir with any state.
   */
  async bootstrap(header: SnapshotHeader): Promise<StoredSnapshot> {
    this.assertOpen();
    if (this.snapshots.length > 0 || this.bounds !== null || this.durableHardState.term !== 0) {
      throw new InvalidWriteError(`cannot bootstrap ${this.dir}: it already holds a log, a snapshot or a term`);
    }
    const path = join(this.snapshotDir, snapshotFileName(header.index, header.term));
    // No rows: written here, without starting the writer thread.
    const writer = SnapshotFileWriter.create(path, header, { clusterId: this.clusterId, nodeId: this.nodeId });
    try {
      writer.finish([], { stateDigest: null, keyCount: null });
    } catch (error) {
      writer.abort();
      throw error;
    }
    const record = snapshotRecord(path, header);
    const hardState: HardState = { term: header.term, vote: NONE, commit: header.index };
    const catalog = withCorruptionMapped(this.dbFile, () => this.writeBatch({ record, keepSuffix: false, entries: [], hardState }));
    this.wal.syncNow();
    this.durableHardState = hardState;
    if (catalog !== null) this.snapshots = catalog[0];
    return this.toStored(record);
  }

  /**
   * Writes a snapshot of this node's state machine, applied through
   * `header.index`, and records it once its file is durably in place; older
   * files beyond the retention count are deleted. The file is written on a
   * low-priority thread (snapshot-write-thread.ts); this thread only packs
   * the rows for it, with periodic yields to the event loop, so the node
   * keeps running: `content` must iterate a point-in-time view. Compact the
   * log separately.
   *
   * With `content.changes` whose base is the newest snapshot file, the file
   * is written as an update of a copy of that one (snapshot-update.ts),
   * unless too much changed or the base does not serve; lastSnapshotWrite says which.
   */
  async writeSnapshot(header: SnapshotHeader, content: SnapshotContent): Promise<StoredSnapshot> {
    this.assertOpen();
    if (header.index > this.durableHardState.commit) {
      throw new InvalidWriteError(
        `cannot snapshot at index ${header.index}: only committed state can be snapshotted (commit is ${this.durableHardState.commit})`,
      );
    }
    const termThere = this.termAt(header.index);
    if (termThere !== null && termThere !== header.term) {
      throw new InvalidWriteError(`snapshot at index ${header.index} says term ${header.term}, but the log has term ${termThere} there`);
    }
    const path = join(this.snapshotDir, snapshotFileName(header.index, header.term));
    this.lastWrite = await this.writeSnapshotFile(path, header, content);
    if (this.closed) {
      removeIfPresent(path);
      throw new StorageClosedError(this.dir);
    }
    const record = snapshotRecord(path, header);
    const [kept, pruned] = withCorruptionMapped(this.dbFile, () => this.recordSnapshot(record));
    // Durable before the pruned files go and before the caller compacts the log.
    this.wal.syncNow();
    this.snapshots = kept;
    this.removeFiles(pruned);
    return this.toStored(record);
  }

  /** Writes the file: incrementally when the changes start from the newest file and that serves, else whole. */
  private async writeSnapshotFile(path: string, header: SnapshotHeader, content: SnapshotContent): Promise<SnapshotWriteReport> {
    const identity = { clusterId: this.clusterId, nodeId: this.nodeId };
    const changes = content.changes;
    const base = this.snapshots[0];
    let wholeBecause: string | null = null;
    if (changes === undefined) {
      // Nothing to update from: written whole.
    } else if (base === undefined || base.index !== changes.baseIndex) {
      wholeBecause = `the changes start from index ${changes.baseIndex}, the newest snapshot is at ${base?.index ?? 'none'}`;
    } else if (base.file === this.failedBase) {
      wholeBecause = `an incremental write from ${base.file} failed before`;
    } else {
      try {
        await this.writer.update(path, join(this.snapshotDir, base.file), header, content, changes, identity, this.incrementalLimits);
        return { incremental: true, changedKeys: changes.keys.size, wholeBecause: null };
      } catch (error) {
        if (!(error instanceof IncrementalDeclinedError)) {
          this.failedBase = base.file;
          throw error;
        }
        wholeBecause = error.message;
      }
    }
    await this.writer.writeWhole(path, header, content, identity);
    return { incremental: false, changedKeys: changes?.keys.size ?? null, wholeBecause };
  }

  /**
   * Starts receiving the leader's snapshot at (index, term) as a stream of
   * chunks. Its finish() verifies the whole file; hand the result to
   * persist({ snapshot: { file } }) when the Raft core installs it.
   */
  async receiveSnapshot(expected: { readonly index: number; readonly term: number }): Promise<SnapshotReceiver> {
    this.assertOpen();
    if (!isCount(expected.index) || !isCount(expected.term)) {
      throw new InvalidWriteError(`snapshot index and term must be non-negative integers (got ${expected.index}, ${expected.term})`);
    }
    const path = join(this.snapshotDir, snapshotFileName(expected.index, expected.term));
    return SnapshotReceiver.start(`${path}.tmp`, path, { clusterId: this.clusterId, index: expected.index, term: expected.term });
  }

  /** Opens a snapshot file to restore from (its header is checked now, its rows as they are read). */
  openSnapshot(snapshot: StoredSnapshot): SnapshotFileReader {
    this.assertOpen();
    return SnapshotFileReader.open(snapshot.path, { clusterId: this.clusterId, index: snapshot.index, term: snapshot.term });
  }

  /**
   * Reads a snapshot file's rows on a worker thread, checked as openSnapshot()'s
   * reader checks them; `onKeys` gets them in batches (see readSnapshotRowsInWorker).
   */
  readSnapshotRows(snapshot: StoredSnapshot, onKeys: (batch: PackedKeyRows) => void, priority: ReadPriority | null = null): Promise<SnapshotSessionRow[]> {
    this.assertOpen();
    return readSnapshotRowsInWorker(snapshot.path, { clusterId: this.clusterId, index: snapshot.index, term: snapshot.term }, onKeys, priority);
  }

  /** The bytes of a snapshot file, for streaming it to a follower. */
  snapshotChunks(snapshot: StoredSnapshot, chunkBytes?: number, fromOffset?: number): AsyncGenerator<Uint8Array, void, undefined> {
    this.assertOpen();
    return readFileChunks(snapshot.path, chunkBytes, fromOffset);
  }

  /** Releases the data dir. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.close();
    forgetHolder(this.dir);
    this.wal.close();
    this.db.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new StorageClosedError(this.dir);
  }

  /** The term at `index` when storage knows it (a stored entry or a snapshot's index), else null. */
  private termAt(index: number): number | null {
    if (index === 0) return 0;
    const snapshot = this.snapshots.find((s) => s.index === index);
    if (snapshot !== undefined) return snapshot.term;
    if (this.bounds !== null && index === this.bounds.lastIndex) return this.bounds.lastTerm;
    return this.log.termAt(index);
  }

  /** Cheap checks that the hard state, the log's ends and the snapshot files agree. */
  private checkOnOpen(): void {
    withCorruptionMapped(this.dbFile, () => {
      const latest = this.snapshots[0];
      this.checkConsistency(this.durableHardState, latest, this.bounds);
      if (latest !== undefined && this.bounds !== null) {
        const term = this.log.termAt(latest.index);
        if (term !== null && term !== latest.term) {
          throw new CorruptDataError(
            this.dbFile,
            `log entry ${latest.index} has term ${term}, but the snapshot at that index has term ${latest.term}`,
          );
        }
      }
    });
    for (const record of this.snapshots) {
      const path = join(this.snapshotDir, record.file);
      if (!fs.existsSync(path)) {
        throw new CorruptDataError(path, `the snapshot file recorded in ${this.dbFile} (index ${record.index}) is missing`);
      }
      const size = fileSize(path);
      if (size !== record.sizeBytes) {
        throw new CorruptDataError(path, `the snapshot file is ${size} bytes, but ${record.sizeBytes} were recorded when it was written`);
      }
    }
    const latest = this.snapshots[0];
    if (latest !== undefined) this.checkFileMatches(latest).close();
  }

  private checkConsistency(hardState: HardState, latest: SnapshotRecord | undefined, bounds: LogBounds | null): void {
    const file = this.dbFile;
    if (bounds !== null) {
      if (latest === undefined && bounds.firstIndex !== 1) {
        throw new CorruptDataError(file, `the log starts at index ${bounds.firstIndex}, but there is no snapshot covering the entries before it`);
      }
      if (latest !== undefined && bounds.firstIndex > latest.index + 1) {
        throw new CorruptDataError(
          file,
          `the log starts at index ${bounds.firstIndex}, leaving a gap after the latest snapshot at index ${latest.index}`,
        );
      }
    }
    const lastIndex = Math.max(bounds?.lastIndex ?? 0, latest?.index ?? 0);
    if (hardState.commit > lastIndex) {
      throw new CorruptDataError(file, `the hard state's commit is ${hardState.commit}, but the log ends at ${lastIndex}: committed entries are missing`);
    }
    if (latest !== undefined && latest.index > hardState.commit) {
      throw new CorruptDataError(file, `the latest snapshot is at index ${latest.index}, beyond the hard state's commit ${hardState.commit}`);
    }
  }

  /** Checks that a received file is in this data dir, not yet recorded, and holds what its StoredSnapshot says. */
  private checkInstall(file: StoredSnapshot): SnapshotRecord {
    const name = basename(file.path);
    if (resolve(dirname(file.path)) !== this.snapshotDir || !SNAPSHOT_NAME.test(name)) {
      throw new InvalidWriteError(`${file.path} is not a snapshot file of ${this.dir}: receive it with receiveSnapshot() first`);
    }
    if (this.snapshots.some((s) => s.file === name)) throw new InvalidWriteError(`${file.path} is already installed`);
    const record: SnapshotRecord = {
      file: name,
      index: file.index,
      term: file.term,
      logTimeMs: file.logTimeMs,
      confState: file.confState,
      sizeBytes: fs.existsSync(file.path) ? fileSize(file.path) : -1,
    };
    if (record.sizeBytes !== file.sizeBytes) {
      throw new InvalidWriteError(`${file.path} is ${record.sizeBytes} bytes, but was received with ${file.sizeBytes}`);
    }
    this.checkFileMatches(record).close();
    return record;
  }

  /** Opens the record's file, checking that its header matches the record. */
  private checkFileMatches(record: SnapshotRecord): SnapshotFileReader {
    const path = join(this.snapshotDir, record.file);
    const reader = SnapshotFileReader.open(path, { clusterId: this.clusterId, index: record.index, term: record.term });
    const { info } = reader;
    if (info.logTimeMs !== record.logTimeMs || confStateText(info.confState) !== confStateText(record.confState)) {
      reader.close();
      throw new CorruptDataError(
        path,
        `the file's log time or members (${info.logTimeMs}, ${confStateText(info.confState)}) differ from its record ` +
          `(${record.logTimeMs}, ${confStateText(record.confState)})`,
      );
    }
    return reader;
  }

  /** The catalog with `record` added, newest first, split into the kept and the pruned records (removed from the table; their files go after commit). */
  private withRecord(record: SnapshotRecord): [SnapshotRecord[], SnapshotRecord[]] {
    const all = [record, ...this.snapshots].sort((a, b) => b.index - a.index);
    const kept = all.slice(0, this.retainSnapshots);
    const pruned = all.slice(this.retainSnapshots);
    for (const old of pruned) this.catalog.remove(old.file);
    return [kept, pruned];
  }

  private removeFiles(records: readonly SnapshotRecord[]): void {
    for (const record of records) removeIfPresent(join(this.snapshotDir, record.file));
  }

  /** Temp files of interrupted writes and transfers, and snapshot files that were never recorded. */
  private removeStrayFiles(): void {
    if (fs.mkdirSync(this.snapshotDir, { recursive: true }) !== undefined) fsyncDir(this.dir);
    const recorded = new Set(this.snapshots.map((s) => s.file));
    for (const name of fs.readdirSync(this.snapshotDir)) {
      if (name.endsWith('.tmp') || (SNAPSHOT_NAME.test(name) && !recorded.has(name))) removeIfPresent(join(this.snapshotDir, name));
    }
  }

  private toStored(record: SnapshotRecord): StoredSnapshot {
    const { index, term, confState, logTimeMs, sizeBytes } = record;
    return { index, term, confState, logTimeMs, sizeBytes, path: join(this.snapshotDir, record.file) };
  }
}

/** Unique per write, ordered by index in a directory listing: snapshot-<index>-<term>-<random>.sqlite */
function snapshotFileName(index: number, term: number): string {
  return `snapshot-${String(index).padStart(20, '0')}-${term}-${randomBytes(4).toString('hex')}.sqlite`;
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function checkHardStateStep(previous: HardState, next: HardState): void {
  if (!isCount(next.term) || !isCount(next.commit) || typeof next.vote !== 'string') {
    throw new InvalidWriteError(`invalid hard state: term ${next.term}, vote ${String(next.vote)}, commit ${next.commit}`);
  }
  if (next.term < previous.term) throw new InvalidWriteError(`the term would go backwards, from ${previous.term} to ${next.term}`);
  if (next.term === previous.term && previous.vote !== NONE && next.vote !== previous.vote) {
    throw new InvalidWriteError(`the vote of term ${next.term} was cast for '${previous.vote}' and cannot change to '${next.vote}'`);
  }
  if (next.commit < previous.commit) {
    throw new InvalidWriteError(`the commit index would go backwards, from ${previous.commit} to ${next.commit}`);
  }
}

const ENTRY_TYPES: ReadonlySet<string> = new Set(['normal', 'noop', 'config']);

function checkEntries(entries: readonly Entry[]): void {
  let previous: Entry | undefined;
  for (const entry of entries) {
    if (!isCount(entry.index) || entry.index === 0 || !isCount(entry.term) || entry.term === 0) {
      throw new InvalidWriteError(`entry index and term must be positive integers (got index ${entry.index}, term ${entry.term})`);
    }
    if (!ENTRY_TYPES.has(entry.type) || !(entry.data instanceof Uint8Array)) {
      throw new InvalidWriteError(`entry ${entry.index} has an invalid type (${String(entry.type)}) or data`);
    }
    if (previous !== undefined) {
      if (entry.index !== previous.index + 1) {
        throw new InvalidWriteError(`entries to append must be contiguous: entry ${previous.index} is followed by ${entry.index}`);
      }
      if (entry.term < previous.term) {
        throw new InvalidWriteError(`entry ${entry.index} has term ${entry.term}, below the term ${previous.term} of entry ${previous.index}`);
      }
    }
    previous = entry;
  }
}

/** The catalog's record of the finished snapshot file at `path`, written with `header`. */
function snapshotRecord(path: string, header: SnapshotHeader): SnapshotRecord {
  return {
    file: basename(path),
    index: header.index,
    term: header.term,
    logTimeMs: header.logTimeMs,
    confState: header.confState,
    sizeBytes: fileSize(path),
  };
}
