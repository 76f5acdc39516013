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
import * as fs from 'node:fs';
import Database from 'better-sqlite3';
import { durableRenameAsync, removeIfPresent } from './durable-fs.ts';
import { CorruptDataError, InvalidWriteError, StorageError } from './errors.ts';
import {
  INDEXES,
  REPLACED_ROWS_META,
  RowHasher,
  SCHEMA,
  SNAPSHOT_FORMAT_VERSION,
  TABLES,
  TableDigest,
  TimeSlice,
  checkHeader,
  checkKeyCount,
  checkKeyRow,
  drain,
  fileInfo,
  isKeyType,
  setTempFilePragmas,
  writeMembers,
  writeMeta,
  writeSessions,
} from './snapshot-file.ts';
import type { SnapshotWriterIdentity, Table } from './snapshot-file.ts';
import { SNAPSHOT_APPLICATION_ID, pragmaValue, sqliteCode, withCorruptionMapped } from './sqlite.ts';
import type { Db } from './sqlite.ts';
import type { KeyType, SnapshotContent, SnapshotFileInfo, SnapshotHeader, SnapshotKeyChanges, SnapshotKeyRow } from './types.ts';
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

/**
 * Writes the snapshot `header`/`content` to `path` as a copy of `basePath`
 * with the rows of `changes.keys` replaced by `changes.rows`; like
 * writeSnapshotFile, through `path`.tmp, fsynced, then renamed. Throws
 * IncrementalDeclinedError (having consumed nothing) when the base cannot
 * serve; any other error leaves no file behind.
 */
export async function updateSnapshotFile(
  path: string,
  basePath: string,
  header: SnapshotHeader,
  content: SnapshotContent,
  changes: SnapshotKeyChanges,
  identity: SnapshotWriterIdentity,
  limits: IncrementalLimits,
): Promise<SnapshotFileInfo> {
  checkHeader(header);
  const base = readBaseMeta(basePath, changes, identity.clusterId);
  const baseRows = base.digests.keys.rows;
  const changed = changes.keys.size;
  if (changed > limits.maxChangedFraction * baseRows) {
    throw new IncrementalDeclinedError(`${changed} of the base's ${baseRows} keys changed: writing whole is cheaper`);
  }
  if (base.replacedRows + changed > limits.maxReplacedFraction * baseRows) {
    throw new IncrementalDeclinedError(`${base.replacedRows} of the base's ${baseRows} rows were replaced since it was written whole`);
  }

  const tmp = `${path}.tmp`;
  removeIfPresent(tmp);
  let db: Db | null = null;
  let renamed = false;
  try {
    const hasher = new RowHasher();
    const digests = base.digests;
    const slice = new TimeSlice();
    let replaced = 0;
    try {
      // A reflink where the filesystem has them, else a copy in the kernel on libuv's thread pool.
      await fs.promises.copyFile(basePath, tmp, fs.constants.COPYFILE_FICLONE);
      db = new Database(tmp);
      setTempFilePragmas(db);
      // A small cache: dirty pages spill to the file between time slices instead of all at COMMIT, in one piece.
      db.pragma(`cache_size = -${UPDATE_CACHE_KIB}`);
      db.exec('BEGIN');
      // Rows are deleted in rowid order: each page of the table is read and written once, and the
      // key index, which the deletes walk at random, is small enough to stay in the cache.
      const findKey = db.prepare<[string]>('SELECT rowid FROM keys WHERE key = ?').pluck();
      const found = new Float64Array(changes.keys.size);
      let count = 0;
      for (const key of changes.keys) {
        const rowid = withCorruptionMapped(basePath, () => findKey.get(key)) as number | undefined;
        if (rowid !== undefined) found[count++] = rowid;
        if (slice.spent()) await slice.yield();
      }
      // A typed array sorts numerically in native code: several times faster than Array#sort with a comparator.
      const rowids = found.subarray(0, count).sort();
      const deleteRow = db.prepare<[number]>('DELETE FROM keys WHERE rowid = ? RETURNING key, type, value, expires_at_ms').raw();
      for (const rowid of rowids) {
        const [key, type, value, expiresAtMs] = withCorruptionMapped(basePath, () => deleteRow.get(rowid)) as [unknown, unknown, unknown, unknown];
        if (typeof key !== 'string' || !isKeyType(type) || !(value instanceof Uint8Array) || (expiresAtMs !== null && !isCount(expiresAtMs))) {
          throw new CorruptDataError(basePath, `key row '${String(key)}' has invalid fields`);
        }
        digests.keys.remove(hasher.key(key, type, value, expiresAtMs));
        replaced++;
        if (slice.spent()) await slice.yield();
      }
    } catch (error) {
      throw new IncrementalDeclinedError(`the base ${basePath} could not be updated: ${(error as Error).message}`, { cause: error });
    }

    // From here on the changed rows are being consumed: no going back to a whole write.
    const insertKey = db.prepare<[string, KeyType, Uint8Array, number | null]>(
      'INSERT INTO keys (key, type, value, expires_at_ms) VALUES (?, ?, ?, ?)',
    );
    await drain(changes.rows, (row: SnapshotKeyRow) => {
      checkKeyRow(row);
      if (!changes.keys.has(row.key)) throw new InvalidWriteError(`the changed rows hold key '${row.key}', which is not among the changed keys`);
      try {
        withCorruptionMapped(basePath, () => insertKey.run(row.key, row.type, row.value, row.expiresAtMs));
      } catch (error) {
        if (sqliteCode(error) === 'SQLITE_CONSTRAINT_UNIQUE') throw new InvalidWriteError(`the changed rows hold key '${row.key}' more than once`, { cause: error });
        throw error;
      }
      digests.keys.add(hasher.key(row.key, row.type, row.value, row.expiresAtMs));
    });
    checkKeyCount(content, digests.keys);

    // Members and sessions are few: rewritten whole.
    db.exec('DELETE FROM members; DELETE FROM sessions; DELETE FROM meta');
    digests.members = new TableDigest();
    digests.sessions = new TableDigest();
    writeMembers(db, header.confState, hasher, digests.members);
    await writeSessions(db, content.sessions, hasher, digests.sessions);
    writeMeta(db, header, content, identity, digests, base.replacedRows + replaced);
    db.exec('COMMIT');
    db.close();
    await durableRenameAsync(tmp, path);
    renamed = true;
    return fileInfo(header, content, identity, digests);
  } finally {
    if (db?.open === true) db.close();
    if (!renamed) removeIfPresent(tmp);
  }
}

/**
 * Opens the base read-only and checks that it is a snapshot file of ours in
 * this format, with exactly our schema (no triggers or other surprises: the
 * base may be a file a leader sent), holding the state the changes start from.
 */
function readBaseMeta(basePath: string, changes: SnapshotKeyChanges, clusterId: string): BaseMeta {
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
      expect('index', changes.baseIndex);
      expect('state_digest', changes.baseDigest);
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
