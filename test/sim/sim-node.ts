import { COMMIT_NOTICE_MS, NotLeaderError, Raft, RaftError, isLeaderMessage } from '../../src/raft/index.ts';
import type { HardState, Message, RaftOptions, Ready, SeededRandom } from '../../src/raft/index.ts';
import type { EventQueue } from './event-queue.ts';
import type { SafetyChecker } from './safety-checker.ts';
import type { DiskWrite, SimDisk, StoredSnapshot } from './sim-disk.ts';
import { SimKv, encodeWrite } from './sim-kv.ts';
import type { KvWrite } from './sim-kv.ts';

export type ClientReply =
  | { readonly status: 'ok'; readonly value?: string | null; readonly applied?: boolean }
  | { readonly status: 'fail'; readonly leaderHint: string };

/** How this node's machine behaves, drawn per seed. */
export interface NodeTiming {
  tickMs: number;
  diskMinMs: number;
  diskMaxMs: number;
}

export interface NodeEnvironment {
  readonly queue: EventQueue;
  readonly random: SeededRandom;
  readonly checker: SafetyChecker;
  readonly raftOptions: Omit<RaftOptions, 'id' | 'random'>;
  /** Applied entries beyond the last snapshot that trigger a new one. */
  readonly snapshotEvery: number;
  readonly keepEntries: number;
  sendPeer(from: string, to: string, message: Message, snapshot: StoredSnapshot | null): void;
  trace(line: string): void;
}

/**
 * One simulated server: a Raft core, its disk and its state machine, driven by
 * the same Ready loop a real node runs (persist, then send, then apply, then advance).
 */
export class SimNode {
  raft: Raft | null = null;
  kv = new SimKv();
  paused = false;
  /** Bumped on crash: events scheduled by an earlier incarnation are ignored. */
  private generation = 0;
  private readyBusy = false;
  private unsyncedHardState: HardState | null = null;
  private readonly pausedWork: (() => void)[] = [];
  private readonly pendingWrites = new Map<number, { term: number; reply: (r: ClientReply) => void }>();
  private readonly pendingReads = new Map<number, { key: string; reply: (r: ClientReply) => void }>();
  private readsAwaitingApply: { index: number; key: string; reply: (r: ClientReply) => void }[] = [];
  private readonly incomingSnapshots = new Map<number, StoredSnapshot>();
  private nextReadId = 1;
  crashes = 0;

  constructor(
    readonly id: string,
    readonly disk: SimDisk,
    readonly timing: NodeTiming,
    private readonly env: NodeEnvironment,
    private readonly random: SeededRandom,
  ) {}

  get isUp(): boolean {
    return this.raft !== null;
  }

  start(): void {
    const { initial, snapshotData } = this.disk.load();
    this.kv = snapshotData === null ? new SimKv() : SimKv.deserialize(snapshotData);
    if (initial.snapshot !== null) this.kv.appliedIndex = initial.snapshot.index;
    this.raft = new Raft({ ...this.env.raftOptions, id: this.id, random: this.random }, initial);
    this.paused = false;
    this.readyBusy = false;
    this.env.trace(`${this.id} start term=${initial.hardState.term} commit=${initial.hardState.commit} snapshot=${initial.snapshot?.index ?? 0}`);
    this.scheduleTick();
    this.pump();
  }

  crash(): void {
    if (this.raft === null) return;
    this.env.trace(`${this.id} crash`);
    this.crashes++;
    this.raft = null;
    this.generation++;
    this.commitNoticeArmed = false;
    this.readyBusy = false;
    this.unsyncedHardState = null;
    this.paused = false;
    this.pausedWork.length = 0;
    // Clients of this node hear nothing more: their requests time out as unknown.
    this.pendingWrites.clear();
    this.pendingReads.clear();
    this.readsAwaitingApply = [];
    this.incomingSnapshots.clear();
  }

  pause(): void {
    if (this.raft !== null) this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    const work = this.pausedWork.splice(0);
    for (const run of work) run();
    this.pump();
  }

  /** Runs `work` now, later if paused, never if this incarnation has crashed. */
  private whenRunning(generation: number, work: () => void): void {
    if (generation !== this.generation || this.raft === null) return;
    if (this.paused) this.pausedWork.push(work);
    else work();
  }

  deliver(message: Message, snapshot: StoredSnapshot | null): void {
    this.whenRunning(this.generation, () => {
      if (snapshot !== null) this.incomingSnapshots.set(snapshot.meta.index, snapshot);
      this.raft?.step(message);
      this.afterInput();
    });
  }

  private scheduleTick(): void {
    const generation = this.generation;
    this.env.queue.schedule(this.timing.tickMs, () => {
      if (generation !== this.generation) return;
      this.scheduleTick();
      // A paused process misses its ticks; it does not run them all on resume.
      if (this.paused || this.raft === null) return;
      this.raft.tick();
      this.afterInput();
    });
  }

  // ---- Client requests ----------------------------------------------------

  write(write: KvWrite, reply: (r: ClientReply) => void): void {
    this.whenRunning(this.generation, () => {
      const raft = this.raft as Raft;
      try {
        const proposal = raft.propose([encodeWrite(write)]);
        this.pendingWrites.set(proposal.firstIndex, { term: proposal.term, reply });
      } catch (error) {
        if (!(error instanceof RaftError)) throw error;
        reply({ status: 'fail', leaderHint: error instanceof NotLeaderError ? error.leader : '' });
        return;
      }
      this.pump();
    });
  }

  read(key: string, reply: (r: ClientReply) => void): void {
    this.whenRunning(this.generation, () => {
      const raft = this.raft as Raft;
      const requestId = this.nextReadId++;
      try {
        raft.readIndex(requestId);
      } catch (error) {
        if (!(error instanceof NotLeaderError)) throw error;
        reply({ status: 'fail', leaderHint: error.leader });
        return;
      }
      this.pendingReads.set(requestId, { key, reply });
      this.pump();
    });
  }

  // ---- The Ready loop -----------------------------------------------------

  /** Processes whatever the core has ready after a call made from outside (an operator action). */
  kick(): void {
    this.afterInput();
  }

  private ledTerm = 0;

  /** Checks leader completeness the moment this node wins, then runs the Ready loop. */
  private afterInput(): void {
    const raft = this.raft;
    if (raft !== null && raft.currentRole === 'leader' && raft.currentTerm !== this.ledTerm) {
      this.ledTerm = raft.currentTerm;
      this.env.checker.onLeader(this.id, raft.currentTerm);
      this.env.checker.checkLeaderLog(this.id, raft);
      this.env.trace(`${this.id} leader term=${raft.currentTerm}`);
    }
    this.pump();
  }

  private pump(): void {
    const raft = this.raft;
    if (raft !== null && !this.paused) this.scheduleCommitNotice(raft);
    if (raft === null || this.readyBusy || this.paused || !raft.hasReady()) return;
    const rd = raft.ready();
    this.readyBusy = true;
    const generation = this.generation;
    if (rd.hardState !== null) this.env.checker.onCommit(rd.hardState.commit, rd.hardState.term);
    let snapshot: StoredSnapshot | null = null;
    if (rd.snapshot !== null) {
      snapshot = this.incomingSnapshots.get(rd.snapshot.index) ?? null;
      if (snapshot === null) throw new Error(`${this.id}: told to install snapshot ${rd.snapshot.index} it never received`);
      this.incomingSnapshots.clear();
    }
    // As the server does: a hard state that only moves the commit index is not worth an fsync
    // (commit is recovered from the leader); it is written with the next write that syncs.
    const commitOnly = rd.hardState !== null && rd.entries.length === 0 && snapshot === null && this.disk.differsOnlyInCommit(rd.hardState);
    if (commitOnly) this.unsyncedHardState = rd.hardState;
    const hardState = commitOnly ? null : (rd.hardState ?? this.unsyncedHardState);
    if (!commitOnly) this.unsyncedHardState = null;
    const write: DiskWrite = { hardState, entries: rd.entries, snapshot };
    const needsSync = write.hardState !== null || write.entries.length > 0 || snapshot !== null;
    // A leader's own messages go out before its write, which then overlaps its followers' writes.
    const early = rd.messages.filter(isLeaderMessage);
    const late = rd.messages.filter((m) => !isLeaderMessage(m));
    this.sendMessages(early);
    // As the server does: committed entries are durable on a quorum, so they are applied before this
    // Ready's own write is synced, unless the Ready changes the role or installs a snapshot.
    const applyNow = needsSync && rd.softState === null && snapshot === null;
    if (applyNow) this.applyReady(rd, null);
    const finish = () => this.whenRunning(generation, () => this.finishReady(rd, write, late, applyNow));
    if (needsSync) {
      const latency = this.timing.diskMinMs + this.random.next() * (this.timing.diskMaxMs - this.timing.diskMinMs);
      this.env.queue.schedule(latency, finish);
    } else {
      finish();
    }
  }

  private commitNoticeArmed = false;

  /** As the server does: followers not told the new commit index by an append within COMMIT_NOTICE_MS are told then. */
  private scheduleCommitNotice(raft: Raft): void {
    if (this.commitNoticeArmed || !raft.commitNoticePending) return;
    this.commitNoticeArmed = true;
    const generation = this.generation;
    this.env.queue.schedule(COMMIT_NOTICE_MS, () => {
      if (generation !== this.generation) return;
      this.commitNoticeArmed = false;
      this.whenRunning(generation, () => {
        this.raft?.noticeCommit();
        this.pump();
      });
    });
  }

  private sendMessages(messages: readonly Message[]): void {
    const snapshotToSend = this.disk.latestSnapshot();
    for (const message of messages) {
      this.env.sendPeer(this.id, message.to, message, message.type === 'snapshot' ? snapshotToSend : null);
    }
  }

  private finishReady(rd: Ready, write: DiskWrite, messages: readonly Message[], applied: boolean): void {
    const raft = this.raft as Raft;
    this.disk.commit(write);
    this.sendMessages(messages);
    if (!applied) this.applyReady(rd, write.snapshot);
    raft.advance();
    this.readyBusy = false;
    this.maybeSnapshot();
    this.pump();
  }

  private applyReady(rd: Ready, snapshot: StoredSnapshot | null): void {
    const raft = this.raft as Raft;
    if (snapshot !== null) this.installSnapshot(snapshot);
    for (const entry of rd.committedEntries) this.apply(entry);
    for (const aborted of rd.abortedReads) {
      const pending = this.pendingReads.get(aborted);
      this.pendingReads.delete(aborted);
      pending?.reply({ status: 'fail', leaderHint: raft.leader });
    }
    for (const { requestId, index } of rd.readStates) {
      const pending = this.pendingReads.get(requestId);
      if (pending === undefined) continue;
      this.pendingReads.delete(requestId);
      this.readsAwaitingApply.push({ index, key: pending.key, reply: pending.reply });
    }
    this.serveReads();
  }

  private installSnapshot(snapshot: StoredSnapshot): void {
    this.env.trace(`${this.id} install snapshot ${snapshot.meta.index}`);
    this.kv = SimKv.deserialize(snapshot.data);
    this.kv.appliedIndex = snapshot.meta.index;
    this.env.checker.onDigest(this.id, snapshot.meta.index, this.kv.digest());
    // Our proposals up to here may or may not be in it: their clients will time out (unknown).
    for (const index of this.pendingWrites.keys()) if (index <= snapshot.meta.index) this.pendingWrites.delete(index);
  }

  private apply(entry: Parameters<SimKv['apply']>[0]): void {
    this.env.checker.onApply(this.id, entry);
    const result = this.kv.apply(entry);
    if (entry.type === 'noop') this.failSupersededWrites(entry.index, entry.term);
    const pending = this.pendingWrites.get(entry.index);
    if (pending === undefined) return;
    this.pendingWrites.delete(entry.index);
    // Another entry took our index: ours can never commit now, so this failure is definite.
    if (pending.term !== entry.term || result === null) pending.reply({ status: 'fail', leaderHint: this.raft?.leader ?? '' });
    else pending.reply({ status: 'ok', applied: result.applied });
  }

  /**
   * A committed entry of term T at index j means no log can hold an entry of an
   * older term at any index >= j (terms never decrease along a log), so our
   * proposals there can never commit. Every new term starts with a no-op, so
   * checking at no-ops finds them all.
   */
  private failSupersededWrites(index: number, term: number): void {
    for (const [proposed, pending] of this.pendingWrites) {
      if (proposed >= index && pending.term < term) {
        this.pendingWrites.delete(proposed);
        pending.reply({ status: 'fail', leaderHint: this.raft?.leader ?? '' });
      }
    }
  }

  private serveReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const waiting: typeof this.readsAwaitingApply = [];
    for (const read of this.readsAwaitingApply) {
      if (read.index <= this.kv.appliedIndex) read.reply({ status: 'ok', value: this.kv.get(read.key) });
      else waiting.push(read);
    }
    this.readsAwaitingApply = waiting;
  }

  private maybeSnapshot(): void {
    const raft = this.raft;
    if (raft === null) return;
    const status = raft.status();
    if (status.applied - status.snapshotIndex < this.env.snapshotEvery) return;
    const data = this.kv.serialize();
    this.env.checker.onDigest(this.id, this.kv.appliedIndex, this.kv.digest());
    const meta = raft.compact(status.applied, this.env.keepEntries);
    this.disk.saveSnapshot({ meta, data }, this.env.keepEntries);
    this.env.trace(`${this.id} snapshot at ${meta.index}`);
  }

  /** Proposals and reads still waiting for an answer here. */
  get pendingCount(): number {
    return this.pendingWrites.size + this.pendingReads.size + this.readsAwaitingApply.length;
  }
}
