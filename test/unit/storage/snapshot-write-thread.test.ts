/**
 * Snapshot files are written on a worker thread at a low OS priority
 * (src/storage/snapshot-write-thread.ts): the main thread only packs rows
 * and stays free to serve; a writer thread that dies takes no file with it
 * and the next write starts another.
 */
import * as fs from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startWorker } from '../../../src/threads/start-worker.ts';
import { SnapshotFileReader } from '../../../src/storage/index.ts';
import type { NodeStorage, SnapshotKeyRow } from '../../../src/storage/index.ts';
import { SnapshotWriterThread, WRITER_NICE } from '../../../src/storage/snapshot-write-thread.ts';
import { CLUSTER, entries, useScratch } from './helpers.ts';

const scratch = useScratch();

const CONF = { voters: ['n1'], learners: [] };
const IDENTITY = { clusterId: CLUSTER, nodeId: 'n1' };
const linux = process.platform === 'linux';
/** The snapshot index at which fixtures/dying-snapshot-writer.ts exits. */
const DIES_AT_INDEX = 13;

/** `count` keys of 100-byte values; `onRow` is told how many rows were taken so far. */
function* manyKeys(count: number, onRow: (taken: number) => void = () => undefined): Generator<SnapshotKeyRow> {
  for (let i = 0; i < count; i++) {
    yield { key: `key:${i}`, type: 'string', value: new Uint8Array(100).fill(i & 0xff), expiresAtMs: i % 5 === 0 ? 1_000 + i : null };
    onRow(i + 1);
  }
}

function withLog(through: number): NodeStorage {
  const storage = scratch.open(scratch.dir());
  storage.persist({ hardState: { term: 1, vote: 'n1', commit: through }, entries: entries(1, through, 1) });
  return storage;
}

/** A thread's stat fields from /proc, after the command name: [2] is utime... see proc(5); nice is field 19. */
function taskStat(tid: number): string[] {
  const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}
const niceOf = (tid: number): number => Number(taskStat(tid)[16]);
/** utime + stime of a thread, in clock ticks. */
const cpuTicksOf = (tid: number): number => Number(taskStat(tid)[11]) + Number(taskStat(tid)[12]);

function readKeys(path: string): number {
  const reader = scratch.track(SnapshotFileReader.open(path, { clusterId: CLUSTER }));
  let rows = 0;
  for (const _ of reader.keys()) rows++;
  return rows;
}

describe('the snapshot writer thread', () => {
  it('leaves the event loop turning while a large snapshot is packed and written', { timeout: 120_000 }, async () => {
    const KEYS = 100_000;
    const storage = withLog(3);
    let taken = 0;
    // For each turn of the event loop during the write: how many rows the main thread had packed by then.
    const turns: number[] = [];
    let writing = true;
    const tick = (): void => {
      turns.push(taken);
      if (writing) setImmediate(tick);
    };
    setImmediate(tick);
    try {
      const written = await storage.writeSnapshot(
        { index: 3, term: 1, logTimeMs: 0, confState: CONF },
        { keys: manyKeys(KEYS, (n) => (taken = n)), sessions: [], keyCount: KEYS },
      );
      expect(readKeys(written.path)).toBe(KEYS);
    } finally {
      writing = false;
    }
    const whilePacking = new Set(turns.filter((n) => n > 0 && n < KEYS));
    // Packing yields every few milliseconds; a write on the main thread would have held the loop through each batch.
    expect(whilePacking.size).toBeGreaterThanOrEqual(5);
    // Once every row is packed the writer still builds indexes, commits and fsyncs: the loop keeps turning meanwhile.
    expect(turns.filter((n) => n === KEYS).length).toBeGreaterThanOrEqual(2);
  });

  it.runIf(linux)('writes on its own thread: it works on while the main thread is blocked', { timeout: 120_000 }, async () => {
    const storage = withLog(3);
    // Start the thread, and learn its OS thread id.
    await storage.writeSnapshot({ index: 2, term: 1, logTimeMs: 0, confState: CONF }, { keys: [], sessions: [] });
    const tid = storage.snapshotWriterThread?.osThreadId;
    expect(tid).toEqual(expect.any(Number));
    let grew = false;
    function* rowsThenBlock(): Generator<SnapshotKeyRow> {
      yield* manyKeys(40_000);
      // Every batch but the last is sent. Block this thread (no event loop, no messages) and watch the writer's CPU time.
      const before = cpuTicksOf(tid as number);
      const pause = new Int32Array(new SharedArrayBuffer(4));
      for (let i = 0; i < 400 && !grew; i++) {
        Atomics.wait(pause, 0, 0, 25);
        grew = cpuTicksOf(tid as number) > before;
      }
    }
    await storage.writeSnapshot({ index: 3, term: 1, logTimeMs: 0, confState: CONF }, { keys: rowsThenBlock(), sessions: [] });
    expect(grew).toBe(true);
  });

  it.runIf(linux)(`runs at nice ${WRITER_NICE}, and the main thread keeps its priority`, async () => {
    const mainNice = getPriority();
    const storage = withLog(3);
    expect(storage.snapshotWriterThread).toBeNull();
    await storage.writeSnapshot({ index: 3, term: 1, logTimeMs: 0, confState: CONF }, { keys: manyKeys(10), sessions: [] });
    const thread = storage.snapshotWriterThread;
    expect(thread?.osThreadId).not.toBe(process.pid);
    expect(thread?.nice).toBe(WRITER_NICE);
    // What the OS says of that thread, and of this one.
    expect(niceOf(thread?.osThreadId as number)).toBe(WRITER_NICE);
    expect(niceOf(process.pid)).toBe(mainNice);
    expect(getPriority()).toBe(mainNice);
  });

  it('a thread that dies mid-write leaves no file, and the next write starts another', { timeout: 60_000 }, async () => {
    const dir = scratch.dir();
    const writer = scratch.track(new SnapshotWriterThread((options) => startWorker('../test/unit/storage/fixtures/dying-snapshot-writer.ts', options)));
    const path = (index: number): string => join(dir, `snapshot-${index}.sqlite`);
    const header = (index: number): { index: number; term: number; logTimeMs: number; confState: typeof CONF } => ({
      index,
      term: 1,
      logTimeMs: 0,
      confState: CONF,
    });

    await expect(writer.writeWhole(path(DIES_AT_INDEX), header(DIES_AT_INDEX), { keys: manyKeys(50_000), sessions: [] }, IDENTITY)).rejects.toThrow(
      /writing snapshot .*snapshot-13\.sqlite: the writer thread exited \(code 3\) before it finished/,
    );
    expect(fs.readdirSync(dir)).toEqual([]);

    const info = await writer.writeWhole(path(14), header(14), { keys: manyKeys(50_000), sessions: [], keyCount: 50_000 }, IDENTITY);
    expect(info).toMatchObject({ index: 14, keyCount: 50_000 });
    expect(fs.readdirSync(dir)).toEqual(['snapshot-14.sqlite']);
    expect(readKeys(path(14))).toBe(50_000);
  });

  it('refuses writes once closed', async () => {
    const writer = new SnapshotWriterThread();
    writer.close();
    const dir = scratch.dir();
    await expect(writer.writeWhole(join(dir, 'x.sqlite'), { index: 1, term: 1, logTimeMs: 0, confState: CONF }, { keys: [], sessions: [] }, IDENTITY)).rejects.toThrow(
      /closed/,
    );
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});
