/**
 * npm run bench -- state [--profile hot,large] [--ops 300000] [--value-bytes 100] [--memory-keys 1000000] [--no-memory] [--only Set,Get]
 *
 * The state machine alone, in memory. ns/op for
 * - writes (Set, LPush, HSet): apply(index, data) of a pre-encoded log entry,
 *   decoding included; and applyEntry() of the same entry already decoded;
 *   and, as an extra line, applyEntry() over 1,024 of those entries reused
 *   (kept in cache, as a Go b.N loop over a few pre-built commands);
 * - reads (Get, LIndex, HGet): read(command, now) of a decoded command (the
 *   path of a ReadIndex or serializable read); and apply() of the same read
 *   as a pre-encoded entry (a read through the log).
 *
 * Workloads, per profile (hot: 1,000 keys and 10 lists/hashes, a working set
 * that fits in CPU caches, so the figures are the code's own cost; large:
 * 100,000 keys and 1,000 lists/hashes, which adds memory latency): Set over
 * the keys (overwriting) with --value-bytes values; Get of them; LPush of one
 * 16-byte item onto one of the lists (they grow), LIndex at -100..99 of them;
 * HSet of one of 100 fields (16-byte values) in one of the hashes, HGet of
 * them. Keys are visited in a fixed pseudo-random order. '<' marks a figure
 * below the baseline.
 *
 * Each operation runs in its own child process, so one workload's heap and
 * JIT state do not tax the next; the figure is the best of 5 rounds of --ops
 * operations after a warm-up round, in CPU time of the process (on a shared
 * machine, time spent descheduled is not ours). GC is included.
 *
 * Memory per item: a child process (--expose-gc) applies --memory-keys
 * entries, each in its own buffer as entries arrive from the log: Sets of
 * string keys with --value-bytes values, or RPushes of 16-byte items onto
 * 1,000 lists, or HSets of 16-byte fields into 1,000 hashes. It reports the
 * growth of RSS and of V8 heap + ArrayBuffer bytes after a full GC, per item,
 * beside the state's own estimate (memoryUsed() / items, src/state/memory.ts).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeEntry, encodeEntry, StateMachine } from '../../src/state/index.ts';
import type { Command, EntryPayload, Result } from '../../src/state/index.ts';

/** The published figures of the system quorumkv replaces (Go, ns/op). */
const BASELINE_NS: Readonly<Record<string, number>> = { Get: 76, Set: 565, LPush: 305, LIndex: 93.5, HSet: 105, HGet: 83.6 };
const OPS = ['Set', 'Get', 'LPush', 'LIndex', 'HSet', 'HGet'] as const;
type Op = (typeof OPS)[number];

const NOW = 1_700_000_000_000;
const POOL = 1 << 16;

/** xorshift32: a fixed, cheap visiting order so every run measures the same work. */
function order(n: number, size: number, seed: number): Uint32Array {
  const out = new Uint32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x % size;
  }
  return out;
}

function valueOf(bytes: number, i: number): Uint8Array {
  const v = new Uint8Array(bytes);
  for (let j = 0; j < bytes; j++) v[j] = (i * 31 + j) & 0xff;
  return v;
}

/** Best ns/op (CPU time) over rounds; `body(i)` runs operation i. */
function measure(ops: number, body: (i: number) => unknown, rounds = 5): number {
  let sink = 0;
  for (let i = 0; i < Math.min(ops, 200_000); i++) if (body(i) !== undefined) sink++;
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = process.cpuUsage();
    for (let i = 0; i < ops; i++) if (body(i) !== undefined) sink++;
    const used = process.cpuUsage(t0);
    best = Math.min(best, ((used.user + used.system) * 1000) / ops);
  }
  if (sink < 0) console.log(sink);
  return best;
}

function check(result: Result, what: string): void {
  if (result.kind === 'error') throw new Error(`${what}: ${result.error.message}`);
}

function entry(command: Command): Uint8Array {
  return encodeEntry({ timeMs: NOW, session: null, command });
}

interface Figures {
  /** apply() of encoded entries (writes and reads through the log). */
  readonly apply: number;
  /** applyEntry() of decoded payloads (writes), or read() (reads). */
  readonly other: number;
  /**
   * Writes only, an extra figure: applyEntry() cycling through the first
   * HOT_ENTRIES payloads, which stay in the CPU caches. `other` streams
   * through POOL decoded entries (each several JS objects, 16 MB for HSet)
   * that are cold when reached; this one is closer to a Go b.N loop over a
   * few pre-built commands. Reported beside `other`, never instead of it.
   */
  readonly hotEntries?: number;
}

/** Payloads reused by the extra hot-entries figure. */
const HOT_ENTRIES = 1024;

/** Runs one workload in this process. */
function runOp(op: Op, keyCount: number, ops: number, valueBytes: number, containers: number): Figures {
  const sm = new StateMachine();
  let index = 0;
  const load = (command: Command): void => check(sm.apply(++index, entry(command)), 'load');
  const keys = Array.from({ length: keyCount }, (_, i) => `key:${i}`);
  const lists = Array.from({ length: containers }, (_, i) => `list:${i}`);
  const hashes = Array.from({ length: containers }, (_, i) => `hash:${i}`);
  const fields = Array.from({ length: 100 }, (_, i) => `field:${i}`);
  const pickKey = order(POOL, keyCount, 0x9e3779b9);
  const pickContainer = order(POOL, containers, 12345);
  const pick100 = order(POOL, 100, 777);
  const at = <T>(items: readonly T[], i: number): T => items[i % POOL] as T;

  const writes = (commands: Command[]): Figures => {
    const encoded = commands.map(entry);
    const applied = measure(ops, (i) => sm.apply(++index, at(encoded, i)), op === 'LPush' ? 3 : 5);
    const payloads: EntryPayload[] = encoded.map(decodeEntry);
    const decoded = measure(ops, (i) => sm.applyEntry(++index, at(payloads, i)), op === 'LPush' ? 3 : 5);
    const hotEntries = measure(ops, (i) => sm.applyEntry(++index, payloads[i % HOT_ENTRIES] as EntryPayload), op === 'LPush' ? 3 : 5);
    return { apply: applied, other: decoded, hotEntries };
  };
  const reads = (commands: Command[]): Figures => {
    const encoded = commands.map(entry);
    const read = measure(ops, (i) => sm.read(at(commands, i), NOW));
    return { apply: measure(ops, (i) => sm.apply(++index, at(encoded, i))), other: read };
  };
  const indexes = Array.from({ length: POOL }, (_, i) => i);

  switch (op) {
    case 'Set':
      for (const key of keys) load({ op: 'set', key, value: valueOf(valueBytes, 0) });
      return writes(indexes.map((i) => ({ op: 'set', key: keys[pickKey[i] as number] as string, value: valueOf(valueBytes, i) })));
    case 'Get':
      for (const key of keys) load({ op: 'set', key, value: valueOf(valueBytes, 0) });
      return reads(indexes.map((i) => ({ op: 'get', key: keys[pickKey[i] as number] as string })));
    case 'LPush':
    case 'LIndex':
      for (const key of lists) load({ op: 'rpush', key, values: Array.from({ length: 100 }, (_, i) => valueOf(16, i)) });
      if (op === 'LPush') return writes(indexes.map((i) => ({ op: 'lpush', key: lists[pickContainer[i] as number] as string, values: [valueOf(16, i)] })));
      return reads(indexes.map((i) => ({ op: 'lindex', key: lists[pickContainer[i] as number] as string, index: (i % 200) - 100 })));
    case 'HSet':
    case 'HGet':
      for (const key of hashes) load({ op: 'hset', key, fields: fields.map((f, i) => [f, valueOf(16, i)] as const) });
      if (op === 'HSet') {
        return writes(
          indexes.map((i) => ({ op: 'hset', key: hashes[pickContainer[i] as number] as string, fields: [[fields[pick100[i] as number] as string, valueOf(16, i)]] })),
        );
      }
      return reads(indexes.map((i) => ({ op: 'hget', key: hashes[pickContainer[i] as number] as string, field: fields[pick100[i] as number] as string })));
  }
}

interface MemoryFigures {
  readonly what: string;
  readonly items: number;
  readonly rssPerItem: number;
  readonly heapPerItem: number;
  readonly estimatePerItem: number;
}

/**
 * Memory of one shape of data, per item: `strings` keys with valueBytes
 * values, or `list` / `hash` items (16-byte values) in 1,000 lists / hashes.
 */
function runMemory(what: string, items: number, valueBytes: number): MemoryFigures {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('the memory child needs --expose-gc');
  gc();
  const before = process.memoryUsage();
  const sm = new StateMachine();
  for (let i = 0; i < items; i++) {
    // A fresh buffer per entry, as entries arrive from storage or the network.
    let command: Command;
    if (what === 'strings') command = { op: 'set', key: `key:${i}`, value: valueOf(valueBytes, i) };
    else if (what === 'list') command = { op: 'rpush', key: `list:${i % 1000}`, values: [valueOf(16, i)] };
    else command = { op: 'hset', key: `hash:${i % 1000}`, fields: [[`field:${Math.floor(i / 1000)}`, valueOf(16, i)]] };
    check(sm.apply(i + 1, entry(command)), 'memory load');
  }
  gc();
  const after = process.memoryUsage();
  const heap = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
  return {
    what,
    items,
    rssPerItem: (after.rss - before.rss) / items,
    heapPerItem: heap / items,
    estimatePerItem: sm.memoryUsed() / items,
  };
}

/** Runs `--child ...` of this file in a fresh Node process and parses its one JSON line. */
function inChild<T>(args: string[]): T {
  const child = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', fileURLToPath(import.meta.url), '--child', ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (child.status !== 0) throw new Error(`bench child ${args.join(' ')} failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').pop() ?? '') as T;
}

/** Working sets: `hot` fits in CPU caches (the code's own cost); `large` adds memory latency. */
const PROFILES: Readonly<Record<string, { keys: number; containers: number }>> = {
  hot: { keys: 1000, containers: 10 },
  large: { keys: 100_000, containers: 1000 },
};

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      profile: { type: 'string', default: 'hot,large' },
      ops: { type: 'string', default: '300000' },
      'value-bytes': { type: 'string', default: '100' },
      'memory-keys': { type: 'string', default: '1000000' },
      'no-memory': { type: 'boolean', default: false },
      only: { type: 'string', default: OPS.join(',') },
    },
  });
  const { ops } = values;
  const valueBytes = values['value-bytes'];
  const only = values.only.split(',');
  console.log(`state machine in memory, one child process per figure (Node ${process.version}); best of 5 x ${ops} ops, CPU time, GC included`);
  for (const name of values.profile.split(',')) {
    const profile = PROFILES[name];
    if (profile === undefined) throw new Error(`unknown profile '${name}' (hot, large)`);
    console.log(
      `${name}: Set/Get over ${profile.keys} keys with ${valueBytes}-byte values; lists and hashes: ${profile.containers} of each, 16-byte items, 100 fields per hash`,
    );
    console.log('  op       apply(encoded)  applyEntry/read       baseline');
    for (const op of OPS) {
      if (!only.includes(op)) continue;
      const f = inChild<Figures>(['op', op, String(profile.keys), ops, valueBytes, String(profile.containers)]);
      const base = BASELINE_NS[op] ?? NaN;
      const write = op === 'Set' || op === 'LPush' || op === 'HSet';
      const verdict = (ns: number): string => (ns < base ? '<' : '>');
      console.log(
        `  ${op.padEnd(7)} ${f.apply.toFixed(1).padStart(8)} ns ${verdict(f.apply)}  ${f.other.toFixed(1).padStart(8)} ns ${verdict(f.other)} ${(write ? 'applyEntry' : 'read').padEnd(10)} ${String(base).padStart(5)} ns`,
      );
      if (f.hotEntries !== undefined) {
        console.log(`          extra: applyEntry over ${HOT_ENTRIES} entries kept in cache ${f.hotEntries.toFixed(1).padStart(8)} ns ${verdict(f.hotEntries)}`);
      }
    }
  }
  if (values['no-memory']) return;
  console.log('memory per item (child process per line, growth after a full GC):');
  console.log('  what                                   RSS     heap+buffers  estimate (memory.ts)');
  for (const [what, label] of [
    ['strings', `${values['memory-keys']} string keys, ${valueBytes}-byte values`],
    ['list', `${values['memory-keys']} list items, 16 bytes, 1000 lists`],
    ['hash', `${values['memory-keys']} hash fields, 16 bytes, 1000 hashes`],
  ] as const) {
    const m = inChild<MemoryFigures>(['memory', what, values['memory-keys'], valueBytes]);
    console.log(`  ${label.padEnd(38)} ${m.rssPerItem.toFixed(0).padStart(4)} B  ${m.heapPerItem.toFixed(0).padStart(6)} B      ${m.estimatePerItem.toFixed(0).padStart(4)} B`);
  }
}

if (process.argv[2] === '--child') {
  const [kind, ...args] = process.argv.slice(3);
  if (kind === 'op') {
    const [op, keys, ops, valueBytes, containers] = args;
    console.log(JSON.stringify(runOp(op as Op, Number(keys), Number(ops), Number(valueBytes), Number(containers))));
  } else {
    const [what, items, valueBytes] = args;
    console.log(JSON.stringify(runMemory(what ?? 'strings', Number(items), Number(valueBytes))));
  }
}
