/**
 * npm run bench -- cluster [flags]
 *
 * End-to-end throughput and latency of a real cluster: starts a fresh local
 * quorumkv cluster (or uses --endpoints), drives it with a load generator in
 * separate processes, and prints ops/s and latency percentiles per operation
 * with each process's CPU. With --compare-etcd it also starts a local etcd
 * cluster, runs every workload on it right after quorumkv with the same
 * generator and flags, and prints both side by side. Run with --help for the
 * flags.
 *
 * The generator (load-worker.ts) is built to cost little CPU, because on a
 * small machine it shares the cores with the servers: it speaks gRPC through
 * a minimal HTTP/2 client of its own (load-h2.ts), sends pre-encoded
 * requests, keeps many requests in flight on a few connections, and decodes
 * no responses beyond their status.
 */
import { execFileSync, fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from '../support/cluster-harness.ts';
import { findEtcd } from './etcd-cluster.ts';
import { cpuSeconds, machineBusySeconds, percentOfCore as exactPercentOfCore } from './load-cpu.ts';
import { Histogram } from './load-histogram.ts';
import { readProfile, summarizeProfile } from './load-profile.ts';
import type { MonotonicWindow, ProfileSummary } from './load-profile.ts';
import type { LoadSpec, OpResult, ParentMessage, Window, WorkerMessage, WorkerResult } from './load-protocol.ts';
import { compare, formatComparison, formatRun, opFigures, thousands } from './load-report.ts';
import type { Comparison, CpuFigures, OpFigures, RunReport, RunSettings } from './load-report.ts';
import { existingQuorumkv, localEtcd, localQuorumkv, noopServer } from './load-targets.ts';
import type { Target } from './load-targets.ts';
import { CLIENT_KINDS } from './load-transport.ts';
import type { ClientKind } from './load-transport.ts';
import { WORKLOADS, WORKLOAD_HELP, supports, workloadFor } from './load-workloads.ts';
import type { SystemName, WorkloadName } from './load-workloads.ts';

const USAGE = `npm run bench -- cluster [flags]

  --workload LIST      ${WORKLOADS.join('|')} (default put); a comma list runs each in turn
${WORKLOADS.map((w) => `                         ${w.padEnd(17)}${WORKLOAD_HELP[w]}`).join('\n')}
  --concurrency LIST   requests in flight in total (default 256); a comma list runs each in turn.
                       With --rate: the most in flight at once.
  --rate N             open loop: N requests/s in total on a fixed schedule, latency measured from
                       each request's due time (no coordinated omission). Default 0: closed loop.
  --connections N      HTTP/2 connections (default 8; never more than the requests in flight)
  --value-bytes N      value size (default 256)
  --keys N             distinct keys, chosen uniformly (default 10000)
  --txn-ops N          sets per Txn in the txn workload (default 8)
  --hash-fields N      fields per hash in the hash workload (default 16)
  --duration S         measured seconds per run (default 10)
  --warmup S           unmeasured seconds before each run (default 2)
  --drain S            after a run, how long to wait for answers still due (default 5)
  --target leader|all  send everything to the leader (default, as etcd's benchmarks do), or
                       spread the connections over all nodes (followers forward what they cannot serve)
  --nodes N            cluster size (default 3)
  --endpoints LIST     host:port,... of an existing quorumkv cluster instead of a fresh one
                       (its processes are not ours: no CPU figures for its nodes)
  --compare-etcd       also start a local etcd cluster (etcd on PATH, e.g. apt-get install
                       etcd-server), run each workload on it right after quorumkv, and compare
  --noop-server        drive a no-op grpc-js server instead of a cluster: the ceiling of any
                       grpc-js server on this machine, and what the generator costs per call
  --client raw|grpc-js the generator's gRPC client: raw (default), a minimal HTTP/2 client of its own
                       that costs a few µs per call, or @grpc/grpc-js, as a cross-check
  --load-processes N   load-generator processes (default 1)
  --serve-flags=STR    extra flags for every quorumkv serve the benchmark starts, e.g.
                       --serve-flags='--snapshot-entries 100000' (with '=': the value starts with --)
  --cpu-prof DIR       run the quorumkv nodes with node --cpu-prof, write profiles to DIR, and
                       print where each node's time went
  --json               print one JSON document instead of tables (progress still goes to stderr)
`;

class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

interface Options {
  readonly workloads: readonly WorkloadName[];
  readonly concurrencies: readonly number[];
  readonly ratePerSecond: number;
  readonly connections: number;
  readonly valueBytes: number;
  readonly keys: number;
  readonly txnOps: number;
  readonly hashFields: number;
  readonly durationS: number;
  readonly warmupS: number;
  readonly drainS: number;
  readonly target: 'leader' | 'all';
  readonly nodes: number;
  readonly endpoints: readonly string[] | null;
  readonly compareEtcd: boolean;
  readonly noopServer: boolean;
  readonly client: ClientKind;
  readonly loadProcesses: number;
  readonly cpuProfDir: string | null;
  readonly serveFlags: readonly string[];
  readonly json: boolean;
}

function parseOptions(argv: string[]): Options | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      workload: { type: 'string', default: 'put' },
      concurrency: { type: 'string', default: '256' },
      rate: { type: 'string', default: '0' },
      connections: { type: 'string', default: '8' },
      'value-bytes': { type: 'string', default: '256' },
      keys: { type: 'string', default: '10000' },
      'txn-ops': { type: 'string', default: '8' },
      'hash-fields': { type: 'string', default: '16' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      drain: { type: 'string', default: '5' },
      target: { type: 'string', default: 'leader' },
      nodes: { type: 'string', default: '3' },
      endpoints: { type: 'string' },
      'compare-etcd': { type: 'boolean', default: false },
      'noop-server': { type: 'boolean', default: false },
      client: { type: 'string', default: 'raw' },
      'load-processes': { type: 'string', default: '1' },
      'cpu-prof': { type: 'string' },
      'serve-flags': { type: 'string', default: '' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) return 'help';
  if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  const int = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer of at least ${min} (got '${text}')`);
    return n;
  };
  const seconds = (name: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min) throw new UsageError(`--${name} must be a number of seconds, at least ${min} (got '${text}')`);
    return n;
  };
  const workloads = values.workload.split(',').map((w) => {
    if (!(WORKLOADS as readonly string[]).includes(w)) throw new UsageError(`--workload must be among ${WORKLOADS.join(', ')} (got '${w}')`);
    return w as WorkloadName;
  });
  if (values.target !== 'leader' && values.target !== 'all') throw new UsageError(`--target must be leader or all (got '${values.target}')`);
  if (!(CLIENT_KINDS as readonly string[]).includes(values.client)) throw new UsageError(`--client must be ${CLIENT_KINDS.join(' or ')} (got '${values.client}')`);
  const endpoints = values.endpoints === undefined ? null : values.endpoints.split(',').filter((e) => e !== '');
  if (endpoints !== null && endpoints.length === 0) throw new UsageError('--endpoints needs at least one host:port');
  if (endpoints !== null && values['cpu-prof'] !== undefined) throw new UsageError('--cpu-prof profiles nodes the benchmark starts, not --endpoints');
  if (values['noop-server'] && (endpoints !== null || values['compare-etcd'] || values['cpu-prof'] !== undefined)) {
    throw new UsageError('--noop-server goes alone: not with --endpoints, --compare-etcd or --cpu-prof');
  }
  if (values['serve-flags'] !== '' && (endpoints !== null || values['noop-server'])) throw new UsageError('--serve-flags is for the nodes the benchmark starts');
  const keys = int('keys', values.keys, 1);
  const txnOps = int('txn-ops', values['txn-ops'], 1);
  if (workloads.includes('txn') && txnOps > keys) throw new UsageError('--txn-ops cannot exceed --keys: a Txn sets distinct keys');
  return {
    workloads,
    concurrencies: values.concurrency.split(',').map((c) => int('concurrency', c, 1)),
    ratePerSecond: seconds('rate', values.rate, 0),
    connections: int('connections', values.connections, 1),
    valueBytes: int('value-bytes', values['value-bytes'], 0),
    keys,
    txnOps,
    hashFields: int('hash-fields', values['hash-fields'], 1),
    durationS: seconds('duration', values.duration, 0.1),
    warmupS: seconds('warmup', values.warmup, 0),
    drainS: seconds('drain', values.drain, 0),
    target: values.target,
    nodes: int('nodes', values.nodes, 1),
    endpoints,
    compareEtcd: values['compare-etcd'],
    noopServer: values['noop-server'],
    client: values.client as ClientKind,
    loadProcesses: int('load-processes', values['load-processes'], 1),
    cpuProfDir: values['cpu-prof'] === undefined ? null : resolve(values['cpu-prof']),
    serveFlags: values['serve-flags'].split(/\s+/).filter((f) => f !== ''),
    json: values.json,
  };
}

// ---- cleanup ----------------------------------------------------------------

interface Stoppable {
  stop(): Promise<void>;
  stopNow(): void;
}

/**
 * Everything the benchmark started, stopped in reverse order on the way out:
 * normally, on an error, on Ctrl-C / SIGTERM, and (synchronously, as a last
 * resort) on process exit.
 */
class Cleanup {
  private readonly items: Stoppable[] = [];
  private stopping: Promise<void> | null = null;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    // tsx relays the terminal's signal to this process, which also received it: act once.
    if (this.stopping !== null) return;
    process.stderr.write(`\n${signal}: stopping the processes the benchmark started and removing their data\n`);
    void this.stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  private readonly onExit = (): void => {
    for (const item of this.items.splice(0).reverse()) item.stopNow();
  };

  install(): void {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('exit', this.onExit);
  }

  uninstall(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    process.off('exit', this.onExit);
  }

  add<T extends Stoppable>(item: T): T {
    this.items.push(item);
    return item;
  }

  async release(item: Stoppable): Promise<void> {
    const index = this.items.indexOf(item);
    if (index < 0) return;
    this.items.splice(index, 1);
    await item.stop();
  }

  stopAll(): Promise<void> {
    this.stopping ??= (async () => {
      for (const item of this.items.splice(0).reverse()) {
        try {
          await item.stop();
        } catch (error) {
          process.stderr.write(`cleanup: ${(error as Error).message}\n`);
        }
      }
    })();
    return this.stopping;
  }
}

// ---- load-generator processes -------------------------------------------------

interface Waiter {
  readonly type: WorkerMessage['type'];
  readonly resolve: (message: WorkerMessage) => void;
  readonly reject: (error: Error) => void;
}

interface Progress {
  readonly completed: number;
  readonly failed: number;
  readonly atMs: number;
}

const NO_PROGRESS: Progress = { completed: 0, failed: 0, atMs: 0 };

class LoadWorker {
  /** The last two progress reports, for a rate over the worker's own interval. */
  progress: Progress = NO_PROGRESS;
  previous: Progress = NO_PROGRESS;
  private waiter: Waiter | null = null;
  private exitError: Error | null = null;
  readonly exited: Promise<void>;

  constructor(readonly child: ChildProcess) {
    child.on('message', (message: WorkerMessage) => this.receive(message));
    this.exited = new Promise((resolveExit) =>
      child.once('exit', (code, signal) => {
        this.exitError = new Error(`a load-generator process exited (${code ?? signal})`);
        this.waiter?.reject(this.exitError);
        this.waiter = null;
        resolveExit();
      }),
    );
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Sends a message and resolves with the worker's answer of the given type. */
  request<T extends WorkerMessage['type']>(message: ParentMessage, answer: T): Promise<Extract<WorkerMessage, { type: T }>> {
    if (this.exitError !== null) return Promise.reject(this.exitError);
    return new Promise((resolveAnswer, reject) => {
      this.waiter = { type: answer, resolve: resolveAnswer as (m: WorkerMessage) => void, reject };
      this.child.send(message);
    });
  }

  private receive(message: WorkerMessage): void {
    if (message.type === 'progress') {
      this.previous = this.progress;
      this.progress = message;
      return;
    }
    const waiter = this.waiter;
    if (waiter === null) return;
    this.waiter = null;
    if (message.type === 'failed') waiter.reject(new Error(`load generator: ${message.message}`));
    else if (message.type !== waiter.type) waiter.reject(new Error(`load generator answered ${message.type}, expected ${waiter.type}`));
    else waiter.resolve(message);
  }
}

class LoadProcesses implements Stoppable {
  private constructor(readonly workers: readonly LoadWorker[]) {}

  static start(count: number): LoadProcesses {
    const script = join(import.meta.dirname, 'load-worker.ts');
    const workers = Array.from(
      { length: count },
      () =>
        new LoadWorker(
          fork(script, [], {
            // tsx, resolved from here, so the worker runs from any working directory.
            execArgv: ['--import', import.meta.resolve('tsx')],
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          }),
        ),
    );
    return new LoadProcesses(workers);
  }

  /** Answers per second over each worker's last reporting interval, summed; and failures so far. */
  progress(): { perSecond: number; failed: number } {
    let perSecond = 0;
    let failed = 0;
    for (const { progress, previous } of this.workers) {
      if (previous.atMs > 0 && progress.atMs > previous.atMs) perSecond += ((progress.completed - previous.completed) * 1000) / (progress.atMs - previous.atMs);
      failed += progress.failed;
    }
    return { perSecond, failed };
  }

  /** Forgets the last run's reports; the first report of the next one counts from its start. */
  resetProgress(startAtMs: number): void {
    for (const w of this.workers) {
      w.previous = NO_PROGRESS;
      w.progress = { completed: 0, failed: 0, atMs: startAtMs };
    }
  }

  async stop(): Promise<void> {
    for (const w of this.workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
    await Promise.all(this.workers.map((w) => w.exited));
  }

  stopNow(): void {
    for (const w of this.workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
  }
}

// ---- one run -------------------------------------------------------------------

interface CpuSample {
  readonly atMs: number;
  /** The same instant on the monotonic clock of CPU profiles, in µs. */
  readonly monotonicUs: number;
  readonly nodes: readonly (number | null)[];
  /** Per idle target, the CPU seconds of its nodes together (null when any is unknown). */
  readonly idle: readonly (number | null)[];
  readonly workers: readonly (number | null)[];
  readonly benchmarkS: number;
  readonly machine: number | null;
}

/** To a tenth of a percent: /proc counts in hundredths of a second, so more digits would be noise. */
function percentOfCore(before: number | null, after: number | null, elapsedMs: number): number | null {
  const p = exactPercentOfCore(before, after, elapsedMs);
  return p === null ? null : Math.round(p * 10) / 10;
}

function nodesCpu(target: Target): (number | null)[] {
  return target.nodes.map((n) => (n.pid === null ? null : cpuSeconds(n.pid)));
}

const sumOrNull = (values: readonly (number | null)[]): number | null => (values.some((v) => v === null) ? null : values.reduce<number>((a, b) => a + (b ?? 0), 0));

function sampleCpu(target: Target, idle: readonly Target[], load: LoadProcesses): CpuSample {
  const own = process.cpuUsage();
  return {
    atMs: performance.now(),
    monotonicUs: Number(process.hrtime.bigint() / 1000n),
    nodes: nodesCpu(target),
    idle: idle.map((t) => sumOrNull(nodesCpu(t))),
    workers: load.workers.map((w) => cpuSeconds(w.pid)),
    benchmarkS: (own.user + own.system) / 1e6,
    machine: machineBusySeconds(),
  };
}

function sampleAt(epochMs: number, take: () => CpuSample): Promise<CpuSample> {
  return new Promise((resolveSample) => setTimeout(() => resolveSample(take()), Math.max(0, epochMs - Date.now())));
}

function cpuFigures(target: Target, idle: readonly Target[], leader: string, before: CpuSample, after: CpuSample): CpuFigures {
  const elapsed = after.atMs - before.atMs;
  const nodes = target.nodes.map((n, i) => ({ id: n.id, leader: n.id === leader, percent: percentOfCore(before.nodes[i] ?? null, after.nodes[i] ?? null, elapsed) }));
  const loadGenerator = sumOrNull(before.workers.map((b, i) => percentOfCore(b, after.workers[i] ?? null, elapsed)));
  const benchmark = percentOfCore(before.benchmarkS, after.benchmarkS, elapsed);
  const machine = percentOfCore(before.machine, after.machine, elapsed);
  const idleTargets = idle.map((t, i) => ({ name: t.version, percent: percentOfCore(before.idle[i] ?? null, after.idle[i] ?? null, elapsed) }));
  const ours = sumOrNull([...nodes.map((n) => n.percent), loadGenerator, benchmark, ...idleTargets.map((t) => t.percent)]);
  const others = machine === null || ours === null ? null : Math.max(0, Math.round((machine - ours) * 10) / 10);
  return { nodes, loadGenerator, benchmark, idleTargets, machine, others, cores: os.cpus().length };
}

/** Splits the load over connections and processes: connection c goes to address c mod n, and to process c mod p. */
function loadSpecs(settings: RunSettings, addresses: readonly string[], processes: number): LoadSpec[] {
  const { connections } = settings;
  const perConnection = (c: number): number => Math.floor(settings.concurrency / connections) + (c < settings.concurrency % connections ? 1 : 0);
  const used = Math.min(processes, connections);
  return Array.from({ length: used }, (_, p) => {
    const mine = Array.from({ length: connections }, (_, c) => c).filter((c) => c % used === p);
    return {
      system: settings.system,
      workload: { workload: settings.workload, valueBytes: settings.valueBytes, keys: settings.keys, txnOps: settings.txnOps, hashFields: settings.hashFields },
      client: settings.client,
      connections: mine.map((c) => addresses[c % addresses.length]!),
      concurrency: Math.max(1, mine.reduce((sum, c) => sum + perConnection(c), 0)),
      ratePerSecond: (settings.ratePerSecond * mine.length) / connections,
      // Processes' schedules interleave rather than all sending at the same instants.
      rateOffsetMs: settings.ratePerSecond > 0 ? (p * 1000) / settings.ratePerSecond : 0,
    };
  });
}

/** A progress line once a second on stderr: rewritten in place on a terminal, one line per second otherwise. */
function startProgress(label: string, load: LoadProcesses, window: Window): () => void {
  load.resetProgress(window.startAtMs);
  let width = 0;
  const timer = setInterval(() => {
    const { perSecond: rate, failed } = load.progress();
    const epoch = Date.now();
    const phase = epoch < window.measureFromMs ? 'warmup' : epoch < window.endAtMs ? 'measuring' : 'draining';
    const elapsed = Math.max(0, (epoch - window.startAtMs) / 1000);
    const total = (window.endAtMs - window.startAtMs) / 1000;
    const line = `${label}: ${elapsed.toFixed(0)}/${total.toFixed(0)} s ${phase}, ${thousands(rate)} ops/s${failed > 0 ? `, ${thousands(failed)} failed so far` : ''}`;
    if (process.stderr.isTTY) {
      process.stderr.write(`\r${line.padEnd(width)}`);
      width = line.length;
    } else {
      process.stderr.write(`${line}\n`);
    }
  }, 1000);
  return () => {
    clearInterval(timer);
    if (process.stderr.isTTY && width > 0) process.stderr.write(`\r${' '.repeat(width)}\r`);
  };
}

async function preload(target: Target, load: LoadProcesses, settings: RunSettings, leaderAddress: string, log: (line: string) => void): Promise<void> {
  const workload = workloadFor(settings.system, { workload: settings.workload, valueBytes: settings.valueBytes, keys: settings.keys, txnOps: settings.txnOps, hashFields: settings.hashFields });
  const space = workload.preloadSpace;
  if (workload.preload === null || space === null || target.preloaded.has(space)) return;
  const began = performance.now();
  // Preloading is not measured: as fast as the leader takes it, 128 writes in flight over 4 connections per process.
  const processes = load.workers.length;
  const spec: LoadSpec = {
    ...loadSpecs({ ...settings, concurrency: Math.ceil(128 / processes), connections: 4, ratePerSecond: 0 }, [leaderAddress], 1)[0]!,
  };
  const answers = await Promise.all(load.workers.map((w, i) => w.request({ type: 'preload', spec, firstKey: i, keyStep: processes }, 'preloaded')));
  const errors = answers.flatMap((a) => Object.entries(a.errors));
  if (errors.length > 0) throw new Error(`preload of ${settings.keys} keys failed: ${errors.map(([code, n]) => `${code} x${n}`).join(', ')}`);
  await target.checkPreloaded(space, 0, settings.valueBytes, settings.hashFields);
  await target.checkPreloaded(space, settings.keys - 1, settings.valueBytes, settings.hashFields);
  target.preloaded.add(space);
  log(`preloaded ${thousands(settings.keys)} ${space === 'hashes' ? 'hashes' : 'keys'} in ${((performance.now() - began) / 1000).toFixed(1)} s`);
}

async function runOnce(
  target: Target,
  idle: readonly Target[],
  load: LoadProcesses,
  settings: RunSettings,
  drainS: number,
  log: (line: string) => void,
  measured: MonotonicWindow[],
): Promise<RunReport> {
  const leader = await target.leader();
  const leaderNode = target.nodes.find((n) => n.id === leader);
  if (leaderNode === undefined) throw new Error(`the leader ${leader} is not among the nodes the benchmark knows`);
  const addresses = settings.target === 'leader' ? [leaderNode.address] : target.nodes.map((n) => n.address);
  await preload(target, load, settings, leaderNode.address, log);

  const specs = loadSpecs(settings, addresses, load.workers.length);
  await Promise.all(specs.map((spec, i) => load.workers[i]!.request({ type: 'prepare', spec }, 'ready')));
  const startAtMs = Date.now() + 200;
  const window: Window = {
    startAtMs,
    measureFromMs: startAtMs + settings.warmupS * 1000,
    endAtMs: startAtMs + (settings.warmupS + settings.durationS) * 1000,
    drainMs: drainS * 1000,
  };
  const loadAverage = os.loadavg()[0] ?? 0;
  const take = (): CpuSample => sampleCpu(target, idle, load);
  const before = sampleAt(window.measureFromMs, take);
  const after = sampleAt(window.endAtMs, take);
  const stopProgress = startProgress(`${settings.version} ${settings.workload} ${settings.ratePerSecond > 0 ? `${settings.ratePerSecond}/s` : `c=${settings.concurrency}`}`, load, window);
  let results: WorkerResult[];
  try {
    results = (await Promise.all(specs.map((_, i) => load.workers[i]!.request({ type: 'go', window }, 'result')))).map((m) => m.result);
  } finally {
    stopProgress();
  }
  const [first, last] = [await before, await after];
  measured.push({ fromUs: first.monotonicUs, toUs: last.monotonicUs });
  const cpu = cpuFigures(target, idle, leader, first, last);

  const merged = new Map<string, { histogram: Histogram; errors: Record<string, number> }>();
  for (const result of results) {
    for (const [name, op] of Object.entries(result.ops)) {
      const entry = merged.get(name) ?? { histogram: new Histogram(), errors: {} };
      entry.histogram.merge(op.histogram);
      for (const [code, n] of Object.entries(op.errors)) entry.errors[code] = (entry.errors[code] ?? 0) + n;
      merged.set(name, entry);
    }
  }
  const ops: Record<string, OpFigures> = {};
  for (const [name, entry] of merged) {
    const result: OpResult = { histogram: entry.histogram.serialize(), errors: entry.errors };
    ops[name] = opFigures(result, settings.durationS);
  }
  const count = Object.values(ops).reduce((sum, f) => sum + f.count, 0);
  const errors = Object.values(ops).reduce((sum, f) => sum + Object.values(f.errors).reduce((a, b) => a + b, 0), 0);
  return {
    ...settings,
    leader,
    ops,
    total: { count, opsPerSec: Math.round(count / settings.durationS), errors },
    unfinished: results.reduce((sum, r) => sum + r.unfinished, 0),
    maxBacklog: results.reduce((sum, r) => sum + r.maxBacklog, 0),
    cpu,
    loadAverage,
  };
}

// ---- the benchmark ------------------------------------------------------------

interface NodeProfile {
  readonly node: string;
  readonly file: string;
  readonly summary: ProfileSummary;
}

function quorumkvVersion(): string {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version?: string };
  let commit = '';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    // not a git checkout
  }
  return `quorumkv ${pkg.version ?? '?'}${commit === '' ? '' : ` (${commit})`}`;
}

/** Each node's main-thread profile (CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile, thread 0), over the measured windows. */
function profilesOf(target: Target, dir: string, measured: readonly MonotonicWindow[]): NodeProfile[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  return target.nodes.flatMap((node) => {
    const file = files.find((f) => f.includes(`.${node.pid}.0.`));
    if (file === undefined) return [];
    return [{ node: node.id, file: join(dir, file), summary: summarizeProfile(readProfile(join(dir, file)), REPO_ROOT, measured) }];
  });
}

function formatProfile(p: NodeProfile): string {
  const s = p.summary;
  const lines = [
    `${p.node}: ${(s.busyMs / 1000).toFixed(1)} s busy of ${(s.totalMs / 1000).toFixed(1)} s sampled while measuring (${p.file})`,
    '  by area (self time, % of sampled time):',
  ];
  for (const a of s.areas) lines.push(`    ${a.percent.toFixed(1).padStart(5)}%  ${a.name}`);
  lines.push('  top functions by self time:');
  for (const f of s.functions) lines.push(`    ${f.percent.toFixed(1).padStart(5)}%  ${f.name}`);
  return lines.join('\n');
}

function createTarget(system: SystemName, options: Options): Target {
  if (system === 'etcd') {
    const binary = findEtcd();
    if (binary === null) throw new Error('etcd is not on PATH');
    return localEtcd(binary, options.nodes);
  }
  if (options.noopServer) return noopServer();
  if (options.endpoints !== null) return existingQuorumkv(options.endpoints);
  const nodeFlags = options.cpuProfDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`];
  return localQuorumkv(options.nodes, nodeFlags, options.serveFlags, quorumkvVersion());
}

/**
 * Starts every system's target, then runs each workload and concurrency on
 * each system in turn, back to back: on a shared machine the background load
 * drifts over minutes, and a pair of runs seconds apart sees nearly the same.
 * The idle system's CPU is reported apart, not counted as background.
 */
async function benchmark(systems: readonly SystemName[], options: Options, cleanup: Cleanup, log: (line: string) => void, runs: RunReport[]): Promise<NodeProfile[]> {
  const targets: Target[] = [];
  for (const system of systems) {
    const target = cleanup.add(createTarget(system, options));
    await target.start();
    targets.push(target);
  }
  const load = cleanup.add(LoadProcesses.start(options.loadProcesses));
  const measured = new Map<Target, MonotonicWindow[]>(targets.map((t) => [t, []]));
  for (const workload of options.workloads) {
    for (const target of targets) {
      if (!supports(target.system, workload)) log(`${target.version}: skipping the ${workload} workload (${target.system} has no equivalent)`);
    }
    for (const concurrency of options.concurrencies) {
      for (const target of targets) {
        if (!supports(target.system, workload)) continue;
        const settings: RunSettings = {
          system: target.system,
          version: target.version,
          workload,
          nodes: target.nodes.length,
          target: options.target,
          client: options.client,
          connections: options.ratePerSecond > 0 ? options.connections : Math.min(options.connections, concurrency),
          loadProcesses: Math.min(options.loadProcesses, options.connections, options.ratePerSecond > 0 ? options.connections : concurrency),
          concurrency,
          ratePerSecond: options.ratePerSecond,
          valueBytes: options.valueBytes,
          keys: options.keys,
          txnOps: options.txnOps,
          hashFields: options.hashFields,
          durationS: options.durationS,
          warmupS: options.warmupS,
        };
        const idle = targets.filter((t) => t !== target);
        const report = await runOnce(target, idle, load, settings, options.drainS, log, measured.get(target)!);
        runs.push(report);
        if (!options.json) console.log(`${formatRun(report)}\n`);
      }
    }
  }
  await cleanup.release(load);
  const profiles: NodeProfile[] = [];
  for (const target of targets) {
    await cleanup.release(target);
    if (options.cpuProfDir !== null && target.system === 'quorumkv') profiles.push(...profilesOf(target, options.cpuProfDir, measured.get(target)!));
  }
  return profiles;
}

export async function run(argv: string[]): Promise<void> {
  let options: Options | 'help';
  try {
    options = parseOptions(argv);
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (options === 'help') {
    console.log(USAGE);
    return;
  }
  const opts = options;
  const notes: string[] = [];
  // Tables go to stdout; with --json, stdout holds the JSON document alone and notes go to stderr.
  const log = (line: string): void => {
    notes.push(line);
    if (opts.json) console.error(line);
    else console.log(line);
  };
  const cleanup = new Cleanup();
  cleanup.install();
  const runs: RunReport[] = [];
  const profiles: NodeProfile[] = [];
  const started = new Date();
  try {
    const systems: SystemName[] = ['quorumkv'];
    if (opts.compareEtcd) {
      if (findEtcd() === null) log('etcd not installed, skipping comparison (Debian/Ubuntu: apt-get install etcd-server)');
      else systems.push('etcd');
    }
    profiles.push(...(await benchmark(systems, opts, cleanup, log, runs)));
    if (!opts.json) for (const p of profiles) console.log(`${formatProfile(p)}\n`);
    const etcdVersion = runs.find((r) => r.system === 'etcd')?.version ?? null;
    const comparison: Comparison[] = compare(runs);
    if (!opts.json && etcdVersion !== null && comparison.length > 0) console.log(`${formatComparison(comparison, etcdVersion)}\n`);
    if (opts.json) {
      const cpus = os.cpus();
      const document = {
        command: `npm run bench -- cluster ${argv.join(' ')}`.trim(),
        date: started.toISOString(),
        machine: {
          cpus: cpus.length,
          model: cpus[0]?.model ?? 'unknown',
          memoryGiB: Math.round(os.totalmem() / 2 ** 30),
          os: `${os.type()} ${os.release()}`,
          node: process.version,
        },
        options: opts,
        runs,
        comparison,
        etcd: etcdVersion,
        profiles: profiles.map((p) => ({ node: p.node, file: p.file, ...p.summary })),
        notes,
      };
      console.log(JSON.stringify(document, (_key, value: unknown) => (typeof value === 'number' && Number.isNaN(value) ? null : value), 2));
    }
  } catch (error) {
    // One clear message; the stack of a failed start or run says nothing more to the person running it.
    console.error(`\ncluster benchmark failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  } finally {
    await cleanup.stopAll();
    cleanup.uninstall();
  }
}
