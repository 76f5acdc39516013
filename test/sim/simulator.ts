import { writeFileSync } from 'node:fs';
import { SeededRandom, bootstrapState, joiningState } from '../../src/raft/index.ts';
import type { ConfState, Message, NodeId, Raft } from '../../src/raft/index.ts';
import { HistoryRecorder, checkOperations } from '../support/linearizability.ts';
import { kvRegisterModel } from '../support/models.ts';
import type { KvRegisterInput, KvRegisterOutput } from '../support/models.ts';
import { EventQueue } from './event-queue.ts';
import { SafetyChecker, SafetyViolation } from './safety-checker.ts';
import { SimDisk } from './sim-disk.ts';
import type { StoredSnapshot } from './sim-disk.ts';
import { SimNetwork } from './sim-network.ts';
import { SimNode } from './sim-node.ts';
import type { ClientReply, NodeEnvironment } from './sim-node.ts';

/** Which faults a seed injects and how hard: each seed draws its own mix (swarm testing). */
export interface FaultProfile {
  readonly voters: number;
  readonly spareNodes: number;
  readonly clients: number;
  readonly keys: number;
  readonly lossRate: number;
  readonly duplicateRate: number;
  readonly maxDelayMs: number;
  readonly crashes: boolean;
  readonly pauses: boolean;
  readonly partitions: boolean;
  readonly oneWayPartitions: boolean;
  readonly membershipChanges: boolean;
  readonly leaderTransfers: boolean;
  readonly diskStalls: boolean;
  readonly clockDrift: number;
  readonly nemesisIntervalMs: number;
  readonly snapshotEvery: number;
  readonly keepEntries: number;
  readonly maxInflight: number;
  readonly safetyPhaseMs: number;
}

export interface SimulationOptions {
  /** Bound on how long after healing the cluster may take to converge. */
  readonly livenessBoundMs?: number;
  readonly trace?: (line: string) => void;
  /** Overrides the drawn safety-phase length (shorter runs for CI). */
  readonly safetyPhaseMs?: number;
}

export interface SimulationResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly failure: string | null;
  readonly profile: FaultProfile;
  readonly stats: {
    simulatedMs: number;
    operations: number;
    unknownOutcomes: number;
    leadersElected: number;
    crashes: number;
    messages: number;
    messagesDropped: number;
    highestCommitted: number;
  };
  /** The last trace lines, to debug a failure. */
  readonly traceTail: readonly string[];
}

const ELECTION_TICKS = 10;
const TICK_MS = 100;
const OPS_PER_KEY_GENERATION = 200;
const UNKNOWNS_PER_KEY_GENERATION = 8;

export function drawProfile(random: SeededRandom): FaultProfile {
  const voters = random.pick([3, 3, 5, 5, 7]);
  const swarm = () => random.chance(0.5);
  const faultsOn = random.chance(0.9);
  return {
    voters,
    spareNodes: random.int(3),
    clients: 2 + random.int(7),
    keys: 1 + random.int(5),
    lossRate: faultsOn && swarm() ? random.next() * 0.15 : 0,
    duplicateRate: faultsOn && swarm() ? random.next() * 0.1 : 0,
    maxDelayMs: random.pick([2, 5, 20, 100, 400]),
    crashes: faultsOn && swarm(),
    pauses: faultsOn && swarm(),
    partitions: faultsOn && swarm(),
    oneWayPartitions: faultsOn && swarm(),
    membershipChanges: faultsOn && swarm(),
    leaderTransfers: faultsOn && swarm(),
    diskStalls: faultsOn && swarm(),
    clockDrift: random.chance(0.5) ? random.next() * 0.3 : 0,
    nemesisIntervalMs: 200 + random.int(2000),
    snapshotEvery: random.pick([10, 30, 100, 1000]),
    keepEntries: random.pick([0, 1, 5, 50]),
    maxInflight: random.pick([1, 4, 256]),
    safetyPhaseMs: 10_000 + random.int(20_000),
  };
}

/**
 * One seed of the deterministic simulation: a cluster of Raft cores with a
 * simulated network, clock and disk, concurrent clients, and faults drawn from
 * the seed. Phase one injects faults and checks safety as it goes; phase two
 * heals everything and requires the cluster to converge within a bound. Then the
 * client history must be linearizable.
 */
export function runSimulation(seed: number, options: SimulationOptions = {}): SimulationResult {
  const sim = new Simulation(seed, options);
  return sim.run();
}

class Simulation {
  private readonly random: SeededRandom;
  private readonly profile: FaultProfile;
  private readonly queue = new EventQueue();
  private readonly network: SimNetwork;
  private readonly checker = new SafetyChecker();
  private readonly nodes = new Map<NodeId, SimNode>();
  private readonly history = new HistoryRecorder<KvRegisterInput, KvRegisterOutput>();
  private readonly traceTail: string[] = [];
  private readonly env: NodeEnvironment;
  private readonly nodeRandom: SeededRandom;
  private readonly clientRandom: SeededRandom;
  private readonly nemesisRandom: SeededRandom;
  /** Nodes removed from the membership and shut down; they keep their disks and may be added back. */
  private readonly retired = new Set<NodeId>();
  private healed = false;
  private clientsStopped = false;
  private activeClients = 0;
  private unknownOutcomes = 0;
  private keyGeneration = 0;
  private opsInGeneration = 0;
  private unknownsInGeneration = 0;
  private readonly keysUsed = new Set<string>();
  private readonly safetyPhaseMs: number;

  constructor(
    private readonly seed: number,
    private readonly options: SimulationOptions,
  ) {
    this.random = new SeededRandom(seed);
    this.profile = drawProfile(this.random.fork());
    this.network = new SimNetwork(this.queue, this.random.fork());
    this.nodeRandom = this.random.fork();
    this.clientRandom = this.random.fork();
    this.nemesisRandom = this.random.fork();
    this.safetyPhaseMs = options.safetyPhaseMs ?? this.profile.safetyPhaseMs;
    this.network.faults = {
      lossRate: this.profile.lossRate,
      duplicateRate: this.profile.duplicateRate,
      minDelayMs: 0.1,
      maxDelayMs: this.profile.maxDelayMs,
    };
    this.env = {
      queue: this.queue,
      random: this.random,
      checker: this.checker,
      raftOptions: { electionTicks: ELECTION_TICKS, heartbeatTicks: 1, maxInflightMessages: this.profile.maxInflight, maxEntriesPerMessage: 64, lazyCommitNotice: true },
      snapshotEvery: this.profile.snapshotEvery,
      keepEntries: this.profile.keepEntries,
      sendPeer: (from, to, message, snapshot) => this.sendPeer(from, to, message, snapshot),
      trace: (line) => this.trace(line),
    };
  }

  run(): SimulationResult {
    let failure: string | null = null;
    try {
      this.startCluster();
      for (let c = 1; c <= this.profile.clients; c++) this.startClient(c);
      this.scheduleNemesis();
      this.queue.runUntil(this.safetyPhaseMs);
      this.heal();
      this.awaitConvergence();
      this.finalReads();
      this.checkHistory();
    } catch (error) {
      failure = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      if (!(error instanceof SafetyViolation || error instanceof LivenessFailure || error instanceof LinearizabilityFailure)) {
        failure += `\n${(error as Error).stack ?? ''}`;
      }
    }
    let crashes = 0;
    for (const node of this.nodes.values()) crashes += node.crashes;
    return {
      seed: this.seed,
      ok: failure === null,
      failure,
      profile: this.profile,
      stats: {
        simulatedMs: Math.round(this.queue.now),
        operations: this.history.operations({ status: 'unknown' }).length,
        unknownOutcomes: this.unknownOutcomes,
        leadersElected: this.checker.leadersElected,
        crashes,
        messages: this.network.sent,
        messagesDropped: this.network.dropped,
        highestCommitted: this.checker.highestApplied,
      },
      traceTail: this.traceTail.slice(),
    };
  }

  private trace(line: string): void {
    const stamped = `${(this.queue.now / 1000).toFixed(3)}s ${line}`;
    this.options.trace?.(stamped);
    this.traceTail.push(stamped);
    if (this.traceTail.length > 80) this.traceTail.shift();
  }

  // ---- Cluster ------------------------------------------------------------

  private nodeId(n: number): NodeId {
    return `n${n}`;
  }

  private startCluster(): void {
    const voters = Array.from({ length: this.profile.voters }, (_, i) => this.nodeId(i + 1));
    this.trace(`seed ${this.seed}: ${JSON.stringify(this.profile)}`);
    for (const id of voters) this.createNode(id, new SimDisk(bootstrapState(voters), null)).start();
  }

  private createNode(id: NodeId, disk: SimDisk): SimNode {
    const drift = 1 + (this.nodeRandom.next() * 2 - 1) * this.profile.clockDrift;
    const node = new SimNode(id, disk, { tickMs: TICK_MS * drift, diskMinMs: 0.1, diskMaxMs: 3 }, this.env, this.nodeRandom.fork());
    this.nodes.set(id, node);
    return node;
  }

  private sendPeer(from: NodeId, to: NodeId, message: Message, snapshot: StoredSnapshot | null): void {
    this.network.send(from, to, () => this.nodes.get(to)?.deliver(message, snapshot));
  }

  /** The node with the highest term that believes it leads. */
  private leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const node of this.nodes.values()) {
      const raft = node.raft;
      if (raft === null || node.paused || raft.currentRole !== 'leader') continue;
      if (best === null || raft.currentTerm > (best.raft as Raft).currentTerm) best = node;
    }
    return best;
  }

  /** The membership as the most advanced live node knows it. */
  private membership(): ConfState {
    let best: Raft | null = null;
    for (const node of this.nodes.values()) {
      const raft = node.raft;
      if (raft !== null && (best === null || raft.status().commit > best.status().commit)) best = raft;
    }
    return best?.membership ?? { voters: [], learners: [] };
  }

  // ---- Clients ------------------------------------------------------------

  private startClient(clientId: number): void {
    this.activeClients++;
    let leaderHint: NodeId = '';
    let sequence = 0;
    const next = () => {
      if (this.clientsStopped) {
        this.activeClients--;
        return;
      }
      const key = this.nextKey();
      const roll = this.clientRandom.next();
      let input: KvRegisterInput;
      if (roll < 0.4) input = { kind: 'get', key };
      else if (roll < 0.75) input = { kind: 'put', key, value: `c${clientId}.${++sequence}` };
      else {
        const expected = this.clientRandom.chance(0.2) ? null : `c${this.clientRandom.int(this.profile.clients) + 1}.${this.clientRandom.int(sequence + 3)}`;
        input = { kind: 'cas', key, expected, value: `c${clientId}.${++sequence}` };
      }
      const target = leaderHint !== '' && this.nodes.has(leaderHint) ? leaderHint : this.clientRandom.pick([...this.nodes.keys()]);
      this.request(clientId, target, input, 1000 + this.clientRandom.int(3000), (hint) => {
        if (hint !== undefined) leaderHint = hint;
        // Like a real client, back off after a timeout or a failure instead of hammering.
        const backoffMs = hint === undefined ? this.clientRandom.next() * 20 : 50 + this.clientRandom.int(500);
        this.queue.schedule(backoffMs, next);
      });
    };
    this.queue.schedule(this.clientRandom.next() * 100, next);
  }

  /**
   * Clients move on to fresh keys every so many operations: checking
   * linearizability is exponential in the worst case, and short per-key
   * histories keep every seed's check fast while still covering every fault.
   */
  private nextKey(): string {
    // Unknown outcomes are what make the search expensive, so they end a generation sooner.
    if (++this.opsInGeneration > OPS_PER_KEY_GENERATION || this.unknownsInGeneration >= UNKNOWNS_PER_KEY_GENERATION) {
      this.keyGeneration++;
      this.opsInGeneration = 1;
      this.unknownsInGeneration = 0;
    }
    const key = `k${this.keyGeneration}.${this.clientRandom.int(this.profile.keys)}`;
    this.keysUsed.add(key);
    return key;
  }

  /**
   * Sends one request and records it. `done` gets the leader hint after a
   * definite failure, and undefined otherwise.
   */
  private request(clientId: number, target: NodeId, input: KvRegisterInput, timeoutMs: number, done: (leaderHint?: NodeId) => void): void {
    const op = this.history.invoke(clientId, input, this.queue.now);
    let finished = false;
    const finish = (reply: ClientReply | null) => {
      if (finished) return;
      finished = true;
      if (reply === null) {
        // No answer: a write may or may not have happened; a read tells us nothing.
        if (input.kind === 'get') this.history.discard(op);
        else {
          this.unknownOutcomes++;
          this.unknownsInGeneration++;
        }
        done('');
      } else if (reply.status === 'fail') {
        this.history.discard(op);
        done(reply.leaderHint);
      } else {
        const output: KvRegisterOutput =
          input.kind === 'get' ? { status: 'ok', value: reply.value ?? null } : input.kind === 'cas' ? { status: 'ok', applied: reply.applied ?? false } : { status: 'ok' };
        this.history.complete(op, output, this.queue.now);
        done();
      }
    };
    const node = this.nodes.get(target);
    const oneWay = () => 0.1 + this.clientRandom.next() * 2;
    const reply = (r: ClientReply) => this.queue.schedule(oneWay(), () => finish(r));
    this.queue.schedule(oneWay(), () => {
      if (node === undefined || !node.isUp) return;
      if (input.kind === 'get') node.read(input.key, reply);
      else node.write(input.kind === 'put' ? { kind: 'put', key: input.key, value: input.value } : input, reply);
    });
    this.queue.schedule(timeoutMs, () => finish(null));
  }

  // ---- Faults -------------------------------------------------------------

  private scheduleNemesis(): void {
    const actions: (() => void)[] = [];
    const p = this.profile;
    if (p.crashes) actions.push(() => this.crashSomething());
    if (p.pauses) actions.push(() => this.pauseSomething());
    if (p.partitions) actions.push(() => this.partitionSomething());
    if (p.oneWayPartitions) actions.push(() => this.oneWayPartition());
    if (p.membershipChanges) actions.push(() => this.changeMembership(), () => this.changeMembership());
    if (p.leaderTransfers) actions.push(() => this.transferLeadership());
    if (p.diskStalls) actions.push(() => this.stallDisk());
    if (p.membershipChanges) actions.push(() => this.retireRemoved());
    if (actions.length === 0) return;
    const loop = () => {
      if (this.healed) return;
      this.nemesisRandom.pick(actions)();
      this.queue.schedule(this.nemesisRandom.int(p.nemesisIntervalMs) + 50, loop);
    };
    this.queue.schedule(1000 + this.nemesisRandom.int(p.nemesisIntervalMs), loop);
  }

  private upNodes(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.isUp);
  }

  private crashSomething(): void {
    const up = this.upNodes();
    if (up.length === 0) return;
    const r = this.nemesisRandom.next();
    let victims: SimNode[];
    if (r < 0.3) {
      const leader = this.leader();
      victims = leader === null ? [] : [leader];
    } else if (r < 0.45) {
      const count = Math.floor(up.length / 2) + 1;
      victims = [...up].sort(() => this.nemesisRandom.next() - 0.5).slice(0, count);
    } else {
      victims = [this.nemesisRandom.pick(up)];
    }
    for (const victim of victims) {
      victim.crash();
      const downFor = 100 + this.nemesisRandom.int(4000);
      this.queue.schedule(downFor, () => {
        if (!victim.isUp && !this.retired.has(victim.id)) victim.start();
      });
    }
  }

  private pauseSomething(): void {
    const up = this.upNodes().filter((n) => !n.paused);
    if (up.length === 0) return;
    const leader = this.leader();
    const victim = leader !== null && this.nemesisRandom.chance(0.4) ? leader : this.nemesisRandom.pick(up);
    this.trace(`${victim.id} pause`);
    victim.pause();
    this.queue.schedule(500 + this.nemesisRandom.int(4000), () => {
      this.trace(`${victim.id} resume`);
      victim.resume();
    });
  }

  private partitionSomething(): void {
    const ids = [...this.nodes.keys()];
    let side: NodeId[];
    const leader = this.leader();
    if (leader !== null && this.nemesisRandom.chance(0.3)) side = [leader.id];
    else side = ids.filter(() => this.nemesisRandom.chance(0.5));
    const other = ids.filter((id) => !side.includes(id));
    if (side.length === 0 || other.length === 0) return;
    this.trace(`partition [${side.join(',')}] | [${other.join(',')}]`);
    this.network.partition(side, other);
    this.queue.schedule(300 + this.nemesisRandom.int(6000), () => {
      if (this.healed) return;
      this.trace('partitions healed');
      this.network.healPartitions();
    });
  }

  private oneWayPartition(): void {
    const ids = [...this.nodes.keys()];
    const from = this.nemesisRandom.pick(ids);
    const to = this.nemesisRandom.pick(ids);
    if (from === to) return;
    this.trace(`one-way partition ${from} -> ${to}`);
    this.network.blockOneWay(from, to);
    this.queue.schedule(300 + this.nemesisRandom.int(5000), () => {
      if (this.healed) return;
      this.trace('partitions healed');
      this.network.healPartitions();
    });
  }

  private stallDisk(): void {
    const up = this.upNodes();
    if (up.length === 0) return;
    const victim = this.nemesisRandom.pick(up);
    const stallMs = 50 + this.nemesisRandom.int(1500);
    this.trace(`${victim.id} disk stalls up to ${stallMs}ms`);
    victim.timing.diskMaxMs = stallMs;
    this.queue.schedule(500 + this.nemesisRandom.int(4000), () => {
      victim.timing.diskMaxMs = 3;
    });
  }

  private transferLeadership(): void {
    const leader = this.leader();
    if (leader === null) return;
    const raft = leader.raft as Raft;
    const others = raft.membership.voters.filter((id) => id !== leader.id);
    if (others.length === 0) return;
    const to = this.nemesisRandom.pick(others);
    this.trace(`transfer leadership ${leader.id} -> ${to}`);
    try {
      raft.transferLeadership(to);
    } catch (error) {
      this.trace(`transfer refused: ${(error as Error).message}`);
    }
    leader.kick();
  }

  /** Like an operator: add a learner, promote a caught-up learner, or remove a member. */
  private changeMembership(): void {
    const leader = this.leader();
    if (leader === null) return;
    const raft = leader.raft as Raft;
    const conf = raft.membership;
    const maxId = this.profile.voters + this.profile.spareNodes;
    const candidates: (() => void)[] = [];
    const propose = (type: 'addLearner' | 'promote' | 'remove', nodeId: NodeId, then?: () => void) => {
      try {
        raft.proposeConfChange({ type, nodeId, context: '' });
        this.trace(`propose ${type} ${nodeId} via ${leader.id}`);
        then?.();
      } catch (error) {
        this.trace(`${type} ${nodeId} refused: ${(error as Error).message}`);
      }
      leader.kick();
    };
    for (let n = 1; n <= maxId; n++) {
      const id = this.nodeId(n);
      const member = conf.voters.includes(id) || conf.learners.includes(id);
      if (!member && conf.voters.length + conf.learners.length < 7 && (!this.nodes.has(id) || this.retired.has(id))) {
        candidates.push(() =>
          propose('addLearner', id, () => {
            const existing = this.nodes.get(id);
            if (existing !== undefined) {
              this.retired.delete(id);
              if (!existing.isUp) existing.start();
            } else {
              this.createNode(id, new SimDisk(joiningState(), null)).start();
            }
          }),
        );
      }
    }
    for (const id of conf.learners) candidates.push(() => propose('promote', id));
    if (conf.voters.length > 3) for (const id of conf.voters) candidates.push(() => propose('remove', id));
    for (const id of conf.learners) candidates.push(() => propose('remove', id));
    if (candidates.length > 0) this.nemesisRandom.pick(candidates)();
  }

  /** Shuts down nodes that are no longer members, some time after their removal. */
  private retireRemoved(): void {
    const conf = this.membership();
    for (const node of this.nodes.values()) {
      const member = conf.voters.includes(node.id) || conf.learners.includes(node.id);
      if (!member && node.isUp && !this.retired.has(node.id)) {
        this.trace(`${node.id} retired (no longer a member)`);
        this.retired.add(node.id);
        node.crash();
      }
    }
  }

  // ---- Healing and liveness -----------------------------------------------

  private heal(): void {
    this.healed = true;
    this.trace('--- healing: every fault off ---');
    this.network.heal();
    for (const node of this.nodes.values()) {
      node.timing.diskMaxMs = 3;
      if (node.paused) node.resume();
    }
    this.reviveMembers();
  }

  /** Restarts every member that is down, as an operator would once the faults are over. */
  private reviveMembers(): void {
    const conf = this.membership();
    for (const node of this.nodes.values()) {
      const member = conf.voters.includes(node.id) || conf.learners.includes(node.id);
      if (member && !node.isUp) {
        this.retired.delete(node.id);
        node.start();
      }
    }
  }

  /** After healing: a leader, every member caught up, every client answered, all within the bound. */
  private awaitConvergence(): void {
    const bound = this.options.livenessBoundMs ?? 30_000;
    const deadline = this.queue.now + bound;
    let reason = '';
    const converged = (): boolean => {
      this.retireRemoved();
      this.reviveMembers();
      const leader = this.leader();
      if (leader === null) {
        reason = 'no leader';
        return false;
      }
      const status = (leader.raft as Raft).status();
      const members = [...status.conf.voters, ...status.conf.learners];
      for (const id of members) {
        const node = this.nodes.get(id);
        const raft = node?.raft;
        if (node === undefined || raft === null || raft === undefined) {
          reason = `member ${id} is down`;
          return false;
        }
        const s = raft.status();
        if (s.applied !== status.commit || s.lastIndex !== status.lastIndex || node.pendingCount > 0) {
          reason = `member ${id} at applied ${s.applied}/last ${s.lastIndex} (${node.pendingCount} requests pending), leader ${leader.id} at commit ${status.commit}/last ${status.lastIndex}`;
          return false;
        }
      }
      if (status.commit !== status.lastIndex) {
        reason = `leader ${leader.id} has uncommitted entries (${status.commit} < ${status.lastIndex})`;
        return false;
      }
      return true;
    };
    // Let the clients keep going for a while against the healed cluster, then stop them.
    this.queue.runUntil(this.queue.now + 3000);
    this.clientsStopped = true;
    let done = false;
    while (this.queue.now < deadline && !done) {
      this.queue.runUntil(Math.min(deadline, this.queue.now + 250));
      done = converged() && this.activeClients === 0;
    }
    if (!done) throw new LivenessFailure(`not converged ${bound / 1000}s after healing: ${this.activeClients > 0 ? `${this.activeClients} clients still waiting; ` : ''}${reason}`);
    const leader = this.leader() as SimNode;
    for (const id of [...(leader.raft as Raft).membership.voters, ...(leader.raft as Raft).membership.learners]) {
      const node = this.nodes.get(id) as SimNode;
      this.checker.onDigest(id, node.kv.appliedIndex, node.kv.digest());
    }
  }

  /** Reads every key once more through the leader: acknowledged writes must all be there. */
  private finalReads(): void {
    const leader = this.leader();
    if (leader === null) throw new LivenessFailure('no leader for the final reads');
    let clientId = this.profile.clients;
    let outstanding = 0;
    for (const key of this.keysUsed) {
      outstanding++;
      this.request(++clientId, leader.id, { kind: 'get', key }, 5000, (hint) => {
        if (hint !== undefined) throw new LivenessFailure(`final read of ${key} failed at ${leader.id} (hint '${hint}')`);
        outstanding--;
      });
    }
    this.queue.runUntil(this.queue.now + 6000, () => outstanding === 0);
    if (outstanding > 0) throw new LivenessFailure(`${outstanding} final reads unanswered`);
  }

  private checkHistory(): void {
    const ops = this.history.operations({ status: 'unknown' });
    const dumpTo = process.env['SIM_DUMP_HISTORY'];
    if (dumpTo !== undefined) writeFileSync(dumpTo, JSON.stringify(ops.map((op) => ({ ...op, return: op.return === Infinity ? null : op.return }))));
    const result = checkOperations(kvRegisterModel, ops, { maxSteps: Number(process.env.SIM_MAX_STEPS ?? 5_000_000) });
    if (result.verdict === 'illegal') throw new LinearizabilityFailure(`client history is not linearizable:\n${result.explanation}`);
    if (result.verdict === 'unknown') throw new LinearizabilityFailure(`linearizability check gave up (${result.reason}) on key partition ${result.partition}`);
  }
}

export class LivenessFailure extends Error {
  override name = 'LivenessFailure';
}

export class LinearizabilityFailure extends Error {
  override name = 'LinearizabilityFailure';
}
