import * as fs from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import {
  CorruptDataError,
  DataDirLockedError,
  ForeignClusterError,
  ForeignNodeError,
  InvalidWriteError,
  NODE_SCHEMA_VERSION,
  NotInitializedError,
  SchemaTooNewError,
  StorageClosedError,
} from '../../../src/storage/index.ts';
import type { EntryType } from '../../../src/raft/types.ts';
import type { NodeStorage, PersistBatch, StorageError } from '../../../src/storage/index.ts';
import { CLUSTER, NODE, entries, entry, openAndLoad, plain, useScratch } from './helpers.ts';

const scratch = useScratch();

const CONF = { voters: ['n1', 'n2', 'n3'], learners: [] };

/** Edits the node database behind the storage's back, as a second SQLite connection would. */
function tamper(dir: string, sql: string, ...params: unknown[]): void {
  const db = new Database(join(dir, 'node.db'));
  try {
    db.prepare(sql).run(...params);
  } finally {
    db.close();
  }
}

/** A storage holding entries 1..`through` at term 1, all committed. */
function withLog(through: number): { dir: string; storage: NodeStorage } {
  const dir = scratch.dir();
  const storage = scratch.open(dir);
  storage.persist({ hardState: { term: 1, vote: 'n1', commit: through }, entries: entries(1, through, 1) });
  return { dir, storage };
}

describe('persist and load', () => {
  it('a new data dir loads as empty', () => {
    const storage = scratch.open(scratch.dir());
    expect(storage.load()).toEqual({ hardState: { term: 0, vote: '', commit: 0 }, snapshot: null, entries: [] });
  });

  it('round-trips hard state and entries of every type across a reopen', () => {
    const dir = scratch.dir();
    const written = [
      entry(1, 1, 'noop', new Uint8Array()),
      entry(2, 1, 'config', new Uint8Array([0, 1, 2, 255])),
      entry(3, 2, 'normal', new Uint8Array(1 << 20).fill(7)),
    ];
    const storage = scratch.open(dir);
    storage.persist({ hardState: { term: 2, vote: 'n2', commit: 2 }, entries: written });
    storage.close();

    const reopened = scratch.open(dir, { create: false });
    const loaded = reopened.load();
    expect(loaded.hardState).toEqual({ term: 2, vote: 'n2', commit: 2 });
    expect(loaded.snapshot).toBeNull();
    expect(plain(loaded.entries)).toEqual(plain(written));
    expect(reopened.firstIndex).toBe(1);
    expect(reopened.lastIndex).toBe(3);
  });

  it('appending at an index deletes the stored entries from there on (a follower truncating a conflict)', () => {
    const dir = scratch.dir();
    const storage = scratch.open(dir);
    storage.persist({ hardState: { term: 1, vote: '', commit: 2 }, entries: entries(1, 5, 1) });
    storage.persist({ hardState: { term: 2, vote: '', commit: 2 }, entries: entries(3, 4, 2) });
    expect(plain(storage.load().entries)).toEqual(plain([...entries(1, 2, 1), ...entries(3, 4, 2)]));
    expect(storage.lastIndex).toBe(4);
    storage.persist({ entries: entries(5, 6, 2) });
    expect(storage.load().entries.map((e) => e.index)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('an empty batch, or an unchanged hard state alone, writes nothing', () => {
    const { storage } = withLog(3);
    const before = storage.load();
    storage.persist({});
    storage.persist({ hardState: null, entries: [], snapshot: null });
    storage.persist({ hardState: { term: 1, vote: 'n1', commit: 3 }, entries: [] });
    expect(storage.load()).toEqual(before);
  });

  it('refuses writes that would break the log, and leaves the stored state as it was', () => {
    const { storage } = withLog(3);
    storage.persist({ hardState: { term: 2, vote: 'n3', commit: 3 }, entries: entries(4, 5, 2) });
    const before = storage.load();
    const refusals: [string, PersistBatch, RegExp][] = [
      ['gap', { entries: [entry(7, 2)] }, /cannot append at index 7: the log ends at 5, so that would leave a gap/],
      ['overwrite of committed entries', { entries: [entry(3, 2)] }, /would overwrite committed entries \(commit is 3\)/],
      ['batch not contiguous', { entries: [entry(6, 2), entry(8, 2)] }, /must be contiguous: entry 6 is followed by 8/],
      ['terms decrease within the batch', { entries: [entry(6, 3), entry(7, 2)] }, /entry 7 has term 2, below the term 3 of entry 6/],
      ['term below the previous entry', { entries: [entry(6, 1)] }, /entry 6 has term 1, below the term 2 of entry 5/],
      ['term goes back', { hardState: { term: 1, vote: 'n1', commit: 3 } }, /the term would go backwards, from 2 to 1/],
      ['vote changes within a term', { hardState: { term: 2, vote: 'n2', commit: 3 } }, /term 2 was cast for 'n3' and cannot change to 'n2'/],
      ['commit goes back', { hardState: { term: 2, vote: 'n3', commit: 2 } }, /commit index would go backwards, from 3 to 2/],
      ['commit beyond the log', { hardState: { term: 2, vote: 'n3', commit: 9 } }, /commit 9 is beyond the last index 5/],
      ['index zero', { entries: [entry(0, 2)] }, /positive integers/],
      ['unsafe index', { entries: [entry(2 ** 53, 2)] }, /positive integers/],
      ['unknown type', { entries: [{ ...entry(6, 2), type: 'bogus' as EntryType }] }, /entry 6 has an invalid type \(bogus\)/],
    ];
    for (const [name, batch, message] of refusals) {
      const error = catchError(() => storage.persist(batch));
      expect(error, name).toBeInstanceOf(InvalidWriteError);
      expect(error, name).toMatchObject({ code: 'STORAGE_INVALID_WRITE', message: expect.stringMatching(message) as unknown });
    }
    expect(storage.load()).toEqual(before);
  });

  it('a vote may be cast when none was, and reset by a new term', () => {
    const storage = scratch.open(scratch.dir());
    storage.persist({ hardState: { term: 1, vote: '', commit: 0 } });
    storage.persist({ hardState: { term: 1, vote: 'n2', commit: 0 } });
    storage.persist({ hardState: { term: 2, vote: '', commit: 0 } });
    storage.persist({ hardState: { term: 2, vote: 'n3', commit: 0 } });
    expect(storage.load().hardState).toEqual({ term: 2, vote: 'n3', commit: 0 });
  });

  it('refuses use after close', () => {
    const storage = scratch.open(scratch.dir());
    storage.close();
    storage.close();
    expect(() => storage.load()).toThrow(StorageClosedError);
    expect(() => storage.persist({ entries: [entry(1, 1)] })).toThrow(StorageClosedError);
    expect(() => storage.persistAsync({ entries: [entry(1, 1)] })).toThrow(StorageClosedError);
  });
});

describe('persistAsync', () => {
  it('commits at once (later writes build on it), and the batches are there after a reopen', async () => {
    const dir = scratch.dir();
    const storage = scratch.open(dir);
    const first = storage.persistAsync({ hardState: { term: 1, vote: 'n1', commit: 0 }, entries: entries(1, 3, 1) });
    // Validated against the first batch before its fsync returned: no gap.
    const second = storage.persistAsync({ hardState: { term: 1, vote: 'n1', commit: 3 }, entries: entries(4, 5, 1) });
    expect(storage.lastIndex).toBe(5);
    await Promise.all([first, second]);
    storage.persist({ hardState: { term: 1, vote: 'n1', commit: 5 }, entries: entries(6, 6, 1) });
    storage.close();

    const loaded = scratch.open(dir, { create: false }).load();
    expect(plain(loaded.entries)).toEqual(plain(entries(1, 6, 1)));
    expect(loaded.hardState).toEqual({ term: 1, vote: 'n1', commit: 5 });
  });

  it('refuses an invalid batch at once, writing nothing, and resolves when there is nothing to write', async () => {
    const { storage } = withLog(3);
    const before = storage.load();
    expect(() => storage.persistAsync({ entries: [entry(9, 1)] })).toThrow(/would leave a gap/);
    await storage.persistAsync({ hardState: { term: 1, vote: 'n1', commit: 3 } });
    expect(storage.load()).toEqual(before);
  });
});

describe('compaction', () => {
  it('deletes entries through the given index, keeping a trailing window below the snapshot', async () => {
    const { dir, storage } = withLog(100);
    const snapshot = await storage.writeSnapshot({ index: 80, term: 1, logTimeMs: 0, confState: CONF }, { keys: [], sessions: [] });
    const keepTrailing = 20;
    storage.compact(snapshot.index - keepTrailing);
    expect(storage.firstIndex).toBe(61);
    const loaded = storage.load();
    expect(loaded.entries.map((e) => e.index)).toEqual(range(61, 100));
    expect(loaded.snapshot).toMatchObject({ index: 80, term: 1 });

    storage.persist({ hardState: { term: 1, vote: 'n1', commit: 101 }, entries: [entry(101, 1)] });
    storage.compact(40); // below the first entry: nothing to do
    storage.close();
    const reopened = scratch.open(dir, { create: false });
    expect(reopened.load().entries.map((e) => e.index)).toEqual(range(61, 101));
  });

  it('can delete the whole log when the snapshot covers it', async () => {
    const { dir, storage } = withLog(10);
    await storage.writeSnapshot({ index: 10, term: 1, logTimeMs: 0, confState: CONF }, { keys: [], sessions: [] });
    storage.compact(10);
    expect(storage.firstIndex).toBeNull();
    expect(storage.lastIndex).toBe(10);
    storage.persist({ entries: [entry(11, 1)], hardState: { term: 1, vote: 'n1', commit: 11 } });
    storage.close();
    const loaded = scratch.open(dir, { create: false }).load();
    expect(loaded.entries.map((e) => e.index)).toEqual([11]);
  });

  it('refuses to compact entries no snapshot covers', async () => {
    const { storage } = withLog(10);
    expect(() => storage.compact(5)).toThrow(/no snapshot covers it \(the latest snapshot is at none\)/);
    storage.compact(10 - 20); // a trailing window longer than the log: nothing to do
    expect(() => storage.compact(1.5)).toThrow(/not an index/);
    await storage.writeSnapshot({ index: 5, term: 1, logTimeMs: 0, confState: CONF }, { keys: [], sessions: [] });
    expect(() => storage.compact(6)).toThrow(InvalidWriteError);
    expect(storage.load().entries).toHaveLength(10);
  });
});

describe('open refuses a data dir that is not this node’s', () => {
  it('without create, a dir with no node database', () => {
    const dir = scratch.dir();
    const error = catchError(() => openAndLoad(dir));
    expect(error).toBeInstanceOf(NotInitializedError);
    expect((error as StorageError).code).toBe('STORAGE_NOT_INITIALIZED');
    expect((error as Error).message).toContain(join(dir, 'node.db'));
    expect(catchError(() => openAndLoad(join(dir, 'missing')))).toBeInstanceOf(NotInitializedError);
  });

  it('another cluster', () => {
    const { dir, storage } = withLog(1);
    storage.close();
    const error = catchError(() => openAndLoad(dir, { clusterId: 'other-cluster', create: true }));
    expect(error).toBeInstanceOf(ForeignClusterError);
    expect(error).toMatchObject({ code: 'STORAGE_FOREIGN_CLUSTER', expected: 'other-cluster', found: CLUSTER, name: 'ForeignClusterError' });
    expect((error as Error).message).toBe(
      `${join(dir, 'node.db')} belongs to cluster '${CLUSTER}', but this node was started for cluster 'other-cluster'. Check --data-dir and the cluster id.`,
    );
  });

  it('another node', () => {
    const { dir, storage } = withLog(1);
    storage.close();
    const error = catchError(() => openAndLoad(dir, { nodeId: 'n2' }));
    expect(error).toBeInstanceOf(ForeignNodeError);
    expect((error as Error).message).toContain(`belongs to node '${NODE}', but this node was started as 'n2'`);
  });

  it('a newer schema', () => {
    const { dir, storage } = withLog(1);
    storage.close();
    tamper(dir, "UPDATE meta SET value = ? WHERE key = 'schema_version'", NODE_SCHEMA_VERSION + 1);
    const error = catchError(() => openAndLoad(dir));
    expect(error).toBeInstanceOf(SchemaTooNewError);
    expect(error).toMatchObject({ code: 'STORAGE_SCHEMA_TOO_NEW', found: NODE_SCHEMA_VERSION + 1, supported: NODE_SCHEMA_VERSION });
    expect((error as Error).message).toMatch(/written by a newer quorumkv/);
  });

  it('a SQLite file that is not a node database, and a file that is not SQLite', () => {
    const dir = scratch.dir();
    const other = new Database(join(dir, 'node.db'));
    other.exec('CREATE TABLE t (x)');
    other.close();
    expect(catchError(() => openAndLoad(dir, { create: true }))).toMatchObject({
      code: 'STORAGE_CORRUPT',
      message: expect.stringMatching(/not a quorumkv node database/) as unknown,
    });
    fs.writeFileSync(join(dir, 'node.db'), Buffer.alloc(8192, 'x'));
    expect(catchError(() => openAndLoad(dir))).toBeInstanceOf(CorruptDataError);
  });

  it('a second open in the same process', () => {
    const dir = scratch.dir();
    scratch.open(dir);
    const error = catchError(() => scratch.open(dir));
    expect(error).toBeInstanceOf(DataDirLockedError);
    expect((error as Error).message).toContain(`pid ${process.pid}`);
  });
});

describe('corruption is refused with the file and the index named', () => {
  it('an entry whose data was changed through SQLite', () => {
    const { dir, storage } = withLog(5);
    storage.close();
    tamper(dir, 'UPDATE log SET data = ? WHERE idx = 3', Buffer.from('not what was written'));
    const error = catchError(() => openAndLoad(dir));
    expect(error).toBeInstanceOf(CorruptDataError);
    expect(error).toMatchObject({ code: 'STORAGE_CORRUPT', file: join(dir, 'node.db') });
    expect((error as Error).message).toMatch(/^.*node\.db: log entry 3 \(term 1\) fails its checksum: stored \d+, computed \d+\. The data is damaged/);
  });

  it('an entry whose bytes were flipped in the file itself', () => {
    const dir = scratch.dir();
    const storage = scratch.open(dir);
    const marked = range(1, 20).map((i) => entry(i, 1, 'normal', new TextEncoder().encode(`MARK${String(i).padStart(4, '0')}${'.'.repeat(300)}`)));
    storage.persist({ hardState: { term: 1, vote: '', commit: 20 }, entries: marked });
    storage.close(); // checkpoints the WAL into node.db
    expect(fs.existsSync(join(dir, 'node.db-wal'))).toBe(false);
    const path = join(dir, 'node.db');
    const bytes = fs.readFileSync(path);
    // B-tree page splits can leave stale copies of a row in free space: flip a byte in every copy.
    let copies = 0;
    for (let at = bytes.indexOf('MARK0012'); at >= 0; at = bytes.indexOf('MARK0012', at + 1)) {
      bytes.writeUInt8(bytes.readUInt8(at + 100) ^ 0x01, at + 100);
      copies++;
    }
    expect(copies).toBeGreaterThan(0);
    fs.writeFileSync(path, bytes);
    expect(catchError(() => openAndLoad(dir))).toMatchObject({
      code: 'STORAGE_CORRUPT',
      message: expect.stringMatching(/log entry 12 \(term 1\) fails its checksum/) as unknown,
    });
  });

  it('damaged b-tree pages', () => {
    const { dir, storage } = withLog(200);
    storage.close();
    const path = join(dir, 'node.db');
    const bytes = fs.readFileSync(path);
    const pageSize = bytes.readUInt16BE(16);
    // Scribble over the header of every page after the schema page: SQLite's own check must object.
    for (let page = 1; page * pageSize < bytes.length; page++) bytes.fill(0xa5, page * pageSize, page * pageSize + 12);
    fs.writeFileSync(path, bytes);
    const error = catchError(() => openAndLoad(dir));
    expect(error).toBeInstanceOf(CorruptDataError);
    expect((error as Error).message).toContain(path);
  });

  it('a gap in the log', () => {
    const { dir, storage } = withLog(5);
    storage.close();
    tamper(dir, 'DELETE FROM log WHERE idx = 3');
    expect(catchError(() => openAndLoad(dir))).toMatchObject({
      message: expect.stringMatching(/the log has a gap: entry 2 is followed by entry 4/) as unknown,
    });
  });

  it('committed entries missing from the end', () => {
    const { dir, storage } = withLog(5);
    storage.close();
    tamper(dir, 'DELETE FROM log WHERE idx >= 4');
    expect(catchError(() => openAndLoad(dir))).toMatchObject({
      message: expect.stringMatching(/commit is 5, but the log ends at 3: committed entries are missing/) as unknown,
    });
  });

  it('entries missing from the start with no snapshot to cover them', () => {
    const { dir, storage } = withLog(5);
    storage.close();
    tamper(dir, 'DELETE FROM log WHERE idx = 1');
    expect(catchError(() => openAndLoad(dir))).toMatchObject({
      message: expect.stringMatching(/the log starts at index 2, but there is no snapshot covering/) as unknown,
    });
  });

  it('a changed hard state', () => {
    const { dir, storage } = withLog(5);
    storage.close();
    tamper(dir, "UPDATE hard_state SET vote = 'n3'");
    expect(catchError(() => openAndLoad(dir))).toMatchObject({
      message: expect.stringMatching(/hard_state row \(term 1, vote 'n3', commit 5\) fails its checksum/) as unknown,
    });
  });

  it('a changed snapshot record', async () => {
    const { dir, storage } = withLog(5);
    await storage.writeSnapshot({ index: 4, term: 1, logTimeMs: 0, confState: CONF }, { keys: [], sessions: [] });
    storage.close();
    tamper(dir, 'UPDATE snapshots SET term = 2');
    expect(catchError(() => openAndLoad(dir))).toMatchObject({
      message: expect.stringMatching(/the snapshots row for 'snapshot-0+4-1-[0-9a-f]+\.sqlite' \(index 4\) fails its checksum/) as unknown,
    });
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error, but none was thrown');
}

function range(from: number, through: number): number[] {
  return Array.from({ length: through - from + 1 }, (_, i) => from + i);
}

describe('bootstrap', () => {
  it('makes a new data dir a new member: an empty snapshot holding the membership, committed, across a reopen', async () => {
    const dir = scratch.dir();
    const storage = scratch.open(dir);
    const stored = await storage.bootstrap({ index: 1, term: 1, confState: CONF, logTimeMs: 0 });
    expect(stored).toMatchObject({ index: 1, term: 1, confState: CONF });
    storage.close();
    const reopened = scratch.open(dir, { create: false });
    const loaded = reopened.load();
    expect(loaded.hardState).toEqual({ term: 1, vote: '', commit: 1 });
    expect(loaded.snapshot).toMatchObject({ index: 1, term: 1, confState: CONF });
    expect(loaded.entries).toEqual([]);
    const reader = reopened.openSnapshot(loaded.snapshot as NonNullable<typeof loaded.snapshot>);
    expect([...reader.keys()]).toEqual([]);
    reader.close();
  });

  it('refuses a data dir that already holds state', async () => {
    const { storage } = withLog(3);
    await expect(storage.bootstrap({ index: 1, term: 1, confState: CONF, logTimeMs: 0 })).rejects.toThrow(InvalidWriteError);
  });
});
