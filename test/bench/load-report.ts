/**
 * The cluster benchmark's figures: what one run measured (RunReport), how it
 * reads as a table, and the side-by-side comparison with etcd.
 */
import { Histogram } from './load-histogram.ts';
import type { OpResult } from './load-protocol.ts';
import type { ClientKind } from './load-transport.ts';
import type { SystemName, WorkloadName } from './load-workloads.ts';

export interface LatencyMs {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

export interface OpFigures {
  /** Successful requests measured. */
  readonly count: number;
  readonly opsPerSec: number;
  readonly latencyMs: LatencyMs;
  /** Failed requests measured, by gRPC status name. */
  readonly errors: Readonly<Record<string, number>>;
}

export interface NodeCpu {
  readonly id: string;
  readonly leader: boolean;
  /** % of one core; null when the process is not ours. */
  readonly percent: number | null;
}

export interface CpuFigures {
  readonly nodes: readonly NodeCpu[];
  readonly loadGenerator: number | null;
  /** The benchmark's own process (orchestration and progress only). */
  readonly benchmark: number | null;
  /** The other systems' clusters, up but not driven during this run (with --compare-etcd). */
  readonly idleTargets: readonly { readonly name: string; readonly percent: number | null }[];
  /** The whole machine, every process on it. */
  readonly machine: number | null;
  /** The machine minus everything above: other work on a shared host, the noise in the figures. */
  readonly others: number | null;
  /** Cores on the machine (100 % each). */
  readonly cores: number;
}

export interface RunSettings {
  readonly system: SystemName;
  /** What ran, for people: "quorumkv 0.1.0 (a9d23dd)", "etcd 3.4.23". */
  readonly version: string;
  readonly workload: WorkloadName;
  readonly nodes: number;
  readonly target: 'leader' | 'all';
  readonly client: ClientKind;
  readonly connections: number;
  readonly loadProcesses: number;
  /** Closed loop: requests in flight. Open loop: the most in flight. */
  readonly concurrency: number;
  /** Open loop: requests per second (0 = closed loop). */
  readonly ratePerSecond: number;
  readonly valueBytes: number;
  readonly keys: number;
  readonly txnOps: number;
  readonly hashFields: number;
  readonly durationS: number;
  readonly warmupS: number;
}

export interface RunReport extends RunSettings {
  readonly leader: string;
  readonly ops: Readonly<Record<string, OpFigures>>;
  readonly total: { readonly count: number; readonly opsPerSec: number; readonly errors: number };
  readonly unfinished: number;
  readonly maxBacklog: number;
  readonly cpu: CpuFigures;
  /** 1-minute load average when the run started. */
  readonly loadAverage: number;
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

export function opFigures(result: OpResult, durationS: number): OpFigures {
  const h = Histogram.from(result.histogram);
  const ms = (us: number): number => (Number.isNaN(us) ? Number.NaN : round(us / 1000, 3));
  return {
    count: h.count,
    opsPerSec: Math.round(h.count / durationS),
    latencyMs: { p50: ms(h.percentile(50)), p90: ms(h.percentile(90)), p99: ms(h.percentile(99)), p999: ms(h.percentile(99.9)), max: ms(h.maxUs), mean: ms(h.meanUs()) },
    errors: result.errors,
  };
}

export const thousands = (n: number): string => Math.round(n).toLocaleString('en-US');

export function formatMs(ms: number): string {
  if (Number.isNaN(ms)) return '-';
  if (ms < 10) return ms.toFixed(2);
  if (ms < 100) return ms.toFixed(1);
  return ms.toFixed(0);
}

const percent = (p: number | null): string => (p === null ? 'n/a' : `${Math.round(p)}%`);

export function table(rows: readonly (readonly string[])[], rightAligned: (column: number) => boolean): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => `  ${r.map((cell, c) => (rightAligned(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ')}`.trimEnd()).join('\n');
}

export function describeLoad(s: RunSettings): string {
  const mode = s.ratePerSecond > 0 ? `open loop at ${thousands(s.ratePerSecond)} req/s (at most ${s.concurrency} in flight)` : `${s.concurrency} in flight (closed loop)`;
  const where = s.target === 'leader' ? 'to the leader' : 'spread over all nodes';
  const txn = s.workload === 'txn' ? `, ${s.txnOps} sets per txn` : '';
  return `${mode}, ${s.connections} connection${s.connections === 1 ? '' : 's'} ${where}, ${s.valueBytes}-byte values, ${thousands(s.keys)} keys${txn}, ${s.durationS} s after ${s.warmupS} s warmup`;
}

export function formatRun(r: RunReport): string {
  const header = `${r.version}, ${r.nodes} node${r.nodes === 1 ? '' : 's'}: ${r.workload}, ${describeLoad(r)}`;
  const rows: string[][] = [['op', 'ops/s', 'p50 ms', 'p90 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors']];
  for (const [name, f] of Object.entries(r.ops)) {
    const errors = Object.values(f.errors).reduce((a, b) => a + b, 0);
    const l = f.latencyMs;
    rows.push([name, thousands(f.opsPerSec), formatMs(l.p50), formatMs(l.p90), formatMs(l.p99), formatMs(l.p999), formatMs(l.max), String(errors)]);
  }
  if (Object.keys(r.ops).length > 1) rows.push(['total', thousands(r.total.opsPerSec), '', '', '', '', '', String(r.total.errors)]);
  const lines = [header, table(rows, (c) => c > 0)];
  const errorNames = Object.entries(r.ops).flatMap(([op, f]) => Object.entries(f.errors).map(([code, n]) => `${op} ${code} x${n}`));
  if (errorNames.length > 0) lines.push(`  errors: ${errorNames.join(', ')}`);
  if (r.workload === 'txn' && r.ops['txn'] !== undefined) lines.push(`  keys written: ${thousands(r.ops['txn'].opsPerSec * r.txnOps)}/s`);
  if (r.unfinished > 0) lines.push(`  unfinished: ${r.unfinished} measured requests had no answer ${r.ratePerSecond > 0 ? 'or were never sent ' : ''}by the end of the drain`);
  if (r.ratePerSecond > 0 && r.maxBacklog > 0) {
    lines.push(`  behind schedule: up to ${r.maxBacklog} due requests were waiting to be sent (for a free slot or the generator's timer); their wait is in the latencies`);
  }
  const c = r.cpu;
  const nodes = c.nodes.map((n) => `${n.id}${n.leader ? ' (leader)' : ''} ${percent(n.percent)}`).join(', ');
  const idle = c.idleTargets.map((t) => `; idle ${t.name} ${percent(t.percent)}`).join('');
  lines.push(
    `  cpu, % of one core: ${nodes}; load generator ${percent(c.loadGenerator)}; benchmark ${percent(c.benchmark)}${idle}; ` +
      `other processes ${percent(c.others)} (machine ${percent(c.machine)} of ${c.cores * 100}%, load average ${r.loadAverage.toFixed(2)} before)`,
  );
  return lines.join('\n');
}

export interface Comparison {
  readonly workload: WorkloadName;
  readonly concurrency: number;
  readonly ratePerSecond: number;
  readonly op: string;
  readonly quorumkv: { readonly opsPerSec: number; readonly p50: number; readonly p99: number };
  readonly etcd: { readonly opsPerSec: number; readonly p50: number; readonly p99: number };
  /** quorumkv ops/s over etcd ops/s. */
  readonly throughputRatio: number;
  /** quorumkv p99 over etcd p99 (below 1 is better). */
  readonly p99Ratio: number;
}

/** Pairs each quorumkv run with the etcd run of the same workload and load, op by op. */
export function compare(runs: readonly RunReport[]): Comparison[] {
  const out: Comparison[] = [];
  for (const ours of runs.filter((r) => r.system === 'quorumkv')) {
    const theirs = runs.find((r) => r.system === 'etcd' && r.workload === ours.workload && r.concurrency === ours.concurrency && r.ratePerSecond === ours.ratePerSecond);
    if (theirs === undefined) continue;
    for (const [op, q] of Object.entries(ours.ops)) {
      const e = theirs.ops[op];
      if (e === undefined) continue;
      out.push({
        workload: ours.workload,
        concurrency: ours.concurrency,
        ratePerSecond: ours.ratePerSecond,
        op,
        quorumkv: { opsPerSec: q.opsPerSec, p50: q.latencyMs.p50, p99: q.latencyMs.p99 },
        etcd: { opsPerSec: e.opsPerSec, p50: e.latencyMs.p50, p99: e.latencyMs.p99 },
        throughputRatio: e.opsPerSec === 0 ? Number.NaN : round(q.opsPerSec / e.opsPerSec, 2),
        p99Ratio: e.latencyMs.p99 > 0 ? round(q.latencyMs.p99 / e.latencyMs.p99, 2) : Number.NaN,
      });
    }
  }
  return out;
}

export function formatComparison(comparisons: readonly Comparison[], etcdVersion: string): string {
  const rows: string[][] = [['workload', 'load', 'op', 'quorumkv ops/s', 'etcd ops/s', 'ratio', 'p50 ms q / e', 'p99 ms q / e', 'p99 ratio']];
  for (const c of comparisons) {
    rows.push([
      c.workload,
      c.ratePerSecond > 0 ? `${thousands(c.ratePerSecond)}/s` : `${c.concurrency} in flight`,
      c.op,
      thousands(c.quorumkv.opsPerSec),
      thousands(c.etcd.opsPerSec),
      `${c.throughputRatio.toFixed(2)}x`,
      `${formatMs(c.quorumkv.p50)} / ${formatMs(c.etcd.p50)}`,
      `${formatMs(c.quorumkv.p99)} / ${formatMs(c.etcd.p99)}`,
      `${c.p99Ratio.toFixed(2)}x`,
    ]);
  }
  return `quorumkv vs ${etcdVersion}, same load generator and flags, each pair of runs back to back:\n${table(rows, (c) => c >= 3)}`;
}
