/**
 * The verdicts of a chaos run, from its history and what the runner saw.
 * Each check passes or fails on its own, with a one-line summary and, when
 * it fails, details a person can act on.
 *
 * Linearizability is checked key by key, with each key's final read (after
 * healing) appended to its history. A violation whose culprit is that final
 * read means everything before it was fine and the final state lost an
 * acknowledged write: it counts against "acknowledged writes survive",
 * anything else against the workload's own check.
 */
import { checkOperations } from '../support/linearizability.ts';
import type { Model, Operation } from '../support/linearizability.ts';
import { kvRegisterModel } from '../support/models.ts';
import type { KvRegisterInput, KvRegisterOutput } from '../support/models.ts';
import type { FaultRecord, OpRecord } from './history.ts';
import { checkList } from './list-checker.ts';
import type { ListAppend, ListRead, ListViolation } from './list-checker.ts';
import { hashModel, volatileRegisterModel } from './models.ts';
import type { HashInput, HashOutput } from './models.ts';

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly summary: string;
  readonly details: string;
}

export interface CheckerLimits {
  /** Search steps per key before the checker gives up. */
  readonly maxStepsPerKey: number;
  /** Wall-clock budget for one workload's keys, in ms. */
  readonly timeoutMs: number;
}

/** What one workload's history check found, split between the run and the final reads. */
export interface WorkloadVerdict {
  readonly keys: number;
  readonly operations: number;
  /** Violations among operations of the run. */
  readonly violations: string[];
  /** Final reads that miss or contradict acknowledged writes. */
  readonly lost: string[];
  /** Keys the checker gave up on. */
  readonly undecided: string[];
  /** Final reads that found a volatile key gone (expired or evicted), so they prove nothing. */
  readonly vanished: number;
}

const MAX_DETAILS = 8;

function groupByKey(ops: readonly OpRecord[]): Map<string, OpRecord[]> {
  const byKey = new Map<string, OpRecord[]>();
  for (const op of ops) {
    const group = byKey.get(op.key);
    if (group === undefined) byKey.set(op.key, [op]);
    else group.push(op);
  }
  return byKey;
}

/** Runs the linearizability checker on each key; ops map to model operations or null (dropped). */
function checkKeys<S, I, O>(
  model: Model<S, I, O>,
  records: readonly OpRecord[],
  toOperation: (op: OpRecord) => Operation<I, O> | null,
  limits: CheckerLimits,
): WorkloadVerdict {
  const violations: string[] = [];
  const lost: string[] = [];
  const undecided: string[] = [];
  const deadline = performance.now() + limits.timeoutMs;
  // Keys are split here, one search each, so that every key gets a verdict.
  const { partition: _partition, ...single } = model;
  const byKey = groupByKey(records);
  let operations = 0;
  for (const [key, group] of byKey) {
    const ops: Operation<I, O>[] = [];
    const finals = new Set<Operation<I, O>>();
    const source = new Map<Operation<I, O>, OpRecord>();
    for (const record of group) {
      const op = toOperation(record);
      if (op === null) continue;
      ops.push(op);
      source.set(op, record);
      if (record.phase === 'final') finals.add(op);
    }
    operations += ops.length;
    const timeLeft = deadline - performance.now();
    if (timeLeft <= 0) {
      undecided.push(`${key}: no time left`);
      continue;
    }
    const result = checkOperations(single, ops, { maxSteps: limits.maxStepsPerKey, timeoutMs: timeLeft });
    if (result.verdict === 'unknown') undecided.push(`${key}: gave up (${result.reason}) after ${ops.length} operations`);
    else if (result.verdict === 'illegal') {
      const culprit = source.get(result.culprit);
      const text = `key ${key} (operation #${culprit?.id ?? '?'} on ${culprit?.node ?? '?'}):\n${renumber(result.explanation, ops, source)}`;
      if (finals.has(result.culprit)) lost.push(text);
      else violations.push(text);
    }
  }
  return { keys: byKey.size, operations, violations, lost, undecided, vanished: 0 };
}

/** Explanations number operations by their index in the key's list; the report numbers them by history id. */
function renumber<I, O>(explanation: string, ops: readonly Operation<I, O>[], source: Map<Operation<I, O>, OpRecord>): string {
  const ids = ops
    .map((op, i) => ({ op, i }))
    .filter(({ i }) => explanation.includes(`#${i} `))
    .map(({ op, i }) => `#${i}=${source.get(op)?.id ?? '?'}`);
  return `${explanation}\n  (history ids: ${ids.join(', ')})`;
}

const unknownTime = (op: OpRecord): number => (op.outcome === 'unknown' || op.ret === null ? Infinity : op.ret);

export function checkRegisters(records: readonly OpRecord[], volatile: boolean, limits: CheckerLimits): WorkloadVerdict {
  const model = volatile ? volatileRegisterModel : kvRegisterModel;
  let vanished = 0;
  const verdict = checkKeys<unknown, KvRegisterInput, KvRegisterOutput>(
    model as Model<unknown, KvRegisterInput, KvRegisterOutput>,
    records.filter((op) => op.workload === 'register'),
    (op) => {
      // A read that failed or timed out, and a write that definitely failed, constrain nothing.
      if (op.outcome === 'fail' || op.outcome === 'pending') return null;
      if (op.f === 'get' && op.outcome !== 'ok') return null;
      const input = op.input as { value?: string; expected?: string | null };
      const output = op.output as { value?: string | null; applied?: boolean } | null;
      let modelInput: KvRegisterInput;
      if (op.f === 'get') {
        modelInput = { kind: 'get', key: op.key };
        if (op.phase === 'final' && volatile && output?.value === null) vanished++;
      } else if (op.f === 'put') modelInput = { kind: 'put', key: op.key, value: input.value as string };
      else modelInput = { kind: 'cas', key: op.key, expected: input.expected ?? null, value: input.value as string };
      const modelOutput: KvRegisterOutput =
        op.outcome === 'unknown'
          ? { status: 'unknown' }
          : op.f === 'get'
            ? { status: 'ok', value: output?.value ?? null }
            : op.f === 'cas'
              ? { status: 'ok', applied: output?.applied === true }
              : { status: 'ok' };
      return { clientId: op.client, input: modelInput, output: modelOutput, call: op.call, return: unknownTime(op) };
    },
    limits,
  );
  return { ...verdict, vanished };
}

export function checkHashes(records: readonly OpRecord[], volatile: boolean, limits: CheckerLimits): WorkloadVerdict {
  let vanished = 0;
  const verdict = checkKeys<unknown, HashInput, HashOutput>(
    hashModel as Model<unknown, HashInput, HashOutput>,
    records.filter((op) => op.workload === 'hash'),
    (op) => {
      if (op.outcome === 'fail' || op.outcome === 'pending') return null;
      const reads = op.f === 'hget' || op.f === 'hgetall';
      if (reads && op.outcome !== 'ok') return null;
      const output = op.output as { added?: number; deleted?: number; value?: string | null; fields?: Record<string, string> } | null;
      // In a run with eviction, an empty final read may be an evicted key: it proves nothing.
      if (op.phase === 'final' && volatile && Object.keys(output?.fields ?? {}).length === 0) {
        vanished++;
        return null;
      }
      const input = op.input as { fields?: Record<string, string> | string[]; field?: string };
      let modelInput: HashInput;
      if (op.f === 'hset') modelInput = { kind: 'hset', key: op.key, fields: input.fields as Record<string, string> };
      else if (op.f === 'hdel') modelInput = { kind: 'hdel', key: op.key, fields: input.fields as string[] };
      else if (op.f === 'hget') modelInput = { kind: 'hget', key: op.key, field: input.field as string };
      else modelInput = { kind: 'hgetall', key: op.key };
      let modelOutput: HashOutput;
      if (op.outcome === 'unknown') modelOutput = { status: 'unknown' };
      else if (op.f === 'hset') modelOutput = { status: 'ok', added: output?.added ?? -1 };
      else if (op.f === 'hdel') modelOutput = { status: 'ok', deleted: output?.deleted ?? -1 };
      else if (op.f === 'hget') modelOutput = { status: 'ok', value: output?.value ?? null };
      else modelOutput = { status: 'ok', fields: output?.fields ?? {} };
      return { clientId: op.client, input: modelInput, output: modelOutput, call: op.call, return: unknownTime(op) };
    },
    limits,
  );
  return { ...verdict, vanished };
}

export function checkLists(records: readonly OpRecord[], volatile: boolean): WorkloadVerdict {
  const violations: string[] = [];
  const lost: string[] = [];
  let vanished = 0;
  let operations = 0;
  const byKey = groupByKey(records.filter((op) => op.workload === 'list'));
  for (const [key, group] of byKey) {
    const appends: ListAppend[] = [];
    const reads: ListRead[] = [];
    for (const op of group) {
      if (op.f === 'rpush') {
        if (op.outcome === 'pending') continue;
        const length = op.outcome === 'ok' ? (op.output as { length: number }).length : undefined;
        appends.push({
          id: op.id,
          value: (op.input as { value: string }).value,
          call: op.call,
          ret: op.outcome === 'unknown' ? null : op.ret,
          outcome: op.outcome,
          ...(length === undefined ? {} : { length }),
        });
      } else if (op.outcome === 'ok' && op.ret !== null) {
        const values = (op.output as { values: string[] }).values;
        if (op.phase === 'final' && volatile && values.length === 0) {
          vanished++;
          continue;
        }
        reads.push({ id: op.id, call: op.call, ret: op.ret, values, final: op.phase === 'final' });
      }
    }
    operations += appends.length + reads.length;
    const found: ListViolation[] = checkList(key, appends, reads);
    for (const v of found) (v.final ? lost : violations).push(`key ${key}: ${v.kind}: ${v.message}`);
  }
  return { keys: byKey.size, operations, violations, lost, undecided: [], vanished };
}

export function workloadCheck(name: string, verdict: WorkloadVerdict): CheckResult {
  const problems = [...verdict.violations, ...verdict.undecided.map((u) => `undecided: ${u}`)];
  const ok = problems.length === 0;
  const summary = ok
    ? `${verdict.operations} operations on ${verdict.keys} keys`
    : `${verdict.violations.length} violation(s), ${verdict.undecided.length} key(s) undecided, in ${verdict.operations} operations on ${verdict.keys} keys`;
  return { name, ok, summary, details: limitDetails(problems) };
}

export function lostWritesCheck(verdicts: Readonly<Record<string, WorkloadVerdict>>, finalReadsFailed: readonly string[]): CheckResult {
  const lost = Object.entries(verdicts).flatMap(([name, v]) => v.lost.map((l) => `${name}: ${l}`));
  const problems = [...lost, ...finalReadsFailed.map((k) => `final read failed: ${k}`)];
  const keys = Object.values(verdicts).reduce((n, v) => n + v.keys, 0);
  const vanished = Object.values(verdicts).reduce((n, v) => n + v.vanished, 0);
  const note = vanished > 0 ? ` (${vanished} expired or evicted)` : '';
  return {
    name: 'acknowledged writes survive healing',
    ok: problems.length === 0,
    summary: problems.length === 0 ? `final reads of ${keys} keys agree with every acknowledged write${note}` : `${lost.length} key(s) lost writes, ${finalReadsFailed.length} final read(s) failed`,
    details: limitDetails(problems),
  };
}

export interface ConvergenceResult {
  readonly ok: boolean;
  readonly appliedIndex: number | null;
  readonly digest: string | null;
  /** Per node: applied index and digest as last seen. */
  readonly nodes: Record<string, { applied: number; digest: string } | null>;
  readonly waitedMs: number;
}

export function convergenceCheck(result: ConvergenceResult): CheckResult {
  const seen = Object.entries(result.nodes).map(([id, s]) => (s === null ? `${id}: no answer` : `${id}: applied ${s.applied}, digest ${s.digest}`));
  return {
    name: 'replicas reach one state digest at one applied index',
    ok: result.ok,
    summary: result.ok
      ? `${Object.keys(result.nodes).length} replicas at index ${result.appliedIndex}, digest ${result.digest} (after ${(result.waitedMs / 1000).toFixed(1)}s)`
      : `replicas did not converge within ${(result.waitedMs / 1000).toFixed(1)}s`,
    details: result.ok ? '' : seen.join('\n'),
  };
}

export function recoveryCheck(faults: readonly FaultRecord[], finalRecoveryMs: number | null, boundMs: number): CheckResult {
  const problems: string[] = [];
  let worst = 0;
  for (const f of faults) {
    if (f.end === null) problems.push(`${f.nemesis} (${f.description}) was never healed${f.error === null ? '' : `: ${f.error}`}`);
    else if (f.recovered === null) problems.push(`no write succeeded within ${boundMs / 1000}s after healing ${f.nemesis} (${f.description})`);
    else worst = Math.max(worst, f.recovered - (f.cycleHealed ?? f.end));
  }
  if (finalRecoveryMs === null) problems.push(`no write succeeded within ${boundMs / 1000}s after the final heal`);
  else worst = Math.max(worst, finalRecoveryMs);
  if (worst > boundMs) problems.push(`slowest recovery took ${(worst / 1000).toFixed(1)}s`);
  return {
    name: `a leader and successful writes within ${boundMs / 1000}s of every heal`,
    ok: problems.length === 0,
    summary: problems.length === 0 ? `slowest recovery ${(worst / 1000).toFixed(2)}s over ${faults.length} faults` : `${problems.length} problem(s)`,
    details: limitDetails(problems),
  };
}

export function crashCheck(exits: readonly { id: string; at: number; code: number | null; signal: string | null; logTail: string }[], internalErrors: readonly string[]): CheckResult {
  const problems = [
    ...exits.map((e) => `${e.id} exited by itself at ${(e.at / 1000).toFixed(1)}s (code ${e.code}, signal ${e.signal}); its log ends:\n${e.logTail}`),
    ...internalErrors.map((e) => `internal error answered: ${e}`),
  ];
  return {
    name: 'no node crashed or answered an internal error',
    ok: problems.length === 0,
    summary: problems.length === 0 ? 'no unexpected exits, no INTERNAL/UNKNOWN/DATA_LOSS answers' : `${exits.length} unexpected exit(s), ${internalErrors.length} internal error(s)`,
    details: limitDetails(problems),
  };
}

function limitDetails(problems: readonly string[]): string {
  const shown = problems.slice(0, MAX_DETAILS);
  if (problems.length > MAX_DETAILS) shown.push(`... and ${problems.length - MAX_DETAILS} more`);
  return shown.join('\n\n');
}
