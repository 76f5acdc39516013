/**
 * The snapshot file: the state machine at one applied index, as a standalone
 * SQLite database that the sqlite3 shell can read.
 *
 *   meta(key, value)                                  format_version, cluster_id, index, term, log_time_ms,
 *                                                     state_digest, row counts and checksums
 *   members(node_id, role)                            the ConfState
 *   keys(key, type, value, expires_at_ms)             one row per key, in the order the state machine gave them
 *   sessions(client_id, sequence, result, last_seen_ms)
 *
 * Every table's row count and the sum of its rows' CRC-32s are in meta, so a
 * truncated file or a changed byte in any row is caught when the rows are
 * read back. Restoring reads rows in rowid order, which is write order: the
 * state machine gets its keys back in the order it wrote them (its LRU order,
 * if that is the order it iterates in).
 *
 * A file is written whole here, or as a copy of an earlier one with the
 * changed keys' rows replaced (snapshot-update.ts): the same tables, and the
 * same checks when read. Both writers run on the snapshot writer thread
 * (snapshot-write-thread.ts), fed packed batches of rows.
 */
import * as fs from 'node:fs';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import Database from 'better-sqlite3';
import type { ConfState, NodeId } from '../raft/types.ts';
import { FieldCrc, FieldEncoder, crc32 } from './checksum.ts';
import { WriteBackPacer, durableRename, removeIfPresent } from './durable-fs.ts';
import { EXPIRY_SLOT, FIELDS_PER_ROW, KEY_END_SLOT, KEY_TYPES, KEY_TYPE_CODES, NO_EXPIRY, TYPE_SLOT, VALUE_END_SLOT, forEachPackedRowSpan } from './packed-key-rows.ts';
import type { PackedKeyRows } from './packed-key-rows.ts';
import { CorruptDataError, ForeignClusterError, InvalidWriteError, SchemaTooNewError } from './errors.ts';
import { SNAPSHOT_APPLICATION_ID, pragmaValue, quickCheck, sqliteCode, withCorruptionMapped } from './sqlite.ts';
import type { Db, Statement } from './sqlite.ts';
import type {
  KeyType,
  SnapshotFileInfo,
  SnapshotHeader,
  SnapshotKeyRow,
  SnapshotSessionRow,
} from './types.ts';
import { isCount } from './validate.ts';

export const SNAPSHOT_FORMAT_VERSION = 1;

/** Rows written or verified between two yields to the event loop, and rows read per query. */
const ROWS_PER_SLICE = 4096;
/** keyBatches() sizes its batches to about this many bytes of keys and values (and at most ROWS_PER_SLICE rows). */
const BATCH_BYTES = 4 << 20;

/**
 * One batch of keyBatches(): the rows after a rowid, aggregated by SQLite into
 * a few values, so that a batch costs a handful of JS objects, not five per
 * row. The subquery hands its rows to the aggregates in rowid order (SQLite
 * runs it as a co-routine); were that ever not so, only the restored LRU
 * order would differ, not the state.
 *
 * The third column counts the rows whose key is TEXT, value a BLOB and expiry
 * NULL or in range, by comparisons (SQLite orders NULL < numbers < TEXT <
 * BLOB): typeof() calls cost a quarter of the whole query. A type that is not
 * one of the three gets code UNKNOWN_TYPE_CODE, and an expiry that is not an
 * integer fails Number.isSafeInteger: packBatch refuses both.
 */
const UNKNOWN_TYPE_CODE = 9;
const KEY_BATCH_SQL = `
  SELECT count(*), max(rowid),
    sum(key >= '' AND key < x'' AND value >= x'' AND (expires_at_ms IS NULL OR expires_at_ms BETWEEN 0 AND ${Number.MAX_SAFE_INTEGER})),
    CAST(group_concat(CAST(key AS BLOB), '') AS BLOB),
    group_concat(length(CAST(key AS BLOB))),
    group_concat(CASE type WHEN 'string' THEN ${KEY_TYPE_CODES.string} WHEN 'list' THEN ${KEY_TYPE_CODES.list} WHEN 'hash' THEN ${KEY_TYPE_CODES.hash} ELSE ${UNKNOWN_TYPE_CODE} END, ''),
    CAST(group_concat(value, '') AS BLOB),
    group_concat(length(value)),
    group_concat(ifnull(expires_at_ms, ${NO_EXPIRY}))
  FROM (SELECT rowid, key, type, value, expires_at_ms FROM keys WHERE rowid > ? ORDER BY rowid LIMIT ?)`;

export const SCHEMA = `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY NOT NULL
  ) STRICT;
  CREATE TABLE members (
    node_id TEXT PRIMARY KEY,
    role    TEXT NOT NULL CHECK (role IN ('voter', 'learner'))
  ) STRICT;
  CREATE TABLE keys (
    key           TEXT NOT NULL,
    type          TEXT NOT NULL CHECK (type IN ('string', 'list', 'hash')),
    value         BLOB NOT NULL,
    expires_at_ms INTEGER
  ) STRICT;
  CREATE TABLE sessions (
    client_id    TEXT NOT NULL,
    sequence     INTEGER NOT NULL,
    result       BLOB    NOT NULL,
    last_seen_ms INTEGER NOT NULL
  ) STRICT;
`;

// Built after the rows are in: sorting once is several times faster than
// keeping a b-tree ordered through a million random inserts. Same uniqueness
// and lookups as a PRIMARY KEY on these rowid tables.
export const INDEXES = [
  { table: 'keys', column: 'key', sql: 'CREATE UNIQUE INDEX keys_key ON keys (key)' },
  { table: 'sessions', column: 'client_id', sql: 'CREATE UNIQUE INDEX sessions_client_id ON sessions (client_id)' },
] as const;


export function isKeyType(value: unknown): value is KeyType {
  return typeof value === 'string' && Object.hasOwn(KEY_TYPE_CODES, value);
}

export type Role = 'voter' | 'learner';

/** Per-row CRC-32s of the three tables, computed the same way when writing and when reading. */
export class RowHasher {
  private readonly fields = new FieldEncoder();
  private readonly fieldCrc = new FieldCrc();

  key(key: string, type: KeyType, value: Uint8Array, expiresAtMs: number | null): number {
    const fields = this.fields
      .reset()
      .string(key)
      .u8(KEY_TYPE_CODES[type])
      .u8(expiresAtMs === null ? 0 : 1)
      .u53(expiresAtMs ?? 0)
      .u32(value.length);
    return crc32(value, fields.crc());
  }

  /** key() of a row given as its key's UTF-8 bytes keys[keyStart, keyEnd) and its value values[valueStart, valueEnd). */
  keyBytes(keys: Uint8Array, keyStart: number, keyEnd: number, typeCode: number, expiresAtMs: number, values: Uint8Array, valueStart: number, valueEnd: number): number {
    // Per row of every snapshot read and whole write: FieldCrc gives FieldEncoder's value without its copies and second zlib call.
    const fields = this.fieldCrc
      .reset()
      .bytes(keys, keyStart, keyEnd)
      .u8(typeCode)
      .u8(expiresAtMs === NO_EXPIRY ? 0 : 1)
      .u53(expiresAtMs === NO_EXPIRY ? 0 : expiresAtMs)
      .u32(valueEnd - valueStart);
    return crc32(values.subarray(valueStart, valueEnd), fields.value());
  }

  session(clientId: string, sequence: number, result: Uint8Array, lastSeenMs: number): number {
    const fields = this.fields.reset().string(clientId).u53(sequence).u53(lastSeenMs).u32(result.length);
    return crc32(result, fields.crc());
  }

  member(nodeId: string, role: Role): number {
    return this.fields.reset().string(nodeId).u8(role === 'voter' ? 1 : 2).crc();
  }
}

/** Row count and the sum (mod 2^32) of row CRCs: independent of row order, cheap to keep while streaming. */
export class TableDigest {
  constructor(
    public rows = 0,
    public sum = 0,
  ) {}

  add(crc: number): void {
    this.rows += 1;
    this.sum = (this.sum + crc) >>> 0;
  }

  /** A row deleted from a copied file: the sum is a sum, so its CRC comes off it. */
  remove(crc: number): void {
    this.rows -= 1;
    this.sum = (this.sum - crc) >>> 0;
  }
}

export const TABLES = ['members', 'keys', 'sessions'] as const;
export type Table = (typeof TABLES)[number];

/** Meta of incremental writes: key rows deleted from the file since it was last written whole (see snapshot-update.ts). */
export const REPLACED_ROWS_META = 'replaced_rows';

/** Pragmas for filling a temp file: no journal and no syncs, since a crash leaves a .tmp that is never used, and durability comes from the fsync before the rename. */
export function setTempFilePragmas(db: Db): void {
  // better-sqlite3 opens in SQLite's defensive mode, which ignores journal_mode = OFF without an error:
  // a file updated in place would then copy every page it changes into a rollback journal first.
  db.unsafeMode(true);
  const mode = db.pragma('journal_mode = OFF', { simple: true });
  db.unsafeMode(false);
  if (mode !== 'off') throw new Error(`SQLite kept journal_mode ${String(mode)} for a snapshot's temp file`);
  db.pragma('synchronous = OFF');
  db.pragma('locking_mode = EXCLUSIVE');
  db.pragma('cache_size = -65536');
}

export interface SnapshotWriterIdentity {
  readonly clusterId: string;
  readonly nodeId: NodeId;
}

/** What a writer needs of a snapshot's content besides its rows, which come as packed batches. */
export interface SnapshotSummary {
  readonly stateDigest: string | null;
  /** The rows the keys table must end with, when the content said. */
  readonly keyCount: number | null;
}

/**
 * A snapshot file written whole into `path`.tmp: the key rows go in as
 * packed batches (packed-key-rows.ts) in the order given, then finish() adds
 * the sessions, indexes and meta, fsyncs the file and renames it to `path`,
 * so `path` either does not exist or is complete. Synchronous: it runs on
 * the snapshot writer thread (snapshot-write-worker.ts). After any error,
 * abort() removes the temp file.
 */
export class SnapshotFileWriter {
  private readonly hasher = new RowHasher();
  private readonly digests: Record<Table, TableDigest> = { members: new TableDigest(), keys: new TableDigest(), sessions: new TableDigest() };
  private readonly insertKey: Statement<[string, KeyType, Uint8Array, number | null]>;
  /** Opened by the first addKeys(), so that a create() that fails leaves no fd behind. */
  private pacer: WriteBackPacer | null = null;

  private constructor(
    readonly path: string,
    private readonly db: Db,
    private readonly header: SnapshotHeader,
    private readonly identity: SnapshotWriterIdentity,
  ) {
    this.insertKey = db.prepare('INSERT INTO keys (key, type, value, expires_at_ms) VALUES (?, ?, ?, ?)');
  }

  static create(path: string, header: SnapshotHeader, identity: SnapshotWriterIdentity): SnapshotFileWriter {
    checkHeader(header);
    const tmp = `${path}.tmp`;
    removeIfPresent(tmp);
    const db = new Database(tmp);
    try {
      // 16 KiB pages: fewer, fuller pages for large values, and faster to stream and scan.
      db.pragma('page_size = 16384');
      setTempFilePragmas(db);
      db.pragma(`application_id = ${SNAPSHOT_APPLICATION_ID}`);
      db.exec(SCHEMA);
      db.exec('BEGIN');
      const writer = new SnapshotFileWriter(path, db, header, identity);
      writeMembers(db, header.confState, writer.hasher, writer.digests.members);
      return writer;
    } catch (error) {
      db.close();
      removeIfPresent(tmp);
      throw error;
    }
  }

  /** Appends a batch of key rows. */
  addKeys(batch: PackedKeyRows): void {
    insertKeyBatch(batch, this.hasher, this.digests.keys, (key, type, value, expiresAtMs) => this.insertKey.run(key, type, value, expiresAtMs));
    this.pacer ??= new WriteBackPacer(`${this.path}.tmp`);
    this.pacer.wrote(batch.keys.byteLength + batch.values.byteLength);
  }

  /** Adds the sessions, indexes and meta, and puts the file durably in place. */
  finish(sessions: readonly SnapshotSessionRow[], summary: SnapshotSummary): SnapshotFileInfo {
    writeSessions(this.db, sessions, this.hasher, this.digests.sessions);
    for (const index of INDEXES) createUniqueIndex(this.db, index);
    checkKeyCount(summary, this.digests.keys);
    writeMeta(this.db, this.header, summary, this.identity, this.digests, 0);
    this.pacer?.close();
    commitAndRename(this.db, this.path);
    return fileInfo(this.header, summary, this.identity, this.digests);
  }

  /** Closes and removes the temp file; for a write that failed or was called off. */
  abort(): void {
    this.pacer?.close();
    if (this.db.open) this.db.close();
    removeIfPresent(`${this.path}.tmp`);
  }
}

/**
 * Inserts a packed batch's rows with `insert`, adding each row's CRC to
 * `digest`. Values are views into the batch: SQLite copies what it binds.
 */
export function insertKeyBatch(
  batch: PackedKeyRows,
  hasher: RowHasher,
  digest: TableDigest,
  insert: (key: string, type: KeyType, value: Uint8Array, expiresAtMs: number | null) => void,
): void {
  const { values } = batch;
  forEachPackedRowSpan(batch, (keys, keyStart, keyEnd, typeCode, valueStart, valueEnd, expiresAtMs) => {
    insert(keys.toString('utf8', keyStart, keyEnd), KEY_TYPES[typeCode] as KeyType, values.subarray(valueStart, valueEnd), expiresAtMs === NO_EXPIRY ? null : expiresAtMs);
    digest.add(hasher.keyBytes(keys, keyStart, keyEnd, typeCode, expiresAtMs, values, valueStart, valueEnd));
  });
}

/** Commits and closes a temp file filled for `path`, then fsyncs it and renames it into place. */
export function commitAndRename(db: Db, path: string): void {
  db.exec('COMMIT');
  db.close();
  durableRename(`${path}.tmp`, path);
}

/** Inserts the ConfState's members into an empty members table. */
export function writeMembers(db: Db, confState: ConfState, hasher: RowHasher, digest: TableDigest): void {
  const insertMember = db.prepare<[string, Role]>('INSERT INTO members (node_id, role) VALUES (?, ?)');
  const members: [string, Role][] = [
    ...confState.voters.map((id): [string, Role] => [id, 'voter']),
    ...confState.learners.map((id): [string, Role] => [id, 'learner']),
  ];
  for (const [nodeId, role] of members) {
    runInsert(() => insertMember.run(nodeId, role), `member '${nodeId}' appears twice in the ConfState`);
    digest.add(hasher.member(nodeId, role));
  }
}

/** Inserts the sessions into an empty sessions table. */
export function writeSessions(db: Db, sessions: readonly SnapshotSessionRow[], hasher: RowHasher, digest: TableDigest): void {
  const insertSession = db.prepare<[string, number, Uint8Array, number]>(
    'INSERT INTO sessions (client_id, sequence, result, last_seen_ms) VALUES (?, ?, ?, ?)',
  );
  for (const row of sessions) {
    insertSession.run(row.clientId, row.sequence, row.result, row.lastSeenMs);
    digest.add(hasher.session(row.clientId, row.sequence, row.result, row.lastSeenMs));
  }
}

/** Fills an empty meta table. */
export function writeMeta(
  db: Db,
  header: SnapshotHeader,
  summary: SnapshotSummary,
  identity: SnapshotWriterIdentity,
  digests: Readonly<Record<Table, TableDigest>>,
  replacedRows: number,
): void {
  const insertMeta = db.prepare<[string, string | bigint]>('INSERT INTO meta (key, value) VALUES (?, ?)');
  const meta: [string, string | number][] = [
    ['format_version', SNAPSHOT_FORMAT_VERSION],
    ['cluster_id', identity.clusterId],
    ['written_by', identity.nodeId],
    ['written_at', new Date().toISOString()],
    ['index', header.index],
    ['term', header.term],
    ['log_time_ms', header.logTimeMs],
    [REPLACED_ROWS_META, replacedRows],
  ];
  if (summary.stateDigest !== null) meta.push(['state_digest', summary.stateDigest]);
  for (const table of TABLES) meta.push([`${table}_rows`, digests[table].rows], [`${table}_crc_sum`, digests[table].sum]);
  // better-sqlite3 binds every JS number as a REAL; a bigint goes in as an INTEGER (shown as 3, not 3.0).
  for (const [key, value] of meta) insertMeta.run(key, typeof value === 'number' ? BigInt(value) : value);
}

/** A content that says how many keys it holds must hold that many. */
export function checkKeyCount(summary: SnapshotSummary, keys: TableDigest): void {
  if (summary.keyCount !== null && keys.rows !== summary.keyCount) {
    throw new InvalidWriteError(`the snapshot was to hold ${summary.keyCount} keys, but ${keys.rows} were written`);
  }
}

export function fileInfo(
  header: SnapshotHeader,
  summary: SnapshotSummary,
  identity: SnapshotWriterIdentity,
  digests: Readonly<Record<Table, TableDigest>>,
): SnapshotFileInfo {
  return {
    ...header,
    formatVersion: SNAPSHOT_FORMAT_VERSION,
    clusterId: identity.clusterId,
    writtenBy: identity.nodeId,
    keyCount: digests.keys.rows,
    sessionCount: digests.sessions.rows,
    stateDigest: summary.stateDigest,
  };
}

export function runInsert(insert: () => void, duplicateMessage: string): void {
  try {
    insert();
  } catch (error) {
    if (sqliteCode(error) === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new InvalidWriteError(duplicateMessage, { cause: error });
    throw error;
  }
}

function createUniqueIndex(db: Db, index: (typeof INDEXES)[number]): void {
  try {
    db.exec(index.sql);
  } catch (error) {
    if (sqliteCode(error) !== 'SQLITE_CONSTRAINT_UNIQUE') throw error;
    const duplicate = db.prepare(`SELECT ${index.column} FROM ${index.table} GROUP BY 1 HAVING count(*) > 1 LIMIT 1`).pluck().get();
    throw new InvalidWriteError(`the snapshot rows hold ${index.column} '${String(duplicate)}' more than once`, { cause: error });
  }
}

export function checkHeader(header: SnapshotHeader): void {
  if (!isCount(header.index) || !isCount(header.term) || !isCount(header.logTimeMs)) {
    throw new InvalidWriteError(
      `snapshot header needs non-negative safe integers: index ${header.index}, term ${header.term}, logTimeMs ${header.logTimeMs}`,
    );
  }
}

export function checkKeyRow(row: SnapshotKeyRow): void {
  if (
    typeof row.key !== 'string' ||
    !isKeyType(row.type) ||
    !(row.value instanceof Uint8Array) ||
    (row.expiresAtMs !== null && !isCount(row.expiresAtMs))
  ) {
    throw new InvalidWriteError(
      `invalid snapshot key row for '${String(row.key)}': type ${String(row.type)}, expiresAtMs ${String(row.expiresAtMs)}`,
    );
  }
}

export function checkSessionRow(row: SnapshotSessionRow): void {
  if (typeof row.clientId !== 'string' || !isCount(row.sequence) || !(row.result instanceof Uint8Array) || !isCount(row.lastSeenMs)) {
    throw new InvalidWriteError(
      `invalid snapshot session row for '${String(row.clientId)}': sequence ${String(row.sequence)}, lastSeenMs ${String(row.lastSeenMs)}`,
    );
  }
}

/** What the opener requires of a snapshot file; index and term when it knows which snapshot it wants. */
export interface SnapshotExpectation {
  readonly clusterId: string;
  readonly index?: number;
  readonly term?: number;
}

/**
 * Reads a snapshot file. Opening checks the header (format, cluster, index,
 * term, members); the row iterators check every row, and the row count and
 * checksum sum once they reach the end: a consumer must let their
 * CorruptDataError propagate and discard what it restored.
 */
export class SnapshotFileReader {
  private constructor(
    readonly path: string,
    readonly info: SnapshotFileInfo,
    private readonly db: Db,
    private readonly expected: Readonly<Record<'keys' | 'sessions', { rows: number; sum: number }>>,
  ) {}

  static open(path: string, expect: SnapshotExpectation): SnapshotFileReader {
    if (!fs.existsSync(path)) throw new CorruptDataError(path, 'the snapshot file is missing');
    const db = withCorruptionMapped(path, () => new Database(path, { readonly: true, fileMustExist: true }));
    try {
      return withCorruptionMapped(path, () => {
        db.pragma('trusted_schema = OFF');
        const applicationId = pragmaValue(db, 'application_id');
        if (applicationId !== SNAPSHOT_APPLICATION_ID) {
          throw new CorruptDataError(path, `not a quorumkv snapshot file (application_id ${String(applicationId)})`);
        }
        const meta = new Map(db.prepare('SELECT key, value FROM meta').raw().all() as [string, unknown][]);
        const formatVersion = meta.get('format_version');
        if (!isCount(formatVersion)) throw new CorruptDataError(path, 'the meta table has no format_version');
        if (formatVersion > SNAPSHOT_FORMAT_VERSION) throw new SchemaTooNewError(path, formatVersion, SNAPSHOT_FORMAT_VERSION);
        if (formatVersion !== SNAPSHOT_FORMAT_VERSION) throw new CorruptDataError(path, `unknown format_version ${formatVersion}`);
        const text = (key: string): string => {
          const value = meta.get(key);
          if (typeof value !== 'string') throw new CorruptDataError(path, `meta '${key}' is missing or not text`);
          return value;
        };
        const count = (key: string): number => {
          const value = meta.get(key);
          if (!isCount(value)) throw new CorruptDataError(path, `meta '${key}' is missing or not a count`);
          return value;
        };
        const clusterId = text('cluster_id');
        if (clusterId !== expect.clusterId) throw new ForeignClusterError(path, expect.clusterId, clusterId);
        const index = count('index');
        const term = count('term');
        if ((expect.index !== undefined && index !== expect.index) || (expect.term !== undefined && term !== expect.term)) {
          throw new CorruptDataError(
            path,
            `the file holds the snapshot at index ${index} term ${term}, expected index ${String(expect.index)} term ${String(expect.term)}`,
          );
        }
        const stateDigest = meta.get('state_digest') ?? null;
        if (stateDigest !== null && typeof stateDigest !== 'string') throw new CorruptDataError(path, `meta 'state_digest' is not text`);
        const confState = readMembers(db, path, count('members_rows'), count('members_crc_sum'));
        const expected = {
          keys: { rows: count('keys_rows'), sum: count('keys_crc_sum') },
          sessions: { rows: count('sessions_rows'), sum: count('sessions_crc_sum') },
        };
        const info: SnapshotFileInfo = {
          index,
          term,
          confState,
          logTimeMs: count('log_time_ms'),
          formatVersion,
          clusterId,
          writtenBy: text('written_by'),
          keyCount: expected.keys.rows,
          sessionCount: expected.sessions.rows,
          stateDigest,
        };
        return new SnapshotFileReader(path, info, db, expected);
      });
    } catch (error) {
      db.close();
      throw error;
    }
  }

  /** The keys in write order, each checked; throws CorruptDataError on a bad row or, at the end, a count or checksum mismatch. */
  *keys(): Generator<SnapshotKeyRow, void, undefined> {
    const hasher = new RowHasher();
    const digest = new TableDigest();
    const rows = this.rows<[unknown, unknown, unknown, unknown]>('keys', 'key, type, value, expires_at_ms');
    for (const [key, type, value, expiresAtMs] of rows) {
      if (typeof key !== 'string' || !isKeyType(type) || !(value instanceof Uint8Array) || (expiresAtMs !== null && !isCount(expiresAtMs))) {
        throw new CorruptDataError(this.path, `key row ${digest.rows + 1} ('${String(key)}') has invalid fields`);
      }
      digest.add(hasher.key(key, type, value, expiresAtMs));
      yield { key, type, value, expiresAtMs };
    }
    this.checkDigest('keys', digest);
  }

  /**
   * keys() as packed batches (packed-key-rows.ts), for a worker thread to
   * hand over: the same rows in the same order, the same checks, the same
   * CorruptDataError. Several times cheaper than keys(), which makes a JS
   * array, a string and a Buffer per row. Each batch's arrays are its own.
   */
  *keyBatches(): Generator<PackedKeyRows, void, undefined> {
    const hasher = new RowHasher();
    const digest = new TableDigest();
    const query = this.db.prepare<[number, number]>(KEY_BATCH_SQL).raw();
    let after = 0;
    let limit = ROWS_PER_SLICE;
    for (;;) {
      let row: unknown[];
      try {
        row = withCorruptionMapped(this.path, () => query.get(after, limit) as unknown[]);
      } catch (error) {
        // A batch of rows that add up to more than SQLite's largest value: fewer at a time.
        if (sqliteCode(error) === 'SQLITE_TOOBIG' && limit > 1) {
          limit = Math.max(1, limit >> 1);
          continue;
        }
        throw error;
      }
      const [count, lastRowid, valid, keys, keyLengths, types, values, valueLengths, expiries] = row;
      if (count === 0) break;
      if (typeof count !== 'number' || valid !== count) this.throwInvalidKeyRow();
      const batch = this.packBatch(hasher, digest, count, keys, keyLengths, types, values, valueLengths, expiries);
      after = lastRowid as number;
      const bytes = batch.keys.length + batch.values.length;
      limit = Math.max(1, Math.min(ROWS_PER_SLICE, Math.floor((BATCH_BYTES * count) / Math.max(1, bytes))));
      yield batch;
    }
    this.checkDigest('keys', digest);
  }

  /** The client sessions, checked like keys(). */
  *sessions(): Generator<SnapshotSessionRow, void, undefined> {
    const hasher = new RowHasher();
    const digest = new TableDigest();
    const rows = this.rows<[unknown, unknown, unknown, unknown]>('sessions', 'client_id, sequence, result, last_seen_ms');
    for (const [clientId, sequence, result, lastSeenMs] of rows) {
      if (typeof clientId !== 'string' || !isCount(sequence) || !(result instanceof Uint8Array) || !isCount(lastSeenMs)) {
        throw new CorruptDataError(this.path, `session row ${digest.rows + 1} ('${String(clientId)}') has invalid fields`);
      }
      digest.add(hasher.session(clientId, sequence, result, lastSeenMs));
      yield { clientId, sequence, result, lastSeenMs };
    }
    this.checkDigest('sessions', digest);
  }

  /**
   * Checks the whole file: SQLite's structural check, then every row against
   * the counts and checksums in meta. Yields to the event loop as it goes.
   */
  async verify(): Promise<void> {
    const problems = withCorruptionMapped(this.path, () => quickCheck(this.db));
    if (problems !== null) throw new CorruptDataError(this.path, `SQLite integrity check failed: ${problems}`);
    // A batch is a few thousand rows or a few MiB: one per turn of the event loop.
    for (const _ of this.keyBatches()) await yieldToEventLoop();
    let n = 0;
    for (const _ of this.sessions()) if (++n % ROWS_PER_SLICE === 0) await yieldToEventLoop();
  }

  close(): void {
    this.db.close();
  }

  /** Checks and packs one keyBatches() aggregate row; every field's type is known valid. */
  private packBatch(
    hasher: RowHasher,
    digest: TableDigest,
    count: number,
    keys: unknown,
    keyLengths: unknown,
    types: unknown,
    values: unknown,
    valueLengths: unknown,
    expiries: unknown,
  ): PackedKeyRows {
    const keyBytes = ownBytes(keys);
    const valueBytes = ownBytes(values);
    const typeCodes = String(types);
    const fields = new Float64Array(count * FIELDS_PER_ROW);
    // The lengths and expiries go straight into their slots (split() would make three strings per row); the loop below turns each length into an end.
    const parsed =
      parseIntegerList(String(keyLengths), count, fields, KEY_END_SLOT) &&
      parseIntegerList(String(valueLengths), count, fields, VALUE_END_SLOT) &&
      parseIntegerList(String(expiries), count, fields, EXPIRY_SLOT);
    if (!parsed) this.throwInvalidKeyRow();
    let keyStart = 0;
    let valueStart = 0;
    for (let i = 0, at = 0; i < count; i++, at += FIELDS_PER_ROW) {
      const keyEnd = keyStart + (fields[at + KEY_END_SLOT] as number);
      const valueEnd = valueStart + (fields[at + VALUE_END_SLOT] as number);
      const typeCode = typeCodes.charCodeAt(i) - 48;
      const expiresAtMs = fields[at + EXPIRY_SLOT] as number;
      if (typeCode === UNKNOWN_TYPE_CODE || !Number.isSafeInteger(expiresAtMs)) this.throwInvalidKeyRow();
      digest.add(hasher.keyBytes(keyBytes, keyStart, keyEnd, typeCode, expiresAtMs, valueBytes, valueStart, valueEnd));
      fields[at + KEY_END_SLOT] = keyEnd;
      fields[at + VALUE_END_SLOT] = valueEnd;
      fields[at + TYPE_SLOT] = typeCode;
      keyStart = keyEnd;
      valueStart = valueEnd;
    }
    if (keyStart !== keyBytes.length || valueStart !== valueBytes.length) {
      throw new CorruptDataError(this.path, `key rows ${digest.rows - count + 1} to ${digest.rows} do not add up to their lengths`);
    }
    return { rows: count, keys: keyBytes, values: valueBytes, fields };
  }

  /** A batch holds a row keys() would refuse: keys() names it. */
  private throwInvalidKeyRow(): never {
    for (const _ of this.keys());
    throw new CorruptDataError(this.path, 'a key row has invalid fields');
  }

  /**
   * Rows of `table` in rowid (write) order, a page at a time: one query per
   * few thousand rows costs less than stepping a statement row by row.
   */
  private *rows<Row extends unknown[]>(table: 'keys' | 'sessions', columns: string): Generator<Row, void, undefined> {
    // rowid comes last, so each row is yielded as SQLite returned it; readers destructure the leading columns.
    const page = this.db.prepare<[number]>(`SELECT ${columns}, rowid FROM ${table} WHERE rowid > ? ORDER BY rowid LIMIT ${ROWS_PER_SLICE}`).raw();
    let after = 0;
    for (;;) {
      // SQLite reports damage lazily, as the pages holding the rows are read.
      const rows = withCorruptionMapped(this.path, () => page.all(after) as Row[]);
      const last = rows[rows.length - 1];
      if (last === undefined) return;
      yield* rows;
      after = last[last.length - 1] as number;
      if (rows.length < ROWS_PER_SLICE) return;
    }
  }

  private checkDigest(table: 'keys' | 'sessions', digest: TableDigest): void {
    const expected = this.expected[table];
    if (digest.rows !== expected.rows) {
      throw new CorruptDataError(this.path, `table ${table} has ${digest.rows} rows, but the snapshot was written with ${expected.rows}`);
    }
    if (digest.sum !== expected.sum) {
      throw new CorruptDataError(this.path, `table ${table} fails its checksum: rows were changed after the snapshot was written`);
    }
  }
}

function readMembers(db: Db, path: string, expectedRows: number, expectedSum: number): ConfState {
  const hasher = new RowHasher();
  const digest = new TableDigest();
  const voters: string[] = [];
  const learners: string[] = [];
  for (const [nodeId, role] of db.prepare('SELECT node_id, role FROM members ORDER BY rowid').raw().all() as [unknown, unknown][]) {
    if (typeof nodeId !== 'string' || (role !== 'voter' && role !== 'learner')) {
      throw new CorruptDataError(path, `members row '${String(nodeId)}' has invalid fields`);
    }
    digest.add(hasher.member(nodeId, role));
    (role === 'voter' ? voters : learners).push(nodeId);
  }
  if (digest.rows !== expectedRows || digest.sum !== expectedSum) {
    throw new CorruptDataError(path, `table members does not match its row count and checksum in meta`);
  }
  return { voters, learners };
}

/**
 * Parses `count` comma-separated integers (digits, optionally after a minus
 * sign) into into[slot], into[slot + FIELDS_PER_ROW], ...; false if the text
 * is anything else or holds another count. A number past 2^53 comes out
 * inexact, which the caller's Number.isSafeInteger check refuses.
 */
export function parseIntegerList(text: string, count: number, into: Float64Array, slot: number): boolean {
  let at = slot;
  let parsed = 0;
  let value = 0;
  let digits = 0;
  let negative = false;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : COMMA;
    if (c >= DIGIT_0 && c <= DIGIT_9) {
      value = value * 10 + (c - DIGIT_0);
      digits++;
    } else if (c === MINUS && digits === 0 && !negative) {
      negative = true;
    } else if (c === COMMA && digits > 0 && parsed < count) {
      into[at] = negative ? -value : value;
      at += FIELDS_PER_ROW;
      parsed++;
      value = 0;
      digits = 0;
      negative = false;
    } else {
      return false;
    }
  }
  return parsed === count;
}

const COMMA = 0x2c;
const MINUS = 0x2d;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** The bytes of a BLOB as a Uint8Array with a buffer of its own (transferable); an empty one for NULL. */
function ownBytes(blob: unknown): Uint8Array {
  if (!(blob instanceof Uint8Array)) return new Uint8Array(0);
  return blob.byteOffset === 0 && blob.byteLength === blob.buffer.byteLength ? blob : blob.slice();
}

/** The size of a file in bytes. */
export function fileSize(path: string): number {
  return fs.statSync(path).size;
}
