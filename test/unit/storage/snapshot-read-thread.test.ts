import * as fs from 'node:fs';
import { getPriority } from 'node:os';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { CorruptDataError, ReadPriority, forEachPackedKeyRow } from '../../../src/storage/index.ts';
import { BUSY_PAUSE_FACTOR, BUSY_WAIT_SHARE, GIVE_WAY_NICE, MAX_BATCHES_AHEAD } from '../../../src/storage/snapshot-read-thread.ts';
import type { NodeStorage, PackedKeyRows, SnapshotKeyRow, SnapshotSessionRow, StoredSnapshot } from '../../../src/storage/index.ts';
import { base64, entries, useScratch } from './helpers.ts';

const scratch = useScratch();

const CONF = { voters: ['n1', 'n2', 'n3'], learners: [] };
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

/** More rows than one query reads (4,096), with every kind of key and value a batch must carry. */
const BATCH_ROWS = 4096;
const KEYS: SnapshotKeyRow[] = [
  { key: 'zebra', type: 'string', value: bytes('first written'), expiresAtMs: null },
  { key: 'list:1', type: 'list', value: Uint8Array.of(0, 1, 2, 0, 255), expiresAtMs: 1_700_000_000_123 },
  { key: 'hash:ключ 🔑', type: 'hash', value: new Uint8Array(3 << 20).fill(9), expiresAtMs: 0 },
  { key: '', type: 'string', value: new Uint8Array(), expiresAtMs: null },
  { key: 'ü', type: 'string', value: bytes('latin1 but not ASCII'), expiresAtMs: 2 ** 53 - 1 },
  ...Array.from({ length: BATCH_ROWS * 2 + 17 }, (_, i): SnapshotKeyRow => ({
    key: `key-${i}`,
    type: 'string',
    value: new Uint8Array(i % 300).fill(i & 0xff),
    expiresAtMs: i % 3 === 0 ? 1_700_000_000_000 + i : null,
  })),
];
const SESSIONS: SnapshotSessionRow[] = [
  { clientId: 'client-b', sequence: 7, result: bytes('OK'), lastSeenMs: 1_700_000_000_000 },
  { clientId: 'client-a', sequence: 0, result: new Uint8Array(), lastSeenMs: 0 },
];

async function written(keys: readonly SnapshotKeyRow[] = KEYS): Promise<{ storage: NodeStorage; snapshot: StoredSnapshot }> {
  const storage = scratch.open(scratch.dir());
  storage.persist({ hardState: { term: 1, vote: 'n1', commit: 5 }, entries: entries(1, 5, 1) });
  const snapshot = await storage.writeSnapshot({ index: 5, term: 1, logTimeMs: 0, confState: CONF }, { keys, sessions: SESSIONS });
  return { storage, snapshot };
}

/** Every key row as plain values, with the key's UTF-8 length the visitor was given. */
type PlainRow = { key: string; keyBytes: number; type: string; value: string; expiresAtMs: number | null };

async function readInWorker(storage: NodeStorage, snapshot: StoredSnapshot): Promise<{ keys: PlainRow[]; sessions: SnapshotSessionRow[]; batches: number }> {
  const keys: PlainRow[] = [];
  let batches = 0;
  const sessions = await storage.readSnapshotRows(snapshot, (batch: PackedKeyRows) => {
    batches++;
    forEachPackedKeyRow(batch, (key, keyBytes, type, value, expiresAtMs) => keys.push({ key, keyBytes, type, value: base64(value), expiresAtMs }));
  });
  return { keys, sessions, batches };
}

function edit(path: string, sql: string): void {
  const db = new Database(path);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

/** The error the main-thread reader throws on the same file. */
function mainThreadError(storage: NodeStorage, snapshot: StoredSnapshot): unknown {
  const reader = storage.openSnapshot(snapshot);
  try {
    for (const _ of reader.keys());
    for (const _ of reader.sessions());
  } catch (error) {
    return error;
  } finally {
    reader.close();
  }
  return null;
}

async function workerError(storage: NodeStorage, snapshot: StoredSnapshot): Promise<unknown> {
  try {
    await readInWorker(storage, snapshot);
  } catch (error) {
    return error;
  }
  return null;
}

describe('reading a snapshot on a worker thread', () => {
  it('gives every row, in write order, as the main-thread reader does', async () => {
    const { storage, snapshot } = await written();
    const { keys, sessions, batches } = await readInWorker(storage, snapshot);
    expect(batches).toBeGreaterThanOrEqual(3);
    expect(keys).toEqual(
      KEYS.map((r) => ({ key: r.key, keyBytes: Buffer.byteLength(r.key), type: r.type, value: base64(r.value), expiresAtMs: r.expiresAtMs })),
    );
    expect(sessions.map((s) => ({ ...s, result: base64(s.result) }))).toEqual(SESSIONS.map((s) => ({ ...s, result: base64(s.result) })));
  });

  it('gives values as views of their own batch: kept to the end, every one still reads as its row', async () => {
    const { storage, snapshot } = await written();
    const values: Uint8Array[] = [];
    await storage.readSnapshotRows(snapshot, (batch) => forEachPackedKeyRow(batch, (_k, _b, _t, value) => values.push(value)));
    // A batch buffer reused for a later batch would have changed the values kept from the earlier one.
    expect(values.map(base64)).toEqual(KEYS.map((r) => base64(r.value)));
    expect(new Set(values.map((v) => v.buffer)).size).toBeGreaterThanOrEqual(3);
    // Shared, not transferred: V8 does not count them as new external memory, which would start major GCs mid-restore.
    expect(values.every((v) => v.buffer instanceof SharedArrayBuffer)).toBe(true);
    for (const value of values) value.fill(0xee);
    const again = await readInWorker(storage, snapshot);
    expect(again.keys.map((r) => r.value)).toEqual(KEYS.map((r) => base64(r.value)));
  });

  it('a changed value or a deleted row: the same CorruptDataError as on the main thread', async () => {
    const { storage, snapshot } = await written();
    const original = fs.readFileSync(snapshot.path);
    for (const sql of ["UPDATE keys SET value = x'00' WHERE key = 'list:1'", "DELETE FROM sessions WHERE client_id = 'client-a'", "UPDATE keys SET expires_at_ms = -5 WHERE key = 'key-7'"]) {
      fs.writeFileSync(snapshot.path, original);
      edit(snapshot.path, sql);
      const expected = mainThreadError(storage, snapshot);
      expect(expected, sql).toBeInstanceOf(CorruptDataError);
      const error = await workerError(storage, snapshot);
      expect(error, sql).toBeInstanceOf(CorruptDataError);
      expect((error as CorruptDataError).message, sql).toBe((expected as CorruptDataError).message);
      expect((error as CorruptDataError).file).toBe(snapshot.path);
    }
  });

  it('a cell of the wrong type (only damage can put one in these STRICT tables): the same CorruptDataError as on the main thread', async () => {
    const { storage, snapshot } = await written();
    const original = fs.readFileSync(snapshot.path);
    const cells = [
      "UPDATE keys SET key = CAST(key AS BLOB) WHERE key = 'key-7'",
      "UPDATE keys SET value = CAST(value AS TEXT) WHERE key = 'key-7'",
      "UPDATE keys SET type = 'set' WHERE key = 'key-7'",
      "UPDATE keys SET expires_at_ms = 5.5 WHERE key = 'key-7'",
      "UPDATE keys SET expires_at_ms = '5' WHERE key = 'key-7'",
    ];
    for (const sql of cells) {
      fs.writeFileSync(snapshot.path, original);
      // The table rebuilt without types or checks (same rows, same rowids), so that the cell can be written.
      edit(
        snapshot.path,
        `CREATE TABLE loose (key, type, value, expires_at_ms);
         INSERT INTO loose (rowid, key, type, value, expires_at_ms) SELECT rowid, key, type, value, expires_at_ms FROM keys;
         DROP TABLE keys;
         ALTER TABLE loose RENAME TO keys;
         CREATE UNIQUE INDEX keys_key ON keys (key);`,
      );
      edit(snapshot.path, sql);
      const expected = mainThreadError(storage, snapshot);
      expect(expected, sql).toBeInstanceOf(CorruptDataError);
      expect((expected as CorruptDataError).message, sql).toMatch(/key-7|invalid/);
      const error = await workerError(storage, snapshot);
      expect(error, sql).toBeInstanceOf(CorruptDataError);
      expect((error as CorruptDataError).message, sql).toBe((expected as CorruptDataError).message);
    }
  });

  it('a file that is not a snapshot, or is gone: CorruptDataError naming it', async () => {
    const { storage, snapshot } = await written();
    fs.writeFileSync(snapshot.path, Buffer.alloc(4096, 7));
    expect(await workerError(storage, snapshot)).toMatchObject({ name: 'CorruptDataError', message: expect.stringContaining(snapshot.path) });
    fs.rmSync(snapshot.path);
    expect(await workerError(storage, snapshot)).toMatchObject({ name: 'CorruptDataError', message: expect.stringMatching(/the snapshot file is missing/) });
  });

  it('takes one batch per event-loop turn: what else the thread has to do runs between batches, however far ahead the worker is', async () => {
    const { storage, snapshot } = await written();
    let turns = 0;
    let probing = true;
    const probe = (): void => {
      turns++;
      if (probing) setImmediate(probe);
    };
    setImmediate(probe);
    const turnAtBatch: number[] = [];
    try {
      await storage.readSnapshotRows(snapshot, () => {
        turnAtBatch.push(turns);
        // A slow consumer: meanwhile the worker posts every batch it may (MAX_BATCHES_AHEAD).
        const until = performance.now() + 20;
        while (performance.now() < until);
      });
    } finally {
      probing = false;
    }
    expect(turnAtBatch.length).toBeGreaterThan(2);
    for (let i = 1; i < turnAtBatch.length; i++) expect(turnAtBatch[i]).toBeGreaterThan(turnAtBatch[i - 1] as number);
  });

  it.runIf(process.platform === 'linux')('a read asked to give way lowers the priority of its own thread, not of the caller', async () => {
    // More batches than the worker may post ahead: it is still reading (and alive) while the first is taken.
    const rows = BATCH_ROWS * (MAX_BATCHES_AHEAD + 3);
    const { storage, snapshot } = await written(Array.from({ length: rows }, (_, i) => ({ key: `k${i}`, type: 'string' as const, value: bytes('v'), expiresAtMs: null })));
    // Thread id -> nice value. Other threads may run at that value already (the snapshot writer's thread).
    const niceOfThreads = (): Map<string, number> =>
      new Map(fs.readdirSync('/proc/self/task').map((tid) => [tid, Number(fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]?.split(' ')[16])]));
    const before = niceOfThreads();
    const callerNice = getPriority(0);
    const priority = new ReadPriority();
    // Asked before the read starts: the worker gives way before it posts its first batch.
    priority.lower();
    let niceAtFirstBatch: Map<string, number> | null = null;
    let keys = 0;
    await storage.readSnapshotRows(
      snapshot,
      (batch) => {
        niceAtFirstBatch ??= niceOfThreads();
        forEachPackedKeyRow(batch, () => keys++);
      },
      priority,
    );
    expect(keys).toBe(rows);
    const gaveWay = [...(niceAtFirstBatch as Map<string, number> | null ?? new Map<string, number>())].filter(([tid, nice]) => nice === GIVE_WAY_NICE && before.get(tid) !== GIVE_WAY_NICE);
    expect(gaveWay).toHaveLength(1);
    expect(getPriority(0)).toBe(callerNice);
  });

  it('a read asked to give way pauses after a batch during which its thread waited for a core, for 8 times the batch', () => {
    const priority = new ReadPriority(() => 0);
    // Not asked: never a pause, whatever the wait.
    expect(priority.pauseAfter(10, 10)).toBe(0);
    priority.lower();
    expect(priority.pauseAfter(10, 2)).toBe(0);
    expect(priority.pauseAfter(10, 2.5)).toBe(10 * BUSY_PAUSE_FACTOR);
    expect(priority.pauseAfter(10, 9)).toBe(10 * BUSY_PAUSE_FACTOR);
    expect(BUSY_WAIT_SHARE).toBe(0.2);
  });

  it("looks at the thread's wait around each batch once asked to give way, and not before; every row still arrives", async () => {
    const rows = BATCH_ROWS * 3 + 1;
    const { storage, snapshot } = await written(Array.from({ length: rows }, (_, i) => ({ key: `k${i}`, type: 'string' as const, value: bytes('v'), expiresAtMs: null })));
    let looks = 0;
    // Every look says the thread waited a second more: each batch is followed by a pause.
    const priority = new ReadPriority(() => ++looks * 1000);
    let keys = 0;
    let batches = 0;
    await storage.readSnapshotRows(snapshot, (batch) => {
      batches++;
      forEachPackedKeyRow(batch, () => keys++);
      if (batches === 2) {
        expect(looks).toBe(0);
        priority.lower();
      }
    }, priority);
    expect(keys).toBe(rows);
    expect(batches).toBe(4);
    expect(looks).toBe(2 * 2);
  });

  it('a consumer that throws stops the read with its error', async () => {
    const { storage, snapshot } = await written();
    let calls = 0;
    const failure = new Error('the consumer gave up');
    await expect(
      storage.readSnapshotRows(snapshot, () => {
        calls++;
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(calls).toBe(1);
  });
});
