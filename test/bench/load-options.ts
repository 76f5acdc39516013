/**
 * The cluster benchmark's flags: their help text, and parsing them into
 * Options with a UsageError naming the flag and what it takes.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CLIENT_KINDS } from './load-transport.ts';
import type { ClientKind } from './load-transport.ts';
import { WORKLOADS, WORKLOAD_HELP } from './load-workloads.ts';
import type { WorkloadName } from './load-workloads.ts';

/** Scenarios (load-scenarios.ts): one situation each on a fresh local cluster, instead of the workload runs. */
export const SCENARIOS = ['snapshot-under-load', 'restart'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** A scenario's defaults where the workload runs' differ: a million keys, and a fixed put rate well below saturation. */
export const SCENARIO_KEYS = 1_000_000;
export const SCENARIO_RATE = 2000;

export const USAGE = `npm run bench -- cluster [flags]

  --workload LIST      ${WORKLOADS.join('|')} (default put); a comma list runs each in turn
${WORKLOADS.map((w) => `                         ${w.padEnd(17)}${WORKLOAD_HELP[w]}`).join('\n')}
  --concurrency LIST   requests in flight in total (default 256); a comma list runs each in turn.
                       With --rate: the most in flight at once.
  --rate N             open loop: N requests/s in total on a fixed schedule, latency measured from
                       each request's due time (no coordinated omission). Default 0: closed loop.
  --connections N      HTTP/2 connections (default 8; never more than the requests in flight)
  --value-bytes N      value size (default 256)
  --keys N             distinct keys, chosen uniformly (default 10000; with --scenario 1000000)
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
  --noop-server        drive a no-op server instead of a cluster (the client port's own server
                       class): the ceiling of a node's client port on this machine, and what
                       the generator costs per call
  --client raw|grpc-js the generator's gRPC client: raw (default), a minimal HTTP/2 client of its own
                       that costs a few µs per call, or @grpc/grpc-js, as a cross-check
  --load-processes N   load-generator processes (default 1)
  --serve-flags=STR    extra flags for every quorumkv serve the benchmark starts, e.g.
                       --serve-flags='--snapshot-entries 100000' (with '=': the value starts with --)
  --cpu-prof DIR       run the quorumkv nodes with node --cpu-prof, write profiles to DIR, and
                       print where each node's time went
  --scenario LIST      instead of the workload runs, one situation on a fresh local cluster (a comma list
                       runs each in turn on the same cluster, after one preload of --keys keys):
                         snapshot-under-load  puts at --rate (default ${SCENARIO_RATE}/s) for --duration s, then a
                                              Cluster.Snapshot on --snapshot-on nodes under the same load;
                                              p99 while the snapshot ran against before it
                         restart              SIGTERM, then SIGKILL, one follower and restart it; then the
                                              whole cluster: time from process start to serving
  --snapshot-on leader|all   with --scenario: which nodes take the snapshot (default all: every node
                       snapshots at about the same index when the thresholds trigger it)
  --json               print one JSON document instead of tables (progress still goes to stderr)
`;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Options {
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
  /** Empty: the workload runs. */
  readonly scenarios: readonly ScenarioName[];
  readonly snapshotOn: 'leader' | 'all';
}

export function parseOptions(argv: string[]): Options | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      workload: { type: 'string', default: 'put' },
      concurrency: { type: 'string', default: '256' },
      rate: { type: 'string' },
      connections: { type: 'string', default: '8' },
      'value-bytes': { type: 'string', default: '256' },
      keys: { type: 'string' },
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
      scenario: { type: 'string', default: '' },
      'snapshot-on': { type: 'string', default: 'all' },
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
  const scenarios = values.scenario
    .split(',')
    .filter((s) => s !== '')
    .map((s) => {
      if (!(SCENARIOS as readonly string[]).includes(s)) throw new UsageError(`--scenario must be among ${SCENARIOS.join(', ')} (got '${s}')`);
      return s as ScenarioName;
    });
  if (scenarios.length > 0 && (endpoints !== null || values['compare-etcd'] || values['noop-server'])) {
    throw new UsageError('--scenario starts (and restarts) a local quorumkv cluster of its own: not with --endpoints, --compare-etcd or --noop-server');
  }
  if (values['snapshot-on'] !== 'leader' && values['snapshot-on'] !== 'all') throw new UsageError(`--snapshot-on must be leader or all (got '${values['snapshot-on']}')`);
  const ratePerSecond = seconds('rate', values.rate ?? (scenarios.length > 0 ? String(SCENARIO_RATE) : '0'), 0);
  if (scenarios.includes('snapshot-under-load') && ratePerSecond === 0) throw new UsageError('--scenario snapshot-under-load needs a fixed --rate above 0: latency against a schedule');
  const keys = int('keys', values.keys ?? String(scenarios.length > 0 ? SCENARIO_KEYS : 10_000), 1);
  const txnOps = int('txn-ops', values['txn-ops'], 1);
  if (workloads.includes('txn') && txnOps > keys) throw new UsageError('--txn-ops cannot exceed --keys: a Txn sets distinct keys');
  return {
    workloads,
    concurrencies: values.concurrency.split(',').map((c) => int('concurrency', c, 1)),
    ratePerSecond,
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
    scenarios,
    snapshotOn: values['snapshot-on'],
  };
}
