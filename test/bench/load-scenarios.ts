/**
 * The cluster benchmark's scenarios (--scenario): situations rather than
 * steady load, on a fresh local cluster of real `quorumkv serve` processes.
 *
 * - snapshot-under-load: puts at a fixed rate; after a baseline stretch,
 *   Cluster.Snapshot on the leader or every node; the latencies of the
 *   requests due while the snapshot ran against those before it.
 * - restart: a follower stopped (SIGTERM, then SIGKILL) and started again,
 *   then the whole cluster: time from process start to answering Status, to
 *   having applied the leader's commit index, to a linearizable Get (a write,
 *   for the whole cluster) succeeding.
 *
 * Automatic snapshots are off (huge thresholds) so that the only snapshots
 * are the ones the scenario takes: after the preload one on every node, so
 * that the measured snapshot covers a short log as in steady state, and the
 * restart has a snapshot to load.
 */
import * as grpc from '@grpc/grpc-js';
import { NodeClient } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';
import type { Options, ScenarioName } from './load-options.ts';
import type { MonotonicWindow } from './load-profile.ts';
import type { Window } from './load-protocol.ts';
import { describeLoad, formatMs, formatRun, table, thousands } from './load-report.ts';
import type { RunReport, RunSettings } from './load-report.ts';
import { preload, runOnce } from './load-run.ts';
import type { LoadProcesses } from './load-run.ts';
import type { LocalQuorumkv } from './load-targets.ts';
import { ratio, stretchFigures } from './load-windows.ts';
import type { StretchFigures } from './load-windows.ts';
import { stringKey } from './load-workloads.ts';

/** Serve flags of the scenarios' cluster (before --serve-flags, which may override them): no automatic snapshots. */
export const SCENARIO_SERVE_FLAGS: readonly string[] = ['--snapshot-entries', '1000000000000', '--snapshot-bytes', '1024gb'];

/** The slices the snapshot scenario's window is recorded in. */
const SLICE_MS = 100;
/** A snapshot of a million keys on a busy 2-core machine can take long; past this the scenario gives up on it. */
const SNAPSHOT_TIMEOUT_MS = 600_000;
/** How long a restarted node may take to serve before the scenario reports it as not serving. */
const SERVING_TIMEOUT_MS = 180_000;
const POLL_PAUSE_MS = 20;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const num = (reply: Reply, field: string): number => Number(reply[field] ?? 0);
const seconds = (ms: number | null): string => (ms === null ? '-' : (ms / 1000).toFixed(2));

/**
 * A client for probing a node that may be down: its own subchannel, and a short
 * reconnect backoff (grpc-js waits 1 s and more between attempts by default,
 * which would show up as start-up time).
 */
function probeClient(address: string): NodeClient {
  return new NodeClient(address, grpc.credentials.createInsecure(), null, {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.initial_reconnect_backoff_ms': 20,
    'grpc.min_reconnect_backoff_ms': 20,
    'grpc.max_reconnect_backoff_ms': 50,
  });
}

/** Milliseconds from `sinceMs` (performance.now()) until `attempt` first resolves; null if it never did within the timeout. */
async function timeUntil(sinceMs: number, attempt: () => Promise<void>, timeoutMs = SERVING_TIMEOUT_MS): Promise<number | null> {
  while (performance.now() - sinceMs < timeoutMs) {
    try {
      await attempt();
      return Math.round(performance.now() - sinceMs);
    } catch {
      await sleep(POLL_PAUSE_MS);
    }
  }
  return null;
}

// ---- snapshots ------------------------------------------------------------------

export interface SnapshotTaken {
  readonly node: string;
  readonly leader: boolean;
  /** Epoch ms when the Snapshot RPC was sent and answered. */
  readonly startedAtMs: number;
  readonly endedAtMs: number;
  /** The RPC's duration: writing the file and compacting the log. */
  readonly durationMs: number;
  readonly index: number;
  readonly sizeBytes: number;
  /** The log entries left before and after (log_last_index - log_first_index + 1), to show the compaction. */
  readonly logEntriesBefore: number;
  readonly logEntriesAfter: number;
  readonly error: string | null;
}

const logEntries = (s: Reply): number => Math.max(0, num(s, 'log_last_index') - num(s, 'log_first_index') + 1);

async function takeSnapshot(address: string, node: string, leader: boolean): Promise<SnapshotTaken> {
  const client = new NodeClient(address);
  try {
    const before = await client.call('Status', {}, 10_000);
    const startedAtMs = Date.now();
    const began = performance.now();
    let reply: Reply | null = null;
    let error: string | null = null;
    try {
      reply = await client.call('Snapshot', {}, SNAPSHOT_TIMEOUT_MS);
    } catch (e) {
      error = (e as Error).message;
    }
    const durationMs = Math.round(performance.now() - began);
    const after = await client.call('Status', {}, 10_000);
    return {
      node,
      leader,
      startedAtMs,
      endedAtMs: startedAtMs + durationMs,
      durationMs,
      index: reply === null ? 0 : num(reply, 'index'),
      sizeBytes: reply === null ? 0 : num(reply, 'size_bytes'),
      logEntriesBefore: logEntries(before),
      logEntriesAfter: logEntries(after),
      error,
    };
  } finally {
    client.close();
  }
}

async function snapshotNodes(target: LocalQuorumkv, which: 'leader' | 'all'): Promise<SnapshotTaken[]> {
  const leader = await target.leader();
  const nodes = target.nodes.filter((n) => which === 'all' || n.id === leader);
  return Promise.all(nodes.map((n) => takeSnapshot(n.address, n.id, n.id === leader)));
}

function formatSnapshots(snapshots: readonly SnapshotTaken[]): string {
  return snapshots
    .map((s) =>
      s.error !== null
        ? `${s.node}${s.leader ? ' (leader)' : ''} failed after ${seconds(s.durationMs)} s: ${s.error}`
        : `${s.node}${s.leader ? ' (leader)' : ''} ${seconds(s.durationMs)} s (index ${thousands(s.index)}, ${(s.sizeBytes / 2 ** 20).toFixed(0)} MiB, log ${thousands(s.logEntriesBefore)} -> ${thousands(s.logEntriesAfter)} entries)`,
    )
    .join('; ');
}

// ---- snapshot under load --------------------------------------------------------

export interface SnapshotUnderLoadReport {
  readonly scenario: 'snapshot-under-load';
  /** The whole measured window: baseline, snapshot, and after. */
  readonly run: RunReport;
  readonly snapshotOn: 'leader' | 'all';
  readonly snapshots: readonly SnapshotTaken[];
  /** The requests due before the snapshot was asked for, while it ran (first RPC sent to last answered), and after. */
  readonly before: StretchFigures;
  readonly during: StretchFigures;
  readonly after: StretchFigures | null;
  /** during / before. */
  readonly p99Ratio: number;
  readonly p999Ratio: number;
  readonly maxRatio: number;
  /** The snapshot was still running when the window ended: `during` covers only its start. */
  readonly outlastedWindow: boolean;
  /** Each whole second of the window: where in it the latency went up (a baseline's spikes show here). */
  readonly seconds: readonly StretchFigures[];
}

async function snapshotUnderLoad(
  target: LocalQuorumkv,
  load: LoadProcesses,
  settings: RunSettings,
  options: Options,
  log: (line: string) => void,
  measured: MonotonicWindow[],
): Promise<SnapshotUnderLoadReport> {
  // Measured: the baseline (--duration), then twice as long for the snapshot to run and the load to settle.
  const baselineMs = settings.durationS * 1000;
  const runSettings: RunSettings = { ...settings, durationS: settings.durationS * 3 };
  const pending: { snapshots: Promise<SnapshotTaken[]> } = { snapshots: Promise.resolve([]) };
  const onWindow = (w: Window): void => {
    pending.snapshots = sleep(Math.max(0, w.measureFromMs + baselineMs - Date.now())).then(() => snapshotNodes(target, options.snapshotOn));
  };
  log(`snapshot-under-load: ${thousands(settings.ratePerSecond)} puts/s; Cluster.Snapshot on ${options.snapshotOn === 'all' ? 'every node' : 'the leader'} ${settings.durationS} s into a ${runSettings.durationS} s window`);
  const outcome = await runOnce(target, [], load, runSettings, options.drainS, log, measured, { sliceMs: SLICE_MS, onWindow });
  const snapshots = await pending.snapshots;
  if (snapshots.length === 0) throw new Error('snapshot-under-load: no snapshot was taken');
  const from = outcome.window.measureFromMs;
  const windowMs = runSettings.durationS * 1000;
  const startMs = Math.min(...snapshots.map((s) => s.startedAtMs)) - from;
  const endMs = Math.max(...snapshots.map((s) => s.endedAtMs)) - from;
  const before = stretchFigures(outcome.slices, SLICE_MS, 0, startMs);
  // The slice holding the request is the one by its due time: stretches meet at slice edges, so before and during never share one.
  const during = stretchFigures(outcome.slices, SLICE_MS, before.toMs, Math.min(endMs, windowMs));
  const after = during.toMs < windowMs ? stretchFigures(outcome.slices, SLICE_MS, during.toMs, windowMs) : null;
  return {
    scenario: 'snapshot-under-load',
    run: outcome.report,
    snapshotOn: options.snapshotOn,
    snapshots,
    before,
    during,
    after,
    p99Ratio: ratio(during.latencyMs.p99, before.latencyMs.p99),
    p999Ratio: ratio(during.latencyMs.p999, before.latencyMs.p999),
    maxRatio: ratio(during.latencyMs.max, before.latencyMs.max),
    outlastedWindow: endMs > windowMs,
    seconds: Array.from({ length: runSettings.durationS }, (_, i) => stretchFigures(outcome.slices, SLICE_MS, i * 1000, (i + 1) * 1000)),
  };
}

function formatSnapshotUnderLoad(r: SnapshotUnderLoadReport): string {
  const rows: string[][] = [['stretch', 'from s', 'to s', 'puts/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors']];
  const row = (name: string, f: StretchFigures): string[] => {
    const l = f.latencyMs;
    const s = (f.toMs - f.fromMs) / 1000;
    return [name, (f.fromMs / 1000).toFixed(1), (f.toMs / 1000).toFixed(1), thousands(s > 0 ? f.count / s : 0), formatMs(l.p50), formatMs(l.p90), formatMs(l.p99), formatMs(l.p999), formatMs(l.max), String(f.errors)];
  };
  rows.push(row('before snapshot', r.before), row('during snapshot', r.during));
  if (r.after !== null) rows.push(row('after', r.after));
  const x = (v: number): string => (Number.isNaN(v) ? '-' : `${v.toFixed(2)}x`);
  return [
    `snapshot under load: ${formatRun(r.run)}`,
    `  snapshot on ${r.snapshotOn === 'all' ? 'every node' : 'the leader'}: ${formatSnapshots(r.snapshots)}`,
    table(rows, (c) => c > 0),
    `  during / before: p99 ${x(r.p99Ratio)} (target: at most 2x), p99.9 ${x(r.p999Ratio)}, max ${x(r.maxRatio)}` +
      (r.outlastedWindow ? '; the snapshot outlasted the window: "during" covers only its start (raise --duration)' : ''),
    `  p99 ms per second: ${r.seconds.map((f) => formatMs(f.latencyMs.p99)).join(' ')}`,
    `  max ms per second: ${r.seconds.map((f) => formatMs(f.latencyMs.max)).join(' ')}`,
  ].join('\n');
}

// ---- restart ------------------------------------------------------------------------

export interface NodeRestart {
  readonly node: string;
  readonly signal: NodeJS.Signals;
  /** From the signal to the process's exit. */
  readonly stopMs: number;
  /** From the new process's spawn to: Status answering, applied index at the leader's commit index, a linearizable Get of a preloaded key. */
  readonly statusMs: number | null;
  readonly caughtUpMs: number | null;
  readonly getMs: number | null;
  /** Keys the node holds once caught up. */
  readonly keys: number;
}

export interface ClusterRestart {
  readonly signal: NodeJS.Signals;
  readonly stopMs: number;
  /** From the spawns to: every node answering Status, a leader all agree on, a write succeeding. */
  readonly allStatusMs: number | null;
  readonly leaderMs: number | null;
  readonly writeMs: number | null;
  readonly keys: number;
}

export interface RestartReport {
  readonly scenario: 'restart';
  readonly keys: number;
  /** The snapshots taken first, so that each restart loads one. */
  readonly snapshots: readonly SnapshotTaken[];
  readonly followers: readonly NodeRestart[];
  readonly cluster: readonly ClusterRestart[];
}

async function restartFollower(target: LocalQuorumkv, signal: NodeJS.Signals): Promise<NodeRestart> {
  const leaderId = await target.leader();
  const leader = target.nodes.find((n) => n.id === leaderId)!;
  const follower = target.nodes.find((n) => n.id !== leaderId)!;
  const stopBegan = performance.now();
  await target.kill(follower.id, signal);
  const stopMs = Math.round(performance.now() - stopBegan);
  const spawnedAt = target.relaunch(follower.id);
  const probe = probeClient(follower.address);
  const leaderProbe = new NodeClient(leader.address);
  let keys = 0;
  try {
    const [statusMs, caughtUpMs, getMs] = await Promise.all([
      timeUntil(spawnedAt, async () => void (await probe.call('Status', {}, 500))),
      timeUntil(spawnedAt, async () => {
        const [mine, theirs] = await Promise.all([probe.call('Status', {}, 500), leaderProbe.call('Status', {}, 1000)]);
        if (num(mine, 'applied_index') < num(theirs, 'commit_index')) throw new Error('behind');
        keys = num(mine, 'keys');
      }),
      timeUntil(spawnedAt, async () => {
        const reply = await probe.call('Get', { key: stringKey(0), consistency: 'LINEARIZABLE' }, 1000);
        if (reply['found'] !== true) throw new Error(`${stringKey(0)} not found`);
      }),
    ]);
    return { node: follower.id, signal, stopMs, statusMs, caughtUpMs, getMs, keys };
  } finally {
    probe.close();
    leaderProbe.close();
  }
}

async function restartCluster(target: LocalQuorumkv, signal: NodeJS.Signals): Promise<ClusterRestart> {
  const ids = target.nodes.map((n) => n.id);
  const stopBegan = performance.now();
  await Promise.all(ids.map((id) => target.kill(id, signal)));
  const stopMs = Math.round(performance.now() - stopBegan);
  const spawnedAt = Math.min(...ids.map((id) => target.relaunch(id)));
  const probes = target.nodes.map((n) => probeClient(n.address));
  try {
    const [allStatusMs, leaderMs, writeMs] = await Promise.all([
      timeUntil(spawnedAt, async () => void (await Promise.all(probes.map((p) => p.call('Status', {}, 500))))),
      timeUntil(spawnedAt, async () => {
        const statuses = await Promise.all(probes.map((p) => p.call('Status', {}, 500)));
        const leaders = new Set(statuses.map((s) => s['leader_id']));
        const leading = statuses.find((s) => s['role'] === 'LEADER');
        if (leading === undefined || leaders.size !== 1) throw new Error('no agreed leader');
      }),
      // Through the first node, leader or not: a follower forwards the write.
      timeUntil(spawnedAt, async () => void (await probes[0]!.call('Set', { key: 'bench-restart-probe', value: Buffer.from(signal) }, 1000))),
    ]);
    // Once the write went through: a leader may be elected before its state is restored (its Status then shows 0 keys).
    const statuses = await Promise.all(probes.map((p) => p.call('Status', {}, 1000).catch(() => null)));
    const keys = num(statuses.find((s) => s?.['role'] === 'LEADER') ?? {}, 'keys');
    return { signal, stopMs, allStatusMs, leaderMs, writeMs, keys };
  } finally {
    for (const p of probes) p.close();
  }
}

async function restart(target: LocalQuorumkv, keys: number, log: (line: string) => void): Promise<RestartReport> {
  // Every node snapshots what it has applied, so each restart loads a snapshot and replays a short log.
  const snapshots = await snapshotNodes(target, 'all');
  log(`restart: snapshots first: ${formatSnapshots(snapshots)}`);
  const followers: NodeRestart[] = [];
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    log(`restart: a follower, ${signal}`);
    followers.push(await restartFollower(target, signal));
  }
  const cluster: ClusterRestart[] = [];
  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    log(`restart: the whole cluster, ${signal}`);
    cluster.push(await restartCluster(target, signal));
  }
  return { scenario: 'restart', keys, snapshots, followers, cluster };
}

function formatRestart(r: RestartReport, version: string): string {
  const followerRows: string[][] = [['restart', 'stop s', 'Status answers s', 'caught up s', 'linearizable Get s', 'keys']];
  for (const f of r.followers) followerRows.push([`follower ${f.node}, ${f.signal}`, seconds(f.stopMs), seconds(f.statusMs), seconds(f.caughtUpMs), seconds(f.getMs), thousands(f.keys)]);
  const clusterRows: string[][] = [['restart', 'stop s', 'all answer Status s', 'leader s', 'write s', 'keys']];
  for (const c of r.cluster) clusterRows.push([`whole cluster, ${c.signal}`, seconds(c.stopMs), seconds(c.allStatusMs), seconds(c.leaderMs), seconds(c.writeMs), thousands(c.keys)]);
  return [
    `restart: ${version}, ${thousands(r.keys)} keys; times from process start (spawn), target: serving in under 5 s`,
    `  snapshots before: ${formatSnapshots(r.snapshots)}`,
    table(followerRows, (c) => c > 0),
    table(clusterRows, (c) => c > 0),
  ].join('\n');
}

// ---- running them ------------------------------------------------------------------

export type ScenarioReport = SnapshotUnderLoadReport | RestartReport;

/**
 * Preloads --keys keys once, takes a snapshot on every node (untimed by the
 * scenarios, but reported), then runs each scenario in turn on the same
 * cluster. Prints each report unless --json; `measured` gets the windows a
 * CPU profile should cover.
 */
export async function runScenarios(
  target: LocalQuorumkv,
  load: LoadProcesses,
  settings: RunSettings,
  options: Options,
  log: (line: string) => void,
  measured: MonotonicWindow[],
): Promise<ScenarioReport[]> {
  const leader = await target.leader();
  // The put workload preloads nothing: fill the keys the get workload reads, the same ones the puts overwrite.
  await preload(target, load, { ...settings, workload: 'get' }, target.nodes.find((n) => n.id === leader)!.address, log);
  const settle = await snapshotNodes(target, 'all');
  log(`snapshot after the preload, no load: ${formatSnapshots(settle)}`);
  log(`load: ${describeLoad(settings)}`);
  const reports: ScenarioReport[] = [];
  for (const scenario of options.scenarios as readonly ScenarioName[]) {
    if (scenario === 'snapshot-under-load') {
      const report = await snapshotUnderLoad(target, load, settings, options, log, measured);
      reports.push(report);
      if (!options.json) console.log(`${formatSnapshotUnderLoad(report)}\n`);
    } else {
      const began = { monotonicUs: Number(process.hrtime.bigint() / 1000n) };
      const report = await restart(target, settings.keys, log);
      measured.push({ fromUs: began.monotonicUs, toUs: Number(process.hrtime.bigint() / 1000n) });
      reports.push(report);
      if (!options.json) console.log(`${formatRestart(report, target.version)}\n`);
    }
  }
  return reports;
}
