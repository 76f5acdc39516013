/**
 * The settings of a chaos run, their defaults, the command that reruns them,
 * and the figures a run reports.
 */
import type { CheckResult, CheckerLimits } from './checks.ts';
import { NEMESES } from './nemesis.ts';
import type { NemesisName } from './nemesis.ts';

export interface ChaosOptions {
  readonly seed: number;
  readonly durationS: number;
  readonly nodes: number;
  readonly nemeses: readonly NemesisName[];
  readonly clients: number;
  /** TTLs on register writes, a filler workload and a small memory budget: expiry and eviction under faults. */
  readonly ttlEviction: boolean;
  readonly maxMemory: string;
  /** Report folder; a new one under the OS temp dir when null. */
  readonly out: string | null;
  readonly recoveryBoundMs: number;
  readonly electionMs: number;
  readonly heartbeatMs: number;
  readonly keyLifeMs: number;
  readonly opTimeoutMs: number;
  readonly snapshotEntries: number;
  readonly checker: CheckerLimits;
  readonly progressEveryMs: number;
  readonly progress: (line: string) => void;
}

export const DEFAULT_OPTIONS: Omit<ChaosOptions, 'seed' | 'progress'> = {
  durationS: 60,
  nodes: 3,
  nemeses: NEMESES,
  clients: 12,
  ttlEviction: false,
  maxMemory: '256kb',
  out: null,
  recoveryBoundMs: 20_000,
  electionMs: 1000,
  heartbeatMs: 100,
  keyLifeMs: 3000,
  opTimeoutMs: 3000,
  snapshotEntries: 2000,
  checker: { maxStepsPerKey: 5_000_000, timeoutMs: 300_000 },
  progressEveryMs: 5000,
};

export interface Figures {
  readonly operations: number;
  readonly ok: number;
  readonly failed: number;
  readonly unknown: number;
  readonly byWorkload: Record<string, { ok: number; fail: number; unknown: number }>;
  readonly faultsInjected: number;
  readonly faultsByNemesis: Record<string, number>;
  /** Longest time from killing the leader to the next acknowledged write invoked after the kill. */
  readonly longestLeaderKillUnavailabilityMs: number | null;
  /** The same, over leader kills no other fault overlapped (a partition at the same time can make any kill look slow). */
  readonly longestLoneLeaderKillUnavailabilityMs: number | null;
  readonly slowestRecoveryMs: number | null;
  readonly durationMs: number;
  readonly internalErrors: number;
}

export interface ChaosResult {
  readonly passed: number;
  readonly failed: number;
  readonly checks: readonly CheckResult[];
  readonly figures: Figures;
  readonly reportDir: string;
  readonly rerun: string;
}

/** The command that reruns these options (defaults left out). */
export function rerunCommand(options: ChaosOptions): string {
  const args = [`--duration ${options.durationS}`, `--seed ${options.seed}`];
  const d = DEFAULT_OPTIONS;
  if (options.nodes !== d.nodes) args.push(`--nodes ${options.nodes}`);
  if (options.nemeses.join(',') !== d.nemeses.join(',')) args.push(`--nemesis ${options.nemeses.join(',')}`);
  if (options.clients !== d.clients) args.push(`--clients ${options.clients}`);
  if (options.ttlEviction) args.push('--ttl-eviction');
  if (options.maxMemory !== d.maxMemory) args.push(`--max-memory ${options.maxMemory}`);
  if (options.electionMs !== d.electionMs) args.push(`--election-ms ${options.electionMs}`);
  if (options.heartbeatMs !== d.heartbeatMs) args.push(`--heartbeat-ms ${options.heartbeatMs}`);
  if (options.keyLifeMs !== d.keyLifeMs) args.push(`--key-life-ms ${options.keyLifeMs}`);
  if (options.recoveryBoundMs !== d.recoveryBoundMs) args.push(`--recovery-bound ${options.recoveryBoundMs / 1000}`);
  return `npm run chaos -- ${args.join(' ')}`;
}
