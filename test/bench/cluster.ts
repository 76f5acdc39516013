/**
 * npm run bench -- cluster [flags]
 *
 * End-to-end throughput and latency of a real cluster: starts a fresh local
 * quorumkv cluster (or uses --endpoints), drives it with a load generator in
 * separate processes, and prints ops/s and latency percentiles per operation
 * with each process's CPU. With --compare-etcd it also starts a local etcd
 * cluster, runs every workload on it right after quorumkv with the same
 * generator and flags, and prints both side by side. With --scenario it runs
 * situations instead (a snapshot under load, restarts: load-scenarios.ts).
 * Run with --help for the flags.
 *
 * The generator (load-worker.ts) is built to cost little CPU, because on a
 * small machine it shares the cores with the servers: it speaks gRPC through
 * a minimal HTTP/2 client of its own (load-h2.ts), sends pre-encoded
 * requests, keeps many requests in flight on a few connections, and decodes
 * no responses beyond their status.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/cluster-harness.ts';
import { findEtcd } from './etcd-cluster.ts';
import { Cleanup } from './load-cleanup.ts';
import { USAGE, parseOptions } from './load-options.ts';
import type { Options } from './load-options.ts';
import { readProfile, summarizeProfile } from './load-profile.ts';
import type { MonotonicWindow, ProfileSummary } from './load-profile.ts';
import { compare, formatComparison, formatRun } from './load-report.ts';
import type { Comparison, RunReport, RunSettings } from './load-report.ts';
import { LoadProcesses, runOnce } from './load-run.ts';
import { SCENARIO_SERVE_FLAGS, runScenarios } from './load-scenarios.ts';
import type { ScenarioReport } from './load-scenarios.ts';
import { existingQuorumkv, localEtcd, localQuorumkv, noopServer } from './load-targets.ts';
import type { Target } from './load-targets.ts';
import { supports } from './load-workloads.ts';
import type { SystemName, WorkloadName } from './load-workloads.ts';

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
  return localQuorumkv(options.nodes, nodeFlagsOf(options), options.serveFlags, quorumkvVersion());
}

/** Flags for node itself on every quorumkv node the benchmark starts. */
const nodeFlagsOf = (options: Options): string[] => (options.cpuProfDir === null ? [] : ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`]);

/** One run's settings from the flags: a closed loop needs no more connections (or load processes) than requests in flight. */
function runSettings(target: Target, workload: WorkloadName, concurrency: number, options: Options): RunSettings {
  const connections = options.ratePerSecond > 0 ? options.connections : Math.min(options.connections, concurrency);
  return {
    system: target.system,
    version: target.version,
    workload,
    nodes: target.nodes.length,
    target: options.target,
    client: options.client,
    connections,
    loadProcesses: Math.min(options.loadProcesses, connections),
    concurrency,
    ratePerSecond: options.ratePerSecond,
    valueBytes: options.valueBytes,
    keys: options.keys,
    txnOps: options.txnOps,
    hashFields: options.hashFields,
    durationS: options.durationS,
    warmupS: options.warmupS,
  };
}

/** --scenario: a fresh local cluster of its own, the put workload at --rate, each scenario in turn. */
async function scenarios(options: Options, cleanup: Cleanup, log: (line: string) => void, reports: ScenarioReport[]): Promise<NodeProfile[]> {
  const target = cleanup.add(localQuorumkv(options.nodes, nodeFlagsOf(options), [...SCENARIO_SERVE_FLAGS, ...options.serveFlags], quorumkvVersion()));
  await target.start();
  const load = cleanup.add(LoadProcesses.start(options.loadProcesses));
  const settings = runSettings(target, 'put', options.concurrencies[0]!, options);
  const measured: MonotonicWindow[] = [];
  reports.push(...(await runScenarios(target, load, settings, options, log, measured)));
  await cleanup.release(load);
  await cleanup.release(target);
  return options.cpuProfDir === null ? [] : profilesOf(target, options.cpuProfDir, measured);
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
        const settings = runSettings(target, workload, concurrency, options);
        const idle = targets.filter((t) => t !== target);
        const { report } = await runOnce(target, idle, load, settings, options.drainS, log, measured.get(target)!);
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
  const scenarioReports: ScenarioReport[] = [];
  const profiles: NodeProfile[] = [];
  const started = new Date();
  try {
    const systems: SystemName[] = ['quorumkv'];
    if (opts.compareEtcd) {
      if (findEtcd() === null) log('etcd not installed, skipping comparison (Debian/Ubuntu: apt-get install etcd-server)');
      else systems.push('etcd');
    }
    if (opts.scenarios.length > 0) profiles.push(...(await scenarios(opts, cleanup, log, scenarioReports)));
    else profiles.push(...(await benchmark(systems, opts, cleanup, log, runs)));
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
        scenarios: scenarioReports,
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
