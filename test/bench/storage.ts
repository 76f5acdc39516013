/**
 * `npm run bench -- storage [--seconds 3] [--keys 1000000] [--value-bytes 32] [--dir /path/on/the/disk/to/measure]`
 *
 * Log appends per second (synchronous=FULL, one transaction per batch, as a
 * node persists one Ready), and a snapshot of many keys: write, restore,
 * full verification, streaming, file size, and incremental snapshots (a copy
 * of the newest file with the changed keys' rows replaced) of a share of the
 * keys. Each write also reports its CPU time and the longest the event loop
 * waited meanwhile. Real files in a temp dir; pass
 * --dir to measure the disk a node would use (a tmpfs makes fsync free).
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import type { Entry } from '../../src/raft/types.ts';
import { nativeCrc32 } from '../../src/storage/checksum.ts';
import { NodeStorage } from '../../src/storage/index.ts';
import type { SnapshotKeyRow } from '../../src/storage/index.ts';

const CONF = { voters: ['n1', 'n2', 'n3'], learners: [] };

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '3' },
      keys: { type: 'string', default: '1000000' },
      'value-bytes': { type: 'string', default: '32' },
      dir: { type: 'string', default: tmpdir() },
    },
  });
  const seconds = Number(values.seconds);
  const keyCount = Number(values.keys);
  const valueBytes = Number(values['value-bytes']);
  if (!(seconds > 0) || !Number.isSafeInteger(keyCount) || keyCount < 1 || !Number.isSafeInteger(valueBytes) || valueBytes < 0) {
    throw new Error('usage: npm run bench -- storage [--seconds N] [--keys N] [--value-bytes N] [--dir PATH]');
  }
  const parent = resolve(values.dir);
  const root = fs.mkdtempSync(join(parent, 'qkv-bench-storage-'));
  try {
    const sqliteVersion = new Database(':memory:').prepare('SELECT sqlite_version()').pluck().get() as string;
    console.log(`storage benchmark — node ${process.version}, SQLite ${sqliteVersion}, crc32 ${nativeCrc32 ? 'node:zlib' : 'portable'}`);
    console.log(`data dir ${root} (${filesystemOf(parent)})\n`);

    console.log(`log appends, 256-byte entries, synchronous=FULL, ${seconds} s each`);
    for (const batch of [1, 100]) appendBench(join(root, `append-${batch}`), batch, seconds);

    console.log(`\nsnapshot of ${keyCount.toLocaleString('en')} keys (${valueBytes}-byte values, 1 in 4 with a TTL)`);
    await snapshotBench(join(root, 'snapshot'), keyCount, valueBytes);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function appendBench(dir: string, batch: number, seconds: number): void {
  const storage = NodeStorage.open(dir, { clusterId: 'bench', nodeId: 'n1', create: true });
  try {
    const data = new Uint8Array(256).fill(0x61);
    const latenciesMs: number[] = [];
    let next = 1;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    while (performance.now() < deadline) {
      const entries: Entry[] = [];
      for (let i = 0; i < batch; i++) entries.push({ index: next + i, term: 1, type: 'normal', data });
      const t0 = performance.now();
      storage.persist({ entries, hardState: { term: 1, vote: 'n1', commit: next + batch - 1 } });
      latenciesMs.push(performance.now() - t0);
      next += batch;
    }
    const elapsedS = (performance.now() - started) / 1000;
    const batches = latenciesMs.length;
    latenciesMs.sort((a, b) => a - b);
    console.log(
      `  batch ${String(batch).padStart(3)}: ${fmt(batches / elapsedS)} persists/s, ${fmt((batches * batch) / elapsedS)} entries/s, ` +
        `${((batches * batch * 256) / elapsedS / 1e6).toFixed(2)} MB/s of entry data; ` +
        `latency p50 ${quantile(latenciesMs, 0.5).toFixed(2)} ms, p99 ${quantile(latenciesMs, 0.99).toFixed(2)} ms`,
    );
  } finally {
    storage.close();
  }
}

/** Shares of the keys changed before each incremental snapshot. */
const CHANGED_SHARES = [0.01, 0.03, 0.1, 0.3, 0.5];

/** Wall time, CPU time (all threads, and this thread's where the OS says) and the longest event-loop wait of `fn`. */
async function measured<T>(fn: () => Promise<T>): Promise<{ result: T; ms: number; cpuMs: number; mainCpuMs: number | null; maxStallMs: number }> {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const cpu = process.cpuUsage();
  const main = mainThreadCpuMs();
  const t0 = performance.now();
  const result = await fn();
  const ms = performance.now() - t0;
  const used = process.cpuUsage(cpu);
  const mainAfter = mainThreadCpuMs();
  loop.disable();
  const mainCpuMs = main === null || mainAfter === null ? null : mainAfter - main;
  return { result, ms, cpuMs: (used.user + used.system) / 1000, mainCpuMs, maxStallMs: loop.max / 1e6 };
}

/** CPU time of the calling thread, ms (Linux: /proc/thread-self/schedstat, in ns); null elsewhere. */
function mainThreadCpuMs(): number | null {
  try {
    return Number(fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return null;
  }
}

/** CPU of a measured run: all threads, and the main thread's share (snapshot files are written on another thread). */
function cpuText(run: { cpuMs: number; mainCpuMs: number | null }): string {
  return `CPU ${fmtMs(run.cpuMs).trim()}${run.mainCpuMs === null ? '' : `, main thread ${fmtMs(run.mainCpuMs).trim()}`}`;
}

async function snapshotBench(dir: string, keyCount: number, valueBytes: number): Promise<void> {
  // Incremental writes up to half the keys, however often: the defaults would write some of these whole.
  const storage = NodeStorage.open(dir, {
    clusterId: 'bench',
    nodeId: 'n1',
    create: true,
    incrementalLimits: { maxChangedFraction: 1, maxReplacedFraction: Infinity },
  });
  try {
    const lastIndex = CHANGED_SHARES.length + 1;
    const log = Array.from({ length: lastIndex }, (_, i): Entry => ({ index: i + 1, term: 1, type: 'normal', data: new Uint8Array() }));
    storage.persist({ entries: log, hardState: { term: 1, vote: 'n1', commit: lastIndex } });
    // As a node does when it starts: the writer thread's start-up is not part of a snapshot.
    storage.startSnapshotWriter();
    const keyOf = (i: number): string => `user:${(i * 2654435761) % 4294967296}`;
    function* keys(): Generator<SnapshotKeyRow> {
      for (let i = 0; i < keyCount; i++) {
        yield { key: keyOf(i), type: 'string', value: new Uint8Array(valueBytes).fill(i & 0xff), expiresAtMs: i % 4 === 0 ? 1_700_000_000_000 + i : null };
      }
    }

    const full = await measured(() =>
      storage.writeSnapshot({ index: 1, term: 1, logTimeMs: 0, confState: CONF }, { keys: keys(), sessions: [], stateDigest: 'state 1' }),
    );
    const snapshot = full.result;
    const writeMs = full.ms;

    let t0 = performance.now();
    const reader = storage.openSnapshot(snapshot);
    let rows = 0;
    for (const _ of reader.keys()) rows++;
    for (const _ of reader.sessions()) rows++;
    reader.close();
    const restoreMs = performance.now() - t0;
    if (rows !== keyCount) throw new Error(`restored ${rows} rows, wrote ${keyCount}`);

    // What a node's restore does in its reader thread: packed batches, every row's checksum checked.
    const batched = await measured(async () => {
      const batchReader = storage.openSnapshot(snapshot);
      let batchRows = 0;
      for (const batch of batchReader.keyBatches()) batchRows += batch.rows;
      batchReader.close();
      return batchRows;
    });
    if (batched.result !== keyCount) throw new Error(`read ${batched.result} rows in batches, wrote ${keyCount}`);

    t0 = performance.now();
    const verifier = storage.openSnapshot(snapshot);
    await verifier.verify();
    verifier.close();
    const verifyMs = performance.now() - t0;

    t0 = performance.now();
    let streamed = 0;
    for await (const chunk of storage.snapshotChunks(snapshot)) streamed += chunk.length;
    const streamMs = performance.now() - t0;

    const perKey = (ms: number): string => `${((ms * 1000) / keyCount).toFixed(2)} µs/key`;
    console.log(
      `  write    ${fmtMs(writeMs)}  (${perKey(writeMs)}, incl. generating the rows, fsync and rename; ` +
        `${cpuText(full)}, longest event-loop wait ${full.maxStallMs.toFixed(0)} ms)`,
    );
    console.log(`  restore  ${fmtMs(restoreMs)}  (${perKey(restoreMs)}, iterate every row, checksums verified)`);
    console.log(`  batches  ${fmtMs(batched.ms)}  (${perKey(batched.ms)}, packed batches as a node's restore reads them, checksums verified; ${cpuText(batched)})`);
    console.log(`  verify   ${fmtMs(verifyMs)}  (integrity check + every row: what a follower does before installing)`);
    console.log(`  stream   ${fmtMs(streamMs)}  (read as 1 MiB chunks, ${fmt(streamed / 1e6 / (streamMs / 1000))} MB/s)`);
    console.log(`  file     ${(snapshot.sizeBytes / 1e6).toFixed(1)} MB  (${(snapshot.sizeBytes / keyCount).toFixed(1)} bytes/key)`);

    console.log('  incremental: a copy of the newest file, the changed keys (uniformly random, all updated) rewritten');
    let seed = 12345;
    const random = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
    for (const [i, share] of CHANGED_SHARES.entries()) {
      const index = i + 2;
      const changed = new Set<string>();
      while (changed.size < Math.round(share * keyCount)) changed.add(keyOf(random(keyCount)));
      function* rows(): Generator<SnapshotKeyRow> {
        for (const key of changed) yield { key, type: 'string', value: new Uint8Array(valueBytes).fill(index), expiresAtMs: null };
      }
      const run = await measured(() =>
        storage.writeSnapshot(
          { index, term: 1, logTimeMs: 0, confState: CONF },
          { keys: [], sessions: [], stateDigest: `state ${index}`, changes: { baseIndex: index - 1, baseDigest: `state ${index - 1}`, keys: changed, rows: rows() } },
        ),
      );
      if (storage.lastSnapshotWrite?.incremental !== true) throw new Error(`not incremental: ${String(storage.lastSnapshotWrite?.wholeBecause)}`);
      console.log(
        `    ${`${(share * 100).toFixed(0)} %`.padStart(5)} changed ${fmtMs(run.ms)}  (${cpuText(run)}, ` +
          `longest event-loop wait ${run.maxStallMs.toFixed(0)} ms, file ${(run.result.sizeBytes / 1e6).toFixed(1)} MB)`,
      );
    }
  } finally {
    storage.close();
  }
}

/** The filesystem type holding `path` (Linux), because fsync on tmpfs costs nothing. */
function filesystemOf(path: string): string {
  try {
    let best = { mount: '', type: 'unknown' };
    for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mount, type] = line.split(' ');
      if (mount !== undefined && type !== undefined && (path === mount || path.startsWith(mount === '/' ? '/' : `${mount}/`))) {
        if (mount.length >= best.mount.length) best = { mount, type };
      }
    }
    return `${best.type} at ${best.mount}`;
  } catch {
    return 'filesystem unknown';
  }
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

function fmt(value: number): string {
  return Math.round(value).toLocaleString('en');
}

function fmtMs(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`.padStart(8);
}
