/**
 * Incremental snapshot files: a snapshot that differs from the newest file
 * (the base) in some keys is written as a copy of the base with those keys'
 * rows replaced, the way etcd's bbolt backend updates its state instead of
 * rewriting it. The kernel copies the bytes (no row encoding, no checksums
 * in JS), then one transaction deletes every changed key's row, inserts the
 * current rows of the changed keys that exist, and rewrites members,
 * sessions and meta. The per-table checksums in meta are sums, so a deleted
 * row's CRC comes off and a new row's goes on: the file reads and checks
 * exactly like one written whole, and a row damaged in the base still fails
 * the sum. Files stay immutable once named: the update happens in the copy.
 *
 * Row order: kept rows keep their rowids, new rows go after them in the
 * order given (the state machine's: least recently changed first), so a
 * restore gets the unchanged keys first, then the changed ones.
 *
 * Replaced rows leave holes in the file's pages that appended rows refill
 * only in part; the meta key `replaced_rows` counts the rows replaced since
 * the file was last written whole, and past a limit the caller writes whole.
 */
import Database from 'better-sqlite3';
import { WriteBackPacer, copyFileInSteps, removeIfPresent } from './durable-fs.ts';
import { CorruptDataError, InvalidWriteError, StorageError } from './errors.ts';
import { FIELDS_PER_ROW, KEY_END_SLOT } from './packed-key-rows.ts';
import type { PackedKeyRows } from './packed-key-rows.ts';
import {
  INDEXES,
  REPLACED_ROWS_META,
  RowHasher,
  SCHEMA,
  SNAPSHOT_FORMAT_VERSION,
  TABLES,
  TableDigest,
  checkHeader,
  checkKeyCount,
  commitAndRename,
  fileInfo,
  insertKeyBatch,
  isKeyType,
  setTempFilePragmas,
  writeMembers,
  writeMeta,
  writeSessions,
} from './snapshot-file.ts';
import type { SnapshotSummary, SnapshotWriterIdentity, Table } from './snapshot-file.ts';
import { SNAPSHOT_APPLICATION_ID, pragmaValue, sqliteCode, withCorruptionMapped } from './sqlite.ts';
import type { Db, Statement } from './sqlite.ts';
import type { KeyType, SnapshotFileInfo, SnapshotHeader, SnapshotSessionRow } from './types.ts';
import { isCount } from './validate.ts';

/**
 * An incremental write was declined before it consumed any row: the base
 * does not fit (another state, damaged, not our format), too much changed,
 * or it could not be copied. The caller writes the snapshot whole instead.
 */
export class IncrementalDeclinedError extends StorageError {
  readonly code = 'STORAGE_INCREMENTAL_DECLINED';
}

/** SQLite's page cache while updating, KiB (a whole write uses 64 MiB). */
const UPDATE_CACHE_KIB = 16384;

/** When an incremental write is worth it, as fractions of the base's key rows. */
export interface IncrementalLimits {
  /** Most keys changed since the base, e.g. 0.2: beyond it a whole write is cheaper. */
  readonly maxChangedFraction: number;
  /** Most rows replaced since the file was last written whole (holes it may hold), e.g. 1. */
  readonly maxReplacedFraction: number;
}

/** What the base file says about itself, checked against what the update expects. */
interface BaseMeta {
  readonly digests: Record<Table, TableDigest>;
  readonly replacedRows: number;
}

/** The update a SnapshotFileUpdater is to make: from which base, to which state. */
export interface SnapshotUpdatePlan {
  readonly path: string;
  readonly basePath: string;
  readonly header: SnapshotHeader;
  readonly identity: SnapshotWriterIdentity;
  /** The base's index and state digest, which its file must hold (SnapshotKeyChanges). */
  readonly baseIndex: number;
  readonly baseDigest: string;
  /** How many keys changed since the base. */
  readonly changedKeys: number;
  readonly limits: IncrementalLimits;
}

/**
 * Writes a snapshot to `path` as a copy of the base with the changed keys'
 * rows replaced; like SnapshotFileWriter, through `path`.tmp, fsynced, then
 * renamed, and synchronous, for the snapshot writer thread. In order:
 * open() checks the base and copies it, findChanged() is given every changed
 * key, deleteChanged() deletes their rows, then addKeys() gets the current
 * rows of the changed keys that exist, and finish() the sessions. Until
 * deleteChanged() returns, a failure is an IncrementalDeclinedError: the
 * caller has consumed no row yet and writes the snapshot whole instead.
 * After any error, abort() removes the temp file.
 */
export class SnapshotFileUpdater {
  private readonly hasher = new RowHasher();
  private readonly findKey: Statement<[string]>;
  private rowids: Float64Array;
  private found = 0;
  private replaced = 0;
  private insertKey: Statement<[string, KeyType, Uint8Array, number | null]> | null = null;
  /**
   * The rows replaced dirty pages all over the copy, which SQLite spills to
   * the file as its cache fills; synced in steps like a whole write's, or the
   * final fsync would make the log's fsyncs wait behind hundreds of MiB.
   */
  private readonly pacer: WriteBackPacer;
  /** Bytes a changed row may dirty: a page (each delete its table page, each insert an index leaf at random). */
  private readonly bytesPerRow: number;

  private constructor(
    private readonly plan: SnapshotUpdatePlan,
    private readonly db: Db,
    private readonly base: BaseMeta,
  ) {
    this.findKey = db.prepare<[string]>('SELECT rowid FROM keys WHERE key = ?').pluck();
    this.rowids = new Float64Array(plan.changedKeys);
    const pageSize = pragmaValue(db, 'page_size');
    if (typeof pageSize !== 'number') throw new Error(`SQLite reported page_size ${String(pageSize)}`);
    this.bytesPerRow = pageSize;
    this.pacer = new WriteBackPacer(`${plan.path}.tmp`);
  }

  /** Synced write-back steps so far (WriteBackPacer). */
  get writeBackSteps(): number {
    return this.pacer.steps;
  }

  static open(plan: SnapshotUpdatePlan): SnapshotFileUpdater {
    checkHeader(plan.header);
    const base = readBaseMeta(plan.basePath, plan.baseIndex, plan.baseDigest, plan.identity.clusterId);
    const baseRows = base.digests.keys.rows;
    const changed = plan.changedKeys;
    if (changed > plan.limits.maxChangedFraction * baseRows) {
      throw new IncrementalDeclinedError(`${changed} of the base's ${baseRows} keys changed: writing whole is cheaper`);
    }
    if (base.replacedRows + changed > plan.limits.maxReplacedFraction * baseRows) {
      throw new IncrementalDeclinedError(`${base.replacedRows} of the base's ${baseRows} rows were replaced since it was written whole`);
    }
    const tmp = `${plan.path}.tmp`;
    removeIfPresent(tmp);
    let db: Db | null = null;
    try {
      copyFileInSteps(plan.basePath, tmp);
      db = new Database(tmp);
      setTempFilePragmas(db);
      // A small cache: dirty pages spill to the file as rows go, instead of all at COMMIT, in one piece.
      db.pragma(`cache_size = -${UPDATE_CACHE_KIB}`);
      db.exec('BEGIN');
      return new SnapshotFileUpdater(plan, db, base);
    } catch (error) {
      db?.close();
      removeIfPresent(tmp);
      throw declined(plan.basePath, error);
    }
  }

  /** Notes the rows of these changed keys (packed rows whose values are ignored) for deleteChanged(). */
  findChanged(batch: PackedKeyRows): void {
    try {
      const keys = Buffer.from(batch.keys.buffer, batch.keys.byteOffset, batch.keys.byteLength);
      let keyStart = 0;
      for (let i = 0, at = 0; i < batch.rows; i++, at += FIELDS_PER_ROW) {
        const keyEnd = batch.fields[at + KEY_END_SLOT] as number;
        const key = keys.toString('utf8', keyStart, keyEnd);
        keyStart = keyEnd;
        const rowid = withCorruptionMapped(this.plan.basePath, () => this.findKey.get(key)) as number | undefined;
        if (rowid === undefined) continue;
        if (this.found === this.rowids.length) throw new Error(`more than the ${this.plan.changedKeys} changed keys announced`);
        this.rowids[this.found++] = rowid;
      }
    } catch (error) {
      throw declined(this.plan.basePath, error);
    }
  }

  /** Deletes the rows of the changed keys, taking their CRCs off the sum. */
  deleteChanged(): void {
    try {
      const digest = this.base.digests.keys;
      // Rows are deleted in rowid order: each page of the table is read and written once, and the
      // key index, which the deletes walk at random, is small enough to stay in the cache.
      // A typed array sorts numerically in native code: several times faster than Array#sort with a comparator.
      const rowids = this.rowids.subarray(0, this.found).sort();
      const deleteRow = this.db.prepare<[number]>('DELETE FROM keys WHERE rowid = ? RETURNING key, type, value, expires_at_ms').raw();
      for (const rowid of rowids) {
        const [key, type, value, expiresAtMs] = withCorruptionMapped(this.plan.basePath, () => deleteRow.get(rowid)) as [unknown, unknown, unknown, unknown];
        if (typeof key !== 'string' || !isKeyType(type) || !(value instanceof Uint8Array) || (expiresAtMs !== null && !isCount(expiresAtMs))) {
          throw new CorruptDataError(this.plan.basePath, `key row '${String(key)}' has invalid fields`);
        }
        digest.remove(this.hasher.key(key, type, value, expiresAtMs));
        this.replaced++;
        this.pacer.wrote(this.bytesPerRow);
      }
    } catch (error) {
      throw declined(this.plan.basePath, error);
    }
    this.insertKey = this.db.prepare('INSERT INTO keys (key, type, value, expires_at_ms) VALUES (?, ?, ?, ?)');
  }

  /** Appends current rows of changed keys, after their old rows are gone. */
  addKeys(batch: PackedKeyRows): void {
    const insertKey = this.insertKey;
    if (insertKey === null) throw new Error('addKeys() before deleteChanged()');
    insertKeyBatch(batch, this.hasher, this.base.digests.keys, (key, type, value, expiresAtMs) => {
      try {
        withCorruptionMapped(this.plan.basePath, () => insertKey.run(key, type, value, expiresAtMs));
        this.pacer.wrote(this.bytesPerRow);
      } catch (error) {
        if (sqliteCode(error) === 'SQLITE_CONSTRAINT_UNIQUE') throw new InvalidWriteError(`the changed rows hold key '${key}' more than once`, { cause: error });
        throw error;
      }
    });
  }

  /** Rewrites members, sessions and meta, and puts the file durably in place. */
  finish(sessions: readonly SnapshotSessionRow[], summary: SnapshotSummary): SnapshotFileInfo {
    const { db, plan, hasher } = this;
    const digests = this.base.digests;
    checkKeyCount(summary, digests.keys);
    // Members and sessions are few: rewritten whole.
    db.exec('DELETE FROM members; DELETE FROM sessions; DELETE FROM meta');
    digests.members = new TableDigest();
    digests.sessions = new TableDigest();
    writeMembers(db, plan.header.confState, hasher, digests.members);
    writeSessions(db, sessions, hasher, digests.sessions);
    writeMeta(db, plan.header, summary, plan.identity, digests, this.base.replacedRows + this.replaced);
    this.pacer.close();
    commitAndRename(db, plan.path);
    return fileInfo(plan.header, summary, plan.identity, digests);
  }

  /** Closes and removes the temp file; for an update that failed or was called off. */
  abort(): void {
    this.pacer.close();
    if (this.db.open) this.db.close();
    removeIfPresent(`${this.plan.path}.tmp`);
  }
}

function declined(basePath: string, error: unknown): IncrementalDeclinedError {
  if (error instanceof IncrementalDeclinedError) return error;
  return new IncrementalDeclinedError(`the base ${basePath} could not be updated: ${(error as Error).message}`, { cause: error });
}

/**
 * Opens the base read-only and checks that it is a snapshot file of ours in
 * this format, with exactly our schema (no triggers or other surprises: the
 * base may be a file a leader sent), holding the state the changes start from.
 */
function readBaseMeta(basePath: string, baseIndex: number, baseDigest: string, clusterId: string): BaseMeta {
  let db: Db | null = null;
  try {
    db = new Database(basePath, { readonly: true, fileMustExist: true });
    const opened = db;
    return withCorruptionMapped(basePath, () => {
      opened.pragma('trusted_schema = OFF');
      if (pragmaValue(opened, 'application_id') !== SNAPSHOT_APPLICATION_ID) throw new Error('not a quorumkv snapshot file');
      if (schemaOf(opened) !== expectedSchema()) throw new Error('its schema is not the one this build writes');
      const meta = new Map(opened.prepare('SELECT key, value FROM meta').raw().all() as [string, unknown][]);
      const count = (key: string): number => {
        const value = meta.get(key);
        if (!isCount(value)) throw new Error(`meta '${key}' is missing or not a count`);
        return value;
      };
      const expect = (key: string, wanted: unknown): void => {
        if (meta.get(key) !== wanted) throw new Error(`meta '${key}' is ${String(meta.get(key))}, the changes start from ${String(wanted)}`);
      };
      expect('format_version', SNAPSHOT_FORMAT_VERSION);
      expect('cluster_id', clusterId);
      expect('index', baseIndex);
      expect('state_digest', baseDigest);
      const digests = {} as Record<Table, TableDigest>;
      for (const table of TABLES) digests[table] = new TableDigest(count(`${table}_rows`), count(`${table}_crc_sum`));
      // Files written before incremental writes existed have replaced no rows.
      return { digests, replacedRows: meta.has(REPLACED_ROWS_META) ? count(REPLACED_ROWS_META) : 0 };
    });
  } catch (error) {
    throw new IncrementalDeclinedError(`the base ${basePath} does not fit: ${(error as Error).message}`, { cause: error });
  } finally {
    db?.close();
  }
}

function schemaOf(db: Db): string {
  return JSON.stringify(db.prepare('SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name').raw().all());
}

let schemaText: string | null = null;

/** The schema a whole write creates, as schemaOf() shows it. */
function expectedSchema(): string {
  if (schemaText === null) {
    const db = new Database(':memory:');
    try {
      db.exec(SCHEMA);
      for (const index of INDEXES) db.exec(index.sql);
      schemaText = schemaOf(db);
    } finally {
      db.close();
    }
  }
  return schemaText;
}
