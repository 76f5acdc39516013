/**
 * One measured run of the cluster benchmark: the load-generator processes
 * (load-worker.ts) and the benchmark's side of talking to them, the preload,
 * and the CPU samples around the measured window.
 */
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import { join } from 'node:path';
import { cpuSeconds, machineBusySeconds, percentOfCore as exactPercentOfCore } from './load-cpu.ts';
import type { Stoppable } from './load-cleanup.ts';
import { Histogram } from './load-histogram.ts';
import type { MonotonicWindow } from './load-profile.ts';
import type { LoadSpec, OpResult, ParentMessage, SliceResult, Window, WorkerMessage, WorkerResult } from './load-protocol.ts';
import { mergeSlices } from './load-windows.ts';
import { opFigures, thousands } from './load-report.ts';
import type { CpuFigures, OpFigures, RunReport, RunSettings } from './load-report.ts';
import type { Target } from './load-targets.ts';
import { workloadFor } from './load-workloads.ts';

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

export class LoadProcesses implements Stoppable {
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

export interface CpuSample {
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

export function sampleCpu(target: Target, idle: readonly Target[], load: LoadProcesses): CpuSample {
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

export function sampleAt(epochMs: number, take: () => CpuSample): Promise<CpuSample> {
  return new Promise((resolveSample) => setTimeout(() => resolveSample(take()), Math.max(0, epochMs - Date.now())));
}

export function cpuFigures(target: Target, idle: readonly Target[], leader: string, before: CpuSample, after: CpuSample): CpuFigures {
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
export function loadSpecs(settings: RunSettings, addresses: readonly string[], processes: number, sliceMs = 0): LoadSpec[] {
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
      sliceMs,
    };
  });
}

/** A progress line once a second on stderr: rewritten in place on a terminal, one line per second otherwise. */
export function startProgress(label: string, load: LoadProcesses, window: Window): () => void {
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

export async function preload(target: Target, load: LoadProcesses, settings: RunSettings, leaderAddress: string, log: (line: string) => void): Promise<void> {
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

/** What a scenario needs beyond the plain run: slices of the window, and to act while it runs. */
export interface RunExtras {
  /** Record the window in slices this long too (0: no slices). */
  readonly sliceMs: number;
  /** Called once the window is fixed, before the load starts. */
  readonly onWindow?: (window: Window) => void;
}

export interface MeasuredRun {
  readonly report: RunReport;
  /** The window's slices, merged over the load-generator processes (empty without RunExtras.sliceMs). */
  readonly slices: readonly SliceResult[];
  readonly window: Window;
}

export async function runOnce(
  target: Target,
  idle: readonly Target[],
  load: LoadProcesses,
  settings: RunSettings,
  drainS: number,
  log: (line: string) => void,
  measured: MonotonicWindow[],
  extras: RunExtras = { sliceMs: 0 },
): Promise<MeasuredRun> {
  const leader = await target.leader();
  const leaderNode = target.nodes.find((n) => n.id === leader);
  if (leaderNode === undefined) throw new Error(`the leader ${leader} is not among the nodes the benchmark knows`);
  const addresses = settings.target === 'leader' ? [leaderNode.address] : target.nodes.map((n) => n.address);
  await preload(target, load, settings, leaderNode.address, log);

  const specs = loadSpecs(settings, addresses, load.workers.length, extras.sliceMs);
  await Promise.all(specs.map((spec, i) => load.workers[i]!.request({ type: 'prepare', spec }, 'ready')));
  const startAtMs = Date.now() + 200;
  const window: Window = {
    startAtMs,
    measureFromMs: startAtMs + settings.warmupS * 1000,
    endAtMs: startAtMs + (settings.warmupS + settings.durationS) * 1000,
    drainMs: drainS * 1000,
  };
  extras.onWindow?.(window);
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
  const report: RunReport = {
    ...settings,
    leader,
    ops,
    total: { count, opsPerSec: Math.round(count / settings.durationS), errors },
    unfinished: results.reduce((sum, r) => sum + r.unfinished, 0),
    maxBacklog: results.reduce((sum, r) => sum + r.maxBacklog, 0),
    cpu,
    loadAverage,
  };
  return { report, slices: mergeSlices(results.map((r) => r.slices)), window };
}
