/**
 * One chaos run: start a cluster behind the fault proxy, drive concurrent
 * clients, inject faults from a seeded schedule (alone and mixed), heal,
 * read every key back, wait for the replicas to converge, then check the
 * history and write the report.
 *
 * The seed fixes every choice the suite makes (which faults, when, on whom,
 * which operations on which keys); the timing of a real cluster does not
 * replay exactly, so a rerun reproduces the schedule, not the interleaving.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SeededRandom } from '../../src/raft/index.ts';
import { sleep } from '../support/cluster-harness.ts';
import { checkHashes, checkLists, checkRegisters, convergenceCheck, crashCheck, lostWritesCheck, recoveryCheck, workloadCheck } from './checks.ts';
import type { CheckResult, ConvergenceResult, WorkloadVerdict } from './checks.ts';
import { classifyError, describeError, isInternalError } from './client.ts';
import { ChaosCluster } from './cluster.ts';
import { History } from './history.ts';
import type { FaultRecord, OpRecord } from './history.ts';
import { GROUP, HEAL_ORDER, START, between, ensureMember, pick, reconcileMembership, shuffle } from './nemesis.ts';
import type { NemesisContext, NemesisName, StartedFault } from './nemesis.ts';
import { rerunCommand } from './options.ts';
import type { ChaosOptions, ChaosResult, Figures } from './options.ts';
import { FaultProxy, HEALTHY } from './proxy.ts';
import { writeReport } from './report.ts';
import { ClientState, FillerWorkload, HashWorkload, ListWorkload, RegisterWorkload } from './workloads.ts';
import type { PlannedOp, Workload } from './workloads.ts';

/** Independent seeded streams, so that e.g. client timing cannot change the fault schedule. */
function stream(seed: number, purpose: number): SeededRandom {
  return new SeededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(purpose + 1, 0x85ebca6b)) >>> 0);
}

const WRITES = new Set(['put', 'cas', 'rpush', 'hset', 'hdel', 'fill']);

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const origin = performance.now();
  const clock = () => performance.now() - origin;
  const history = new History(clock);
  const say = (text: string) => options.progress(`[${(clock() / 1000).toFixed(1).padStart(6)}s] ${text}`);
  const reportDir = options.out ?? mkdtempSync(join(tmpdir(), `quorumkv-chaos-${options.seed}-`));
  mkdirSync(reportDir, { recursive: true });
  const dataRoot = mkdtempSync(join(tmpdir(), 'quorumkv-chaos-data-'));
  const proxyRng = stream(options.seed, 1);
  const proxy = new FaultProxy(() => proxyRng.next());
  const internalErrors: string[] = [];
  const checks: CheckResult[] = [];
  let cluster: ChaosCluster | null = null;
  let convergence: ConvergenceResult | null = null;
  let finalRecoveryMs: number | null = null;
  let finalReadsFailed: string[] = [];
  let finalStatuses: Record<string, unknown> = {};
  // If the process exits or is interrupted under us, the nodes must not outlive it.
  const killOnExit = () => {
    cluster?.killAllNow();
    rmSync(dataRoot, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    killOnExit();
    // Once: the signal sent again now does what it would have done without us.
    process.kill(process.pid, signal);
  };
  process.on('exit', killOnExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  say(`seed ${options.seed}: ${options.nodes} nodes, ${options.clients} clients, ${options.durationS}s, nemeses ${options.nemeses.join(',')}${options.ttlEviction ? `, TTLs and a ${options.maxMemory} memory budget` : ''}`);
  say(`report: ${reportDir}`);
  try {
    const flags = [
      '--log-level', 'info',
      '--heartbeat-ms', String(options.heartbeatMs),
      '--election-ms', String(options.electionMs),
      '--snapshot-entries', String(options.snapshotEntries),
      '--snapshot-keep-entries', String(Math.max(100, Math.floor(options.snapshotEntries / 4))),
      ...(options.ttlEviction ? ['--max-memory', options.maxMemory, '--eviction', 'lru'] : []),
    ];
    const started = await ChaosCluster.start({ size: options.nodes, root: dataRoot, logDir: join(reportDir, 'nodes'), proxy, flags, origin: clock });
    cluster = started;
    const firstLeader = await started.waitForLeader(60_000);
    say(`cluster up, leader ${firstLeader}`);

    const driver = new WorkloadDriver(started, history, options, internalErrors);
    driver.start();
    const ctx: NemesisContext = {
      cluster: started,
      proxy,
      rng: stream(options.seed, 2),
      electionMs: options.electionMs,
      healTimeoutMs: Math.max(options.recoveryBoundMs, 30_000),
      removed: new Set(),
      log: (text) => {
        history.event(text);
        say(text);
      },
    };
    const ticker = setInterval(() => say(progressLine(history)), options.progressEveryMs);
    try {
      await sleep(2000);
      await nemesisLoop(ctx, history, options, clock, say);
      say('healing everything');
      await restoreAll(ctx);
      finalRecoveryMs = await probeRecovery(started, history, options.recoveryBoundMs, stream(options.seed, 3));
      say(finalRecoveryMs === null ? 'no write succeeded after the final heal' : `writes succeed ${(finalRecoveryMs / 1000).toFixed(2)}s after the final heal`);
      // Clients go on for a while on the healed cluster: recovery under load is part of the history.
      await sleep(3000);
    } finally {
      clearInterval(ticker);
      await driver.stop();
    }
    say(`workloads stopped: ${progressLine(history)}`);
    finalReadsFailed = await finalReads(started, history, options);
    say(`final reads done (${finalReadsFailed.length} failed)`);
    convergence = await waitForConvergence(started, 60_000);
    finalStatuses = Object.fromEntries(await started.statuses(2000));
    say(convergence.ok ? `replicas converged at index ${convergence.appliedIndex}` : 'replicas did not converge');
  } catch (error) {
    checks.push({ name: 'the run completed', ok: false, summary: describeError(error), details: error instanceof Error ? (error.stack ?? '') : '' });
    say(`run aborted: ${describeError(error)}`);
  } finally {
    process.off('exit', killOnExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    const unexpected = cluster?.unexpectedExits ?? [];
    await cluster?.stop();
    await proxy.close();
    rmSync(dataRoot, { recursive: true, force: true });
    // Exit records pick up their log tails a moment after the exit.
    if (unexpected.length > 0) await sleep(300);
  }

  say('checking the history');
  const verdicts: Record<string, WorkloadVerdict> = {
    register: checkRegisters(history.ops, options.ttlEviction, options.checker),
    hash: checkHashes(history.ops, options.ttlEviction, options.checker),
    list: checkLists(history.ops, options.ttlEviction),
  };
  checks.push(
    workloadCheck(`register history linearizable${options.ttlEviction ? ' (keys may expire or be evicted)' : ''}`, verdicts['register'] as WorkloadVerdict),
    workloadCheck('hash history linearizable', verdicts['hash'] as WorkloadVerdict),
    workloadCheck('list appends and reads consistent', verdicts['list'] as WorkloadVerdict),
    lostWritesCheck(verdicts, finalReadsFailed),
    convergenceCheck(convergence ?? { ok: false, appliedIndex: null, digest: null, nodes: {}, waitedMs: 0 }),
    recoveryCheck(history.faults, finalRecoveryMs, options.recoveryBoundMs),
    crashCheck(cluster?.unexpectedExits ?? [], internalErrors),
  );
  const figures = computeFigures(history, clock(), internalErrors.length);
  const passed = checks.filter((c) => c.ok).length;
  const failed = checks.length - passed;
  const rerun = rerunCommand(options);
  try {
    writeReport(reportDir, { options, checks, figures, history, rerun, statuses: finalStatuses, proxyLinks: proxy.allLinks().length });
  } catch (error) {
    // The verdicts stand without the report: say why it is missing rather than lose them.
    say(`could not write the report: ${describeError(error)}`);
  }
  return { passed, failed, checks, figures, reportDir, rerun };
}

// ---- the fault schedule ---------------------------------------------------------

async function nemesisLoop(ctx: NemesisContext, history: History, options: ChaosOptions, clock: () => number, say: (text: string) => void): Promise<void> {
  const endAt = options.durationS * 1000;
  // Long enough that a paused or stalled leader is replaced (elections time out within 2x electionMs).
  const minHold = Math.max(2.5 * options.electionMs, 2500);
  const maxHold = Math.max(minHold + 1000, 8000);
  const enabled = options.nemeses;
  while (clock() < endAt - minHold) {
    try {
      await reconcileMembership(ctx);
    } catch (error) {
      say(`! membership not reconciled: ${describeError(error)}`);
    }
    const wanted = pick(ctx.rng, [1, 1, 1, 2, 2, 3]);
    const chosen: NemesisName[] = [];
    for (const name of shuffle(ctx.rng, enabled)) {
      if (chosen.length >= wanted) break;
      if (chosen.some((c) => GROUP[c] === GROUP[name])) continue;
      chosen.push(name);
    }
    const active: { record: FaultRecord; started: StartedFault; name: NemesisName }[] = [];
    for (const name of chosen) {
      const at = clock();
      try {
        const started = await START[name](ctx);
        if (started === null) {
          say(`${name}: not applicable now`);
          continue;
        }
        const record = history.addFault({ nemesis: name, description: started.description, targets: started.targets, leaderKilled: started.leaderKilled }, at);
        active.push({ record, started, name });
        say(`+ ${name}: ${started.description}`);
      } catch (error) {
        say(`${name} failed to start: ${describeError(error)}`);
        history.event(`${name} failed to start: ${describeError(error)}`);
      }
    }
    await sleep(Math.min(between(ctx.rng, minHold, maxHold), Math.max(0, endAt - clock())));
    const order = [...active].sort((a, b) => HEAL_ORDER.indexOf(GROUP[a.name]) - HEAL_ORDER.indexOf(GROUP[b.name]));
    for (const { record, started, name } of order) {
      record.healStart = clock();
      try {
        await started.heal();
        record.end = clock();
        say(`- ${name} healed`);
      } catch (error) {
        record.error = describeError(error);
        say(`! ${name} did not heal: ${record.error}`);
      }
    }
    if (active.length > 0) {
      const healedAt = clock();
      const recovery = await probeRecovery(ctx.cluster, history, options.recoveryBoundMs, ctx.rng);
      for (const { record } of active) {
        record.cycleHealed = healedAt;
        record.recovered = recovery === null || record.end === null ? null : healedAt + recovery;
      }
      say(recovery === null ? `! no write succeeded within ${options.recoveryBoundMs / 1000}s of healing` : `  writes succeed ${(recovery / 1000).toFixed(2)}s after healing`);
    }
    await sleep(between(ctx.rng, 1000, 3000));
  }
}

/** Undoes whatever a failed heal left behind: links, faults files, paused or stopped nodes, removed members. */
async function restoreAll(ctx: NemesisContext): Promise<void> {
  const { cluster, proxy } = ctx;
  for (const link of proxy.allLinks()) proxy.set(link.from, link.to, HEALTHY);
  for (const id of cluster.ids) {
    const faults = cluster.node(id).faults;
    if (faults.clockOffsetMs !== 0 || faults.persistDelayMs !== 0) cluster.setFaults(id, { clockOffsetMs: 0, persistDelayMs: 0 });
    cluster.resume(id);
    if (!ctx.removed.has(id) && cluster.node(id).state === 'stopped') cluster.launch(id);
  }
  for (const id of [...ctx.removed]) {
    try {
      await ensureMember(ctx, id);
    } catch (error) {
      ctx.log(`could not bring ${id} back: ${describeError(error)}`);
    }
  }
  try {
    await reconcileMembership(ctx);
  } catch (error) {
    ctx.log(`could not reconcile the membership: ${describeError(error)}`);
  }
}

/**
 * Writes fresh keys on every running node, round after round, until one is
 * acknowledged; resolves with the time that took, or null past the bound.
 * The probes go into the history as register writes: the final reads check them too.
 */
async function probeRecovery(cluster: ChaosCluster, history: History, boundMs: number, rng: SeededRandom): Promise<number | null> {
  const start = history.now();
  while (history.now() - start < boundMs) {
    const ids = cluster.ids.filter((id) => cluster.node(id).state === 'running');
    const attempts = ids.map(async (node) => {
      const value = `probe.${history.ops.length}.${rng.int(1_000_000)}`;
      const key = `probe/${value}`;
      const record = history.invoke({ client: -1, workload: 'register', phase: 'run', node, f: 'put', key, input: { value, ttlMs: 0 } });
      try {
        await cluster.client(node).call('Set', { key, value: Buffer.from(value) }, 1000);
        history.complete(record, 'ok', {});
        return true;
      } catch (error) {
        history.complete(record, classifyError(error), null, describeError(error));
        return false;
      }
    });
    const results = await Promise.all(attempts);
    if (results.some((ok) => ok)) return history.now() - start;
    await sleep(100);
  }
  return null;
}

// ---- clients ------------------------------------------------------------------

class WorkloadDriver {
  private running = false;
  private loops: Promise<void>[] = [];
  /** Which workload each client runs. */
  readonly assignment: Workload[] = [];

  /** Session ids differ between runs, in case a cluster were ever reused. */
  private readonly sessionPrefix: string;

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly history: History,
    private readonly options: ChaosOptions,
    private readonly internalErrors: string[],
  ) {
    this.sessionPrefix = `chaos-${options.seed}-${Date.now().toString(36)}`;
    const workloadOptions = { keyLifeMs: options.keyLifeMs, volatile: options.ttlEviction };
    const register = new RegisterWorkload(workloadOptions);
    const list = new ListWorkload(workloadOptions);
    const hash = new HashWorkload(workloadOptions);
    // Registers get the most clients: compare-and-set races are where linearizability bugs show.
    const pattern = [register, list, hash, register, hash, list, register];
    for (let i = 0; i < options.clients; i++) this.assignment.push(pattern[i % pattern.length] as Workload);
    if (options.ttlEviction) this.assignment.push(new FillerWorkload());
  }

  start(): void {
    this.running = true;
    this.loops = this.assignment.map((workload, i) => this.loop(i, workload));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(clientId: number, workload: Workload): Promise<void> {
    const state = new ClientState(clientId, stream(this.options.seed, 100 + clientId));
    let failedOn: string | null = null;
    while (this.running) {
      // Clients do not know about pauses or partitions: any node whose process runs may be asked,
      // but, like a real client, not the one that just failed them if there is another.
      const running = this.cluster.ids.filter((id) => this.cluster.node(id).state !== 'stopped');
      const nodes = running.length > 1 ? running.filter((id) => id !== failedOn) : running;
      if (nodes.length === 0) {
        await sleep(100);
        continue;
      }
      const node = pick(state.rng, nodes);
      const planned = workload.next(state, this.history.now());
      const session = planned.exactlyOnce === true ? { clientId: `${this.sessionPrefix}-${clientId}`, sequence: state.nextSequence() } : null;
      const ok = await execute(this.cluster, this.history, planned, clientId, node, 'run', this.options.opTimeoutMs, this.internalErrors, session);
      if (ok !== null) {
        failedOn = null;
        workload.observe?.(state, planned, ok);
      } else {
        failedOn = node;
        // A node that fails fast (down, no leader) must not make its client spin.
        await sleep(20 + state.rng.int(60));
      }
    }
  }
}

/** Retries of a session write whose outcome is unknown, each on another node. */
const SESSION_RETRIES = 2;

/**
 * Sends one planned operation and records it as one operation of the
 * history; resolves with its output when it succeeded, else null. With a
 * session, an unknown outcome is retried with the same sequence: the
 * operation then spans every attempt, and is unknown unless one succeeds.
 */
async function execute(
  cluster: ChaosCluster,
  history: History,
  planned: PlannedOp,
  client: number,
  node: string,
  phase: 'run' | 'final',
  timeoutMs: number,
  internalErrors: string[],
  session: { clientId: string; sequence: number } | null = null,
): Promise<OpRecord['output'] | null> {
  const record = history.invoke({ client, workload: planned.workload, phase, node, f: planned.f, key: planned.key, input: session === null ? planned.input : { ...(planned.input as object), sequence: session.sequence } });
  const request = session === null ? planned.request : { ...planned.request, client_id: session.clientId, sequence: session.sequence };
  let unknown = false;
  let target = node;
  for (let attempt = 0; ; attempt++) {
    try {
      const reply = await cluster.client(target).call(planned.method, request, timeoutMs);
      const output = planned.read(reply);
      history.complete(record, 'ok', output, attempt === 0 ? null : `after ${attempt} retries`);
      return output;
    } catch (error) {
      if (isInternalError(error)) internalErrors.push(`${target} ${planned.method} ${planned.key}: ${describeError(error)}`);
      const outcome = classifyError(error);
      unknown ||= outcome === 'unknown';
      const others = cluster.ids.filter((id) => id !== target && cluster.node(id).state !== 'stopped');
      if (session === null || !unknown || attempt >= SESSION_RETRIES || others.length === 0) {
        history.complete(record, unknown ? 'unknown' : 'fail', null, describeError(error));
        return null;
      }
      target = others[(attempt + session.sequence) % others.length] as string;
      await sleep(100);
    }
  }
}

/** Reads every key once more, on a healed cluster; resolves with the keys no read could reach. */
async function finalReads(cluster: ChaosCluster, history: History, options: ChaosOptions): Promise<string[]> {
  const workloads = new Map<string, Workload>([
    ['register', new RegisterWorkload({ keyLifeMs: options.keyLifeMs, volatile: options.ttlEviction })],
    ['list', new ListWorkload({ keyLifeMs: options.keyLifeMs, volatile: options.ttlEviction })],
    ['hash', new HashWorkload({ keyLifeMs: options.keyLifeMs, volatile: options.ttlEviction })],
  ]);
  const todo: PlannedOp[] = [];
  const seen = new Set<string>();
  for (const op of history.ops) {
    const workload = workloads.get(op.workload);
    if (workload === undefined || seen.has(op.key) || !WRITES.has(op.f)) continue;
    seen.add(op.key);
    const read = workload.finalRead(op.key);
    if (read !== null) todo.push(read);
  }
  const failed: string[] = [];
  const deadline = performance.now() + 120_000;
  const rng = stream(options.seed, 4);
  const worker = async () => {
    for (let planned = todo.pop(); planned !== undefined; planned = todo.pop()) {
      let done = false;
      while (!done && performance.now() < deadline) {
        const nodes = cluster.ids.filter((id) => cluster.node(id).state === 'running');
        if (nodes.length === 0) break;
        done = (await execute(cluster, history, planned, -1, pick(rng, nodes), 'final', 3000, [])) !== null;
        if (!done) await sleep(100);
      }
      if (!done) failed.push(planned.key);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return failed;
}

async function waitForConvergence(cluster: ChaosCluster, timeoutMs: number): Promise<ConvergenceResult> {
  const start = performance.now();
  let nodes: ConvergenceResult['nodes'] = {};
  while (performance.now() - start < timeoutMs) {
    const statuses = await cluster.statuses(2000);
    nodes = {};
    for (const id of cluster.ids) {
      const s = statuses.get(id);
      nodes[id] = s === undefined ? null : { applied: Number(s['applied_index']), digest: String(s['state_digest']) };
    }
    const answers = Object.values(nodes);
    const first = answers[0];
    if (answers.every((s) => s !== null) && first && answers.every((s) => s?.applied === first.applied && s.digest === first.digest)) {
      return { ok: true, appliedIndex: first.applied, digest: first.digest, nodes, waitedMs: performance.now() - start };
    }
    await sleep(200);
  }
  return { ok: false, appliedIndex: null, digest: null, nodes, waitedMs: performance.now() - start };
}

// ---- figures --------------------------------------------------------------------

function progressLine(history: History): string {
  let ok = 0;
  let fail = 0;
  let unknown = 0;
  for (const op of history.ops) {
    if (op.outcome === 'ok') ok++;
    else if (op.outcome === 'fail') fail++;
    else if (op.outcome === 'unknown') unknown++;
  }
  const active = history.faults.filter((f) => f.end === null && f.error === null).map((f) => f.nemesis);
  return `ops ${history.ops.length} (ok ${ok}, fail ${fail}, unknown ${unknown}), faults ${history.faults.length}${active.length > 0 ? `, active: ${active.join(', ')}` : ''}`;
}

export function computeFigures(history: History, durationMs: number, internalErrors: number): Figures {
  const byWorkload: Figures['byWorkload'] = {};
  let ok = 0;
  let failed = 0;
  let unknown = 0;
  for (const op of history.ops) {
    const w = (byWorkload[op.workload] ??= { ok: 0, fail: 0, unknown: 0 });
    if (op.outcome === 'ok') {
      ok++;
      w.ok++;
    } else if (op.outcome === 'fail') {
      failed++;
      w.fail++;
    } else {
      unknown++;
      w.unknown++;
    }
  }
  const faultsByNemesis: Record<string, number> = {};
  for (const f of history.faults) faultsByNemesis[f.nemesis] = (faultsByNemesis[f.nemesis] ?? 0) + 1;
  // Writes acknowledged, by the time they were invoked, for the unavailability after each leader kill.
  const writes = history.ops.filter((op) => op.outcome === 'ok' && op.ret !== null && WRITES.has(op.f) && op.phase === 'run').sort((a, b) => a.call - b.call);
  let longest: number | null = null;
  let longestAlone: number | null = null;
  for (const f of history.faults) {
    if (!f.leaderKilled) continue;
    let lo = 0;
    let hi = writes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((writes[mid] as OpRecord).call < f.start) lo = mid + 1;
      else hi = mid;
    }
    let first: number | null = null;
    for (let i = lo; i < writes.length; i++) {
      const ret = (writes[i] as OpRecord).ret as number;
      if (first === null || ret < first) first = ret;
      // Writes invoked much later cannot answer earlier than those already seen.
      if ((writes[i] as OpRecord).call > (first ?? Infinity)) break;
    }
    if (first === null) continue;
    const unavailable = first - f.start;
    longest = Math.max(longest ?? 0, unavailable);
    const overlapped = history.faults.some((g) => g !== f && g.start < first && (g.end ?? Infinity) > f.start);
    if (!overlapped) longestAlone = Math.max(longestAlone ?? 0, unavailable);
  }
  let slowest: number | null = null;
  for (const f of history.faults) if (f.cycleHealed !== null && f.recovered !== null) slowest = Math.max(slowest ?? 0, f.recovered - f.cycleHealed);
  return {
    operations: history.ops.length,
    ok,
    failed,
    unknown,
    byWorkload,
    faultsInjected: history.faults.length,
    faultsByNemesis,
    longestLeaderKillUnavailabilityMs: longest,
    longestLoneLeaderKillUnavailabilityMs: longestAlone,
    slowestRecoveryMs: slowest,
    durationMs,
    internalErrors,
  };
}
