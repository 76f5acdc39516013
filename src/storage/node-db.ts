/**
 * The node database file: opening it, creating its schema at bootstrap, and
 * refusing it when it is not this node's (another cluster, another node, a
 * newer format, not a quorumkv file, or structurally damaged).
 */
import * as fs from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { NodeId } from '../raft/types.ts';
import { forgetHolder, lockDataDir } from './data-dir-lock.ts';
import { fsyncDir } from './durable-fs.ts';
import {
  CorruptDataError,
  DataDirLockedError,
  ForeignClusterError,
  ForeignNodeError,
  NotInitializedError,
  SchemaTooNewError,
} from './errors.ts';
import { HardStateStore, INITIAL_HARD_STATE } from './hard-state-store.ts';
import { NODE_DB_APPLICATION_ID, pragmaValue, quickCheck, withCorruptionMapped } from './sqlite.ts';
import type { Db } from './sqlite.ts';

export const NODE_DB_FILE = 'node.db';

/** Version of the schema below; a file with a higher one was written by a newer build. */
export const NODE_SCHEMA_VERSION = 1;

export interface NodeIdentity {
  readonly clusterId: string;
  readonly nodeId: NodeId;
}

// STRICT tables: SQLite rejects a value of the wrong type instead of storing it.
// `idx` and `commit_index` because INDEX and COMMIT are SQL keywords.
const SCHEMA = `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY NOT NULL
  ) STRICT;
  CREATE TABLE log (
    idx      INTEGER PRIMARY KEY,
    term     INTEGER NOT NULL,
    type     TEXT    NOT NULL,
    data     BLOB    NOT NULL,
    checksum INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE hard_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    term         INTEGER NOT NULL,
    vote         TEXT    NOT NULL,
    commit_index INTEGER NOT NULL,
    checksum     INTEGER NOT NULL
  ) STRICT;
  CREATE TABLE snapshots (
    file        TEXT PRIMARY KEY,
    idx         INTEGER NOT NULL,
    term        INTEGER NOT NULL,
    log_time_ms INTEGER NOT NULL,
    conf_state  TEXT    NOT NULL,
    size_bytes  INTEGER NOT NULL,
    checksum    INTEGER NOT NULL
  ) STRICT;
`;

/**
 * Opens (creating if allowed) and locks the node database in `dir`. Its
 * schema is durable when this returns; later commits are durable only once
 * the WAL is synced (WalSync). Throws a StorageError when the file is not
 * usable by this node.
 */
export function openNodeDb(dir: string, identity: NodeIdentity, create: boolean): Db {
  const path = join(dir, NODE_DB_FILE);
  if (!fs.existsSync(path)) {
    if (!create) throw new NotInitializedError(path);
    fs.mkdirSync(dir, { recursive: true });
  }
  const db = new Database(path, { timeout: 0 });
  try {
    withCorruptionMapped(path, () => {
      lockDataDir(db, dir);
      // FULL while the schema is created: that commit is durable before the dir is used.
      db.pragma('synchronous = FULL');
      // After a large transaction, shrink the WAL back instead of keeping its high-water size.
      db.pragma('journal_size_limit = 67108864');
      prepareSchema(db, path, identity, create);
      const problems = quickCheck(db);
      if (problems !== null) throw new CorruptDataError(path, `SQLite integrity check failed: ${problems}`);
      // From here commits do not fsync: NodeStorage syncs the WAL itself, off the event
      // loop when it can, before it calls a write durable (wal-sync.ts says why that is safe).
      db.pragma('synchronous = NORMAL');
    });
    return db;
  } catch (error) {
    // The LOCK record is ours to remove only if the lock was ours.
    if (!(error instanceof DataDirLockedError)) forgetHolder(dir);
    db.close();
    throw error;
  }
}

function prepareSchema(db: Db, path: string, identity: NodeIdentity, create: boolean): void {
  const applicationId = pragmaValue(db, 'application_id');
  const tableCount = db.prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table'").pluck().get() as number;
  if (applicationId === 0 && tableCount === 0) {
    // A new file, or one whose creating transaction never committed.
    if (!create) throw new NotInitializedError(path);
    initialize(db, identity);
    // SQLite syncs the file's contents, not the directory entries that make the new file findable.
    fsyncDir(dirname(path));
    fsyncDir(dirname(dirname(path)));
    return;
  }
  if (applicationId !== NODE_DB_APPLICATION_ID) {
    throw new CorruptDataError(path, `not a quorumkv node database (application_id ${String(applicationId)})`);
  }
  const meta = readMeta(db);
  const version = meta.get('schema_version');
  if (typeof version !== 'number') throw new CorruptDataError(path, 'the meta table has no schema_version');
  if (version > NODE_SCHEMA_VERSION) throw new SchemaTooNewError(path, version, NODE_SCHEMA_VERSION);
  if (version !== NODE_SCHEMA_VERSION) throw new CorruptDataError(path, `unknown schema_version ${version}`);
  const clusterId = meta.get('cluster_id');
  const nodeId = meta.get('node_id');
  if (typeof clusterId !== 'string' || typeof nodeId !== 'string') {
    throw new CorruptDataError(path, 'the meta table lacks cluster_id or node_id');
  }
  if (clusterId !== identity.clusterId) throw new ForeignClusterError(path, identity.clusterId, clusterId);
  if (nodeId !== identity.nodeId) throw new ForeignNodeError(path, identity.nodeId, nodeId);
}

function initialize(db: Db, identity: NodeIdentity): void {
  db.transaction(() => {
    db.pragma(`application_id = ${NODE_DB_APPLICATION_ID}`);
    db.exec(SCHEMA);
    const insert = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?)');
    // A bigint is bound as an INTEGER; a JS number would be stored as the REAL 1.0.
    insert.run('schema_version', BigInt(NODE_SCHEMA_VERSION));
    insert.run('cluster_id', identity.clusterId);
    insert.run('node_id', identity.nodeId);
    insert.run('created_at', new Date().toISOString());
    // Written now, in the creating transaction, so that a missing row later means damage.
    new HardStateStore(db, db.name).write(INITIAL_HARD_STATE);
  })();
}

function readMeta(db: Db): Map<string, unknown> {
  const rows = db.prepare('SELECT key, value FROM meta').raw().all() as [string, unknown][];
  return new Map(rows);
}
