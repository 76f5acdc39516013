/**
 * Drives one Raft core with real time, SQLite storage and the state machine:
 * a tick timer, and the Ready loop (persist, then send, then apply, then
 * advance). Client writes become log entries and resolve when applied here;
 * linearizable reads wait for a ReadIndex and for apply to reach it.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { COMMIT_NOTICE_MS, NotLeaderError, Raft, SeededRandom, decodeConfChange, isLeaderMessage } from '../raft/index.ts';
import type { ConfChange, ConfState, Entry, HardState, Message, NodeId, Proposal, Ready, SnapshotMeta } from '../raft/index.ts';
import type { ClientSession, Command, Result } from '../state/index.ts';
import { StateMachine, encodeEntry } from '../state/index.ts';
import type { StateMachineConfig } from '../state/index.ts';
import { ReadPriority } from '../storage/index.ts';
import type { LoadedState, NodeStorage, StoredSnapshot } from '../storage/index.ts';
import { DeadlineError, LeadershipLostError, NodeStoppedError, OutcomeUnknownError, StateRestoringError } from './errors.ts';
import type { Metrics } from './metrics.ts';
import { restoreHere, restoreInWorker } from './state-restore.ts';

export interface MessageSender {
  /** Queues messages; they go out at the end of this event-loop turn, or at flush(). */
  send(messages: readonly Message[]): void;
  flush(): void;
}

export interface RaftNodeOptions {
  readonly id: NodeId;
  readonly storage: NodeStorage;
  readonly stateConfig: Partial<StateMachineConfig>;
  readonly logger: Logger;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly maxInflightAppends: number;
  readonly snapshotEntries: number;
  /** A snapshot is also taken once this many bytes of entry data were applied since the last one. */
  readonly snapshotBytes: number;
  readonly snapshotKeepEntries: number;
  /** Wall-clock milliseconds; injected so tests can move time. */
  readonly now: () => number;
  readonly metrics: Metrics;
  /** TEST ONLY (fault injection): awaited before a restored state is taken into use, to make a restore as slow as a test needs. */
  readonly restoreGate?: () => Promise<void>;
}

/** What the node tells its observers after each applied entry. */
export interface AppliedEntry {
  readonly entry: Entry;
  /** The state machine's result for a normal entry; null for no-ops and membership changes. */
  readonly result: Result | null;
}

const OK: Result = { kind: 'ok' };

/**
 * How long one slice of log compaction may hold the event loop. A DELETE's
 * cost per entry grows with the entry's size (2,000 entries of 300 bytes
 * took about 1.3 ms, of 4 KiB 3-5 ms), so slices are sized by time.
 */
const COMPACT_SLICE_MS = 2;
/** Log rows deleted per slice before any slice was timed, and the bounds of the size. */
const COMPACT_FIRST_SLICE_ENTRIES = 1_000;
const COMPACT_MIN_SLICE_ENTRIES = 100;
const COMPACT_MAX_SLICE_ENTRIES = 10_000;
/** Full slices whose per-entry cost the size is estimated from (the cheapest of them). */
const COMPACT_COST_WINDOW = 8;

interface PendingWrite {
  readonly term: number;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: Error) => void;
  /** Fails the write with DEADLINE_EXCEEDED; cleared when it settles. */
  readonly timer: NodeJS.Timeout;
}

interface PendingApply {
  readonly index: number;
  readonly resolve: () => void;
}

export class RaftNode {
  readonly id: NodeId;
  /** Null while the state is restored from the snapshot at start-up (see `state`). */
  private current: StateMachine | null;
  /**
   * Settles once the state restored from the snapshot is in use (at once when
   * there is none); rejects when the restore failed, and the node must stop.
   */
  readonly restored: Promise<void>;
  /**
   * Lowered once this node follows a leader while it restores: its snapshot
   * reader thread then gives way on a busy machine, to the leader's restore
   * first of all (a cluster restarted at once serves when its leader's state
   * is restored, and three restores share the cores). A free core it still uses.
   */
  private readonly restorePriority = new ReadPriority();
  private readonly raft: Raft;
  private readonly storage: NodeStorage;
  private readonly logger: Logger;
  private readonly options: RaftNodeOptions;
  private sender: MessageSender = { send() {}, flush() {} };
  private tickTimer: NodeJS.Timeout | null = null;
  private commitNoticeTimer: NodeJS.Timeout | null = null;
  private processScheduled = false;
  /** A Ready is waiting for its fsync; proposals and messages go on into the core meanwhile. */
  private readyInFlight = false;
  private stopped = false;
  /** Leader only: the last timestamp put in an entry; entry time never goes backwards. */
  private lastStampMs = 0;
  /** Leader only: index and stamp of this term's entries not applied yet, oldest first (stamps never decrease). */
  private unappliedStamps: { index: number; timeMs: number }[] = [];
  private readonly pendingWrites = new Map<number, PendingWrite>();
  private readonly pendingReads = new Map<number, { resolve: (index: number) => void; reject: (error: Error) => void }>();
  private nextReadId = 1;
  private waitingForApply: PendingApply[] = [];
  /** Snapshots received from the leader, waiting for the core to install them. */
  private readonly receivedSnapshots = new Map<number, StoredSnapshot>();
  private snapshotInProgress = false;
  private appliedBytesSinceSnapshot = 0;
  /** Log rows the next compaction slice deletes (see COMPACT_SLICE_MS). */
  private compactSliceEntries = COMPACT_FIRST_SLICE_ENTRIES;
  /** ms per entry of the last few full compaction slices. */
  private readonly compactCostsMs: number[] = [];
  /** A commit-only hard state not yet written (see handleReady). */
  private unsyncedHardState: HardState | null = null;
  private readonly appliedListeners: ((applied: AppliedEntry) => void)[] = [];
  private readonly leaderListeners: ((leader: NodeId, term: number) => void)[] = [];
  private readonly membershipListeners: ((change: ConfChange, index: number) => void)[] = [];
  private readonly snapshotListeners: ((index: number, membership: ConfState) => void)[] = [];

  /**
   * Loads the log and builds the node, not yet started, and begins restoring
   * the state machine from the newest snapshot (read on a worker thread; see
   * `restored`). Raft runs meanwhile: the core needs only the snapshot's
   * index and term and the log, so the node votes, appends, acknowledges and
   * commits while it restores; only apply waits (the core holds committed
   * entries back), and so do the reads and writes that need the state.
   */
  static open(options: RaftNodeOptions): RaftNode {
    return new RaftNode(options, options.storage.load());
  }

  private constructor(options: RaftNodeOptions, loaded: LoadedState) {
    this.options = options;
    this.id = options.id;
    this.storage = options.storage;
    this.logger = options.logger;
    this.raft = new Raft(
      {
        id: options.id,
        // Election jitter only needs to differ between nodes and restarts.
        random: new SeededRandom(hashSeed(`${options.id}:${options.now()}`)),
        electionTicks: options.electionTicks,
        heartbeatTicks: 1,
        maxInflightMessages: options.maxInflightAppends,
        lazyCommitNotice: true,
        logger: options.logger,
      },
      { hardState: loaded.hardState, snapshot: loaded.snapshot, entries: loaded.entries },
    );
    if (loaded.snapshot === null) {
      this.current = new StateMachine(options.stateConfig);
      this.current.trackChanges(true);
      this.restored = Promise.resolve();
    } else {
      this.current = null;
      this.raft.setApplyPaused(true);
      this.restored = this.restore(loaded.snapshot);
    }
  }

  /**
   * The state machine. While it is being restored at start-up this throws
   * StateRestoringError (UNAVAILABLE): nothing may read an empty or partial
   * state in its place. Check `restoring` first where that is not an error.
   */
  get state(): StateMachine {
    if (this.current === null) throw new StateRestoringError(this.storage.latestSnapshot?.index ?? 0);
    return this.current;
  }

  /** The state is still being restored from the snapshot at start-up. */
  get restoring(): boolean {
    return this.current === null;
  }

  private async restore(file: StoredSnapshot): Promise<void> {
    const began = performance.now();
    // Raft runs beside the restore: the longest the event loop was held tells whether heartbeats could be answered in time.
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    let state: StateMachine;
    try {
      state = await restoreInWorker(this.storage, file, this.options.stateConfig, this.restorePriority);
      loopDelay.disable();
      await this.options.restoreGate?.();
    } catch (error) {
      throw new Error(`restoring the state from snapshot ${file.path} failed: ${(error as Error).message}`, { cause: error });
    } finally {
      loopDelay.disable();
    }
    if (this.stopped) return;
    this.logger.info(
      { index: file.index, keys: state.stats().storedKeys, ms: Math.round(performance.now() - began), maxEventLoopDelayMs: Math.round(loopDelay.max / 1e6) },
      'state restored from snapshot',
    );
    this.current = state;
    if (this.tickTimer !== null) this.storage.startSnapshotWriter();
    // The entries committed meanwhile are applied now, in order, from the one after the snapshot.
    this.raft.setApplyPaused(false);
    this.scheduleProcess();
  }

  setSender(sender: MessageSender): void {
    this.sender = sender;
  }

  start(): void {
    // As etcd's --initial-election-tick-advance: after a (re)start the first election timeout is only
    // its random part (1 to electionTicks ticks), so a cluster restarted at once elects sooner. Timing
    // never affects election safety; and pre-vote keeps a node that campaigns before it hears a running
    // leader from disrupting it (members in the leader's lease refuse). No tick here reaches a timeout.
    for (let tick = 1; tick < this.options.electionTicks; tick++) this.raft.tick();
    // While restoring, the writer's start-up would take CPU from the restore; it starts after it.
    if (!this.restoring) this.storage.startSnapshotWriter();
    this.tickTimer = setInterval(() => {
      this.raft.tick();
      this.process();
    }, this.options.tickMs);
    this.scheduleProcess();
  }

  stop(): void {
    if (this.stopped) return;
    this.flushHardState();
    this.stopped = true;
    if (this.tickTimer !== null) clearInterval(this.tickTimer);
    if (this.commitNoticeTimer !== null) clearTimeout(this.commitNoticeTimer);
    const error = new NodeStoppedError();
    for (const [index, pending] of this.pendingWrites) this.failWrite(index, pending, error);
    for (const pending of this.pendingReads.values()) pending.reject(error);
    this.pendingWrites.clear();
    this.pendingReads.clear();
  }

  onApplied(listener: (applied: AppliedEntry) => void): void {
    this.appliedListeners.push(listener);
  }

  onLeaderChange(listener: (leader: NodeId, term: number) => void): void {
    this.leaderListeners.push(listener);
  }

  onMembershipChange(listener: (change: ConfChange, index: number) => void): void {
    this.membershipListeners.push(listener);
  }

  /** The state was replaced by a snapshot from the leader (as of `index`, with that membership). */
  onSnapshotInstalled(listener: (index: number, membership: ConfState) => void): void {
    this.snapshotListeners.push(listener);
  }

  // ---- Inputs -------------------------------------------------------------

  step(messages: readonly Message[]): void {
    if (this.stopped) return;
    for (const message of messages) this.raft.step(message);
    this.scheduleProcess();
  }

  /** A snapshot file the transport finished receiving and verifying. */
  snapshotReceived(file: StoredSnapshot): void {
    this.receivedSnapshots.set(file.index, file);
  }

  reportUnreachable(peer: NodeId): void {
    this.raft.reportUnreachable(peer);
  }

  /** The transport's stream to `peer` was accepted: a campaign asks it again what was lost while it was down. */
  reportReachable(peer: NodeId): void {
    if (this.stopped) return;
    this.raft.reportReachable(peer);
    this.scheduleProcess();
  }

  /**
   * `by` refused our traffic: it committed this node's removal at `index`.
   * The core believes it unless it knows better (see Raft.reportRemoved) and
   * then stops campaigning; this node logs why, once, and stays up serving
   * nothing that needs a leader, until it is added back or stopped. (etcd
   * stops a removed member; one that stays up is not restarted in a loop by
   * a supervisor, and its logs and status stay readable.)
   */
  removedFromCluster(by: NodeId, index: number, reason: string): void {
    if (this.stopped) return;
    const already = this.raft.removedAtIndex !== 0;
    if (!this.raft.reportRemoved(index)) {
      this.logger.debug({ by, index }, 'a member that has not caught up yet thinks this node is removed: ignored');
      return;
    }
    if (!already) {
      this.logger.error(
        { by, removedAt: index, reason },
        `this node (${this.id}) was removed from the cluster at index ${index}: it stops campaigning. To bring it back, add it again (AddMember) and restart it with an empty data dir and --join`,
      );
    }
    this.scheduleProcess();
  }

  /** The index at which a member told us this node was removed, or null. */
  get removedAtIndex(): number | null {
    const index = this.raft.removedAtIndex;
    return index === 0 ? null : index;
  }

  reportSnapshot(peer: NodeId, ok: boolean): void {
    this.raft.reportSnapshot(peer, ok);
    this.scheduleProcess();
  }

  /**
   * Proposes a write; resolves with its result once it is committed and
   * applied here. Throws NotLeaderError on a follower (the caller forwards).
   */
  propose(command: Command, session: ClientSession | null, timeoutMs: number): Promise<Result> {
    this.assertRunning();
    // A leader still restoring cannot stamp the entry (the stamp never goes behind the applied log time): it waits.
    if (this.current === null) return this.afterRestore(timeoutMs, (leftMs) => this.propose(command, session, leftMs));
    const timeMs = this.stamp();
    const data = encodeEntry({ timeMs, session, command });
    const proposal = this.raft.propose([data]);
    this.dropAppliedStamps();
    this.unappliedStamps.push({ index: proposal.lastIndex, timeMs });
    this.options.metrics.proposals++;
    this.scheduleProcess();
    return this.awaitProposal(proposal, timeoutMs);
  }

  /** Proposes a membership change; resolves with its log index once it is committed and applied here. */
  async proposeConfChange(change: ConfChange, timeoutMs: number): Promise<number> {
    this.assertRunning();
    const proposal = this.raft.proposeConfChange(change);
    this.scheduleProcess();
    await this.awaitProposal(proposal, timeoutMs);
    return proposal.lastIndex;
  }

  transferLeadership(to: NodeId): void {
    this.raft.transferLeadership(to);
    this.scheduleProcess();
  }

  /** Leader only: confirms leadership with a quorum and resolves with the index reads must wait for. */
  readIndex(timeoutMs: number): Promise<number> {
    this.assertRunning();
    const requestId = this.nextReadId++;
    this.raft.readIndex(requestId);
    this.scheduleProcess();
    return withTimeout(
      new Promise<number>((resolve, reject) => this.pendingReads.set(requestId, { resolve, reject })),
      timeoutMs,
      () => this.pendingReads.delete(requestId),
    );
  }

  /** Resolves once the state restored at start-up is in use (see `restored`); DeadlineError after `timeoutMs`. */
  waitRestored(timeoutMs: number): Promise<void> {
    if (this.current !== null) return Promise.resolve();
    return withTimeout(this.restored, timeoutMs, () => {});
  }

  /** Resolves once the state machine has applied `index` (never while it is being restored). */
  waitApplied(index: number, timeoutMs: number): Promise<void> {
    if (this.current !== null && this.current.lastAppliedIndex >= index) return Promise.resolve();
    let entry: PendingApply;
    return withTimeout(
      new Promise<void>((resolve) => {
        entry = { index, resolve };
        this.waitingForApply.push(entry);
      }),
      timeoutMs,
      () => {
        this.waitingForApply = this.waitingForApply.filter((w) => w !== entry);
      },
    );
  }

  /** Takes a snapshot now (unless one is being written); resolves with it. */
  async snapshotNow(): Promise<StoredSnapshot> {
    await this.takeSnapshot();
    const latest = this.storage.latestSnapshot;
    if (latest === null) throw new Error('no snapshot could be taken: nothing is applied yet');
    return latest;
  }

  // ---- Introspection ------------------------------------------------------

  get status() {
    return this.raft.status();
  }

  get isLeader(): boolean {
    return this.raft.currentRole === 'leader';
  }

  /** Leader only: the node leadership is being handed to, '' when none (a transfer that timed out is aborted). */
  get transferTarget(): NodeId {
    return this.raft.transferTarget;
  }

  get leader(): NodeId {
    return this.raft.leader;
  }

  /** The membership as of the commit index. */
  get membership(): ConfState {
    return this.raft.membership;
  }

  get commitIndex(): number {
    return this.raft.commitIndex;
  }

  /** Log time for reads here: never behind what was applied, so an expired key stays expired. */
  readTimeMs(): number {
    return Math.max(this.options.now(), this.state.logTimeMs);
  }

  /**
   * Log time for a linearizable read on the leader, after ReadIndex and apply.
   * Not later than the stamp of any of our entries still to be applied: those
   * apply after this read, at their own time, so a read that judged expiry by
   * a later clock could report a key gone that such an entry then finds alive
   * (the chaos suite's seed 22). Our later entries are stamped no earlier.
   */
  linearizableReadTimeMs(): number {
    if (!this.isLeader) return this.state.logTimeMs;
    this.dropAppliedStamps();
    const oldest = this.unappliedStamps[0]?.timeMs ?? Infinity;
    const time = Math.max(Math.min(this.options.now(), oldest), this.state.logTimeMs);
    this.lastStampMs = Math.max(this.lastStampMs, time);
    return time;
  }

  // ---- The Ready loop -----------------------------------------------------

  private scheduleProcess(): void {
    if (this.processScheduled || this.stopped) return;
    this.processScheduled = true;
    // Everything that arrives in this turn of the event loop goes into one Ready: batching.
    setImmediate(() => {
      this.processScheduled = false;
      this.process();
    });
  }

  private process(): void {
    if (this.stopped || this.readyInFlight) return;
    while (this.raft.hasReady()) {
      const rd = this.raft.ready();
      const snapshotFile = rd.snapshot === null ? null : this.takeReceivedSnapshot(rd.snapshot);
      const began = performance.now();
      const durable = this.persistReady(rd, snapshotFile);
      if (durable !== null) {
        // Committed entries are durable on a quorum already (the core counts this node's own
        // entries only once they are synced), so they are applied now: waiting for this Ready's
        // fsync would hold their clients' answers for one more fsync. A Ready that changes the
        // role or installs a snapshot keeps the plain order.
        const applyNow = rd.softState === null && snapshotFile === null;
        if (applyNow) this.applyReady(rd, null);
        // The rest of this Ready waits for the fsync; meanwhile the event loop serves clients
        // and peers, and what they bring goes into the next Ready: a bigger batch per fsync.
        this.readyInFlight = true;
        durable.then(
          () => {
            this.readyInFlight = false;
            if (this.stopped) return;
            this.options.metrics.persistLatency.observe(performance.now() - began);
            this.finishReady(rd, snapshotFile, applyNow);
            this.process();
          },
          // After stop() the storage may be closed under the fsync: nothing waits for it then.
          (error: unknown) => {
            if (!this.stopped) this.crash(error);
          },
        );
        return;
      }
      this.finishReady(rd, snapshotFile, false);
    }
    this.scheduleCommitNotice();
    this.maybeSnapshot();
  }

  /** Followers not told the new commit index by an append within COMMIT_NOTICE_MS are told then. */
  private scheduleCommitNotice(): void {
    if (this.commitNoticeTimer !== null || !this.raft.commitNoticePending) return;
    this.commitNoticeTimer = setTimeout(() => {
      this.commitNoticeTimer = null;
      if (this.stopped) return;
      this.raft.noticeCommit();
      this.process();
    }, COMMIT_NOTICE_MS);
  }

  /**
   * Sends the leader's own messages, and writes the Ready's hard state,
   * entries and snapshot; returns the promise of their fsync, or null when
   * there is nothing to make durable.
   */
  private persistReady(rd: Ready, snapshotFile: StoredSnapshot | null): Promise<void> | null {
    // A leader's own messages go out first: its disk write then overlaps its followers'.
    // (The core counts the leader's entries toward commit only after advance().)
    if (rd.messages.some(isLeaderMessage)) {
      this.sender.send(rd.messages.filter(isLeaderMessage));
      // Written before the transaction below, not after it: the followers' half of the overlap starts sooner.
      if (rd.entries.length > 0) this.sender.flush();
    }
    // Durable before anything that depends on it leaves this node. A hard state that
    // only moves the commit index is not worth an fsync (commit is learned again from the
    // leader after a restart): it rides along with the next write that syncs.
    const hardState = rd.hardState ?? this.unsyncedHardState;
    const commitOnly = hardState !== null && rd.entries.length === 0 && snapshotFile === null && differsOnlyInCommit(hardState, this.storage.hardState);
    if (commitOnly) {
      this.unsyncedHardState = hardState;
      return null;
    }
    if (hardState === null && rd.entries.length === 0 && snapshotFile === null) return null;
    const durable = this.storage.persistAsync({ hardState, entries: rd.entries, snapshot: snapshotFile === null ? null : { file: snapshotFile } });
    this.unsyncedHardState = null;
    return durable;
  }

  /** What may happen once the Ready is durable: send, apply (unless `applied` already), advance. */
  private finishReady(rd: Ready, snapshotFile: StoredSnapshot | null, applied: boolean): void {
    // 2. Send the rest (1., persisting, is done).
    const late = rd.messages.filter((m) => !isLeaderMessage(m));
    if (late.length > 0) {
      this.sender.send(late);
      // A follower's acknowledgement goes out before it applies: the leader's commit waits for it.
      this.sender.flush();
    }
    if (rd.softState !== null) {
      this.logger.info({ role: rd.softState.role, term: rd.softState.term, leader: rd.softState.leader }, 'role changed');
      for (const listener of this.leaderListeners) listener(rd.softState.leader, rd.softState.term);
      if (rd.softState.role !== 'leader') {
        this.lastStampMs = 0;
        this.unappliedStamps = [];
      }
      if (this.current === null && rd.softState.role === 'follower' && rd.softState.leader !== '' && !this.restorePriority.isLowered) {
        this.logger.info({ leader: rd.softState.leader }, 'following a leader while restoring: the restore gives way on a busy machine');
        this.restorePriority.lower();
      }
    }
    // 3. Apply.
    if (!applied) this.applyReady(rd, snapshotFile);
    // 4. Done.
    this.raft.advance();
  }

  /** Installs the Ready's snapshot, applies its committed entries, and settles the reads it confirms or aborts. */
  private applyReady(rd: Ready, snapshotFile: StoredSnapshot | null): void {
    const { metrics } = this.options;
    if (snapshotFile !== null) this.installSnapshot(snapshotFile);
    if (rd.committedEntries.length > 0) {
      const began = performance.now();
      for (const entry of rd.committedEntries) this.applyEntry(entry);
      metrics.entriesApplied += rd.committedEntries.length;
      metrics.applyLatency.observe(performance.now() - began);
    }
    for (const id of rd.abortedReads) this.settleRead(id, new LeadershipLostError(this.raft.leader));
    for (const { requestId, index } of rd.readStates) this.settleRead(requestId, index);
    this.releaseWaiters();
  }

  /** The disk failed under us: what is durable is unknown, so the node must not go on (it restarts from disk). */
  private crash(error: unknown): void {
    this.logger.fatal({ err: error }, 'persisting the log failed; stopping the process');
    // Thrown outside any promise, so that it is an uncaught exception and the process exits.
    setImmediate(() => {
      throw error;
    });
  }

  private applyEntry(entry: Entry): void {
    this.appliedBytesSinceSnapshot += entry.data.length;
    let result: Result | null = null;
    if (entry.type === 'normal') {
      result = this.state.apply(entry.index, entry.data);
    } else {
      this.state.markApplied(entry.index);
      if (entry.type === 'noop') this.failSupersededWrites(entry.index, entry.term);
      else {
        const change = decodeConfChange(entry.data);
        for (const listener of this.membershipListeners) listener(change, entry.index);
      }
    }
    const pending = this.pendingWrites.get(entry.index);
    if (pending !== undefined) {
      // Another entry took our index: ours can never commit, so retrying is safe.
      if (pending.term !== entry.term) this.failWrite(entry.index, pending, new LeadershipLostError(this.raft.leader));
      else {
        this.pendingWrites.delete(entry.index);
        clearTimeout(pending.timer);
        pending.resolve(result ?? OK);
      }
    }
    for (const listener of this.appliedListeners) listener({ entry, result });
  }

  /**
   * A committed entry of a newer term at index j means no log can hold an older
   * term's entry at j or after (terms never decrease along a log): our earlier
   * proposals there are lost. Every term begins with a no-op, so this runs there.
   */
  private failSupersededWrites(index: number, term: number): void {
    for (const [proposed, pending] of this.pendingWrites) {
      if (proposed >= index && pending.term < term) this.failWrite(proposed, pending, new LeadershipLostError(this.raft.leader));
    }
  }

  private settleRead(requestId: number, outcome: number | Error): void {
    const pending = this.pendingReads.get(requestId);
    if (pending === undefined) return;
    this.pendingReads.delete(requestId);
    if (typeof outcome === 'number') pending.resolve(outcome);
    else pending.reject(outcome);
  }

  private releaseWaiters(): void {
    if (this.waitingForApply.length === 0 || this.current === null) return;
    const applied = this.current.lastAppliedIndex;
    const still: PendingApply[] = [];
    for (const waiter of this.waitingForApply) {
      if (waiter.index <= applied) waiter.resolve();
      else still.push(waiter);
    }
    this.waitingForApply = still;
  }

  private takeReceivedSnapshot(meta: SnapshotMeta): StoredSnapshot {
    const file = this.receivedSnapshots.get(meta.index);
    if (file === undefined || file.term !== meta.term) {
      throw new Error(`the core installs snapshot ${meta.index}/${meta.term}, but no such file was received`);
    }
    this.receivedSnapshots.clear();
    return file;
  }

  private installSnapshot(file: StoredSnapshot): void {
    // The transport refuses snapshot transfers until the start-up restore is done: two restores would race for the state.
    if (this.current === null) throw new Error(`snapshot ${file.index} from the leader reached the core while the state is still being restored`);
    this.logger.info({ index: file.index, term: file.term, bytes: file.sizeBytes }, 'installing snapshot');
    this.current = restoreHere(this.storage, file, this.options.stateConfig);
    this.appliedBytesSinceSnapshot = 0;
    this.options.metrics.snapshotsInstalled++;
    for (const listener of this.snapshotListeners) listener(file.index, file.confState);
    // Our proposals up to here may or may not be in it: their clients must retry with their session.
    for (const [index, pending] of this.pendingWrites) {
      if (index <= file.index) this.failWrite(index, pending, new OutcomeUnknownError('this node installed a snapshot from the leader'));
    }
  }

  private flushHardState(): void {
    if (this.unsyncedHardState === null) return;
    this.storage.persist({ hardState: this.unsyncedHardState });
    this.unsyncedHardState = null;
  }

  // ---- Snapshots ----------------------------------------------------------

  private maybeSnapshot(): void {
    const snapshotIndex = this.raft.snapshotIndex;
    if (this.snapshotInProgress || this.current === null) return;
    if (this.state.lastAppliedIndex - snapshotIndex < this.options.snapshotEntries && this.appliedBytesSinceSnapshot < this.options.snapshotBytes) return;
    void this.takeSnapshot().catch((error: unknown) => this.logger.error({ err: error }, 'snapshot failed'));
  }

  private async takeSnapshot(): Promise<void> {
    if (this.snapshotInProgress) return;
    if (this.state.lastAppliedIndex <= this.raft.snapshotIndex) return;
    this.snapshotInProgress = true;
    try {
      // Storage snapshots only what it knows is committed: write the commit index first.
      this.flushHardState();
      // A point-in-time view: apply goes on while the file is written.
      const view = this.state.exportRows();
      this.appliedBytesSinceSnapshot = 0;
      const index = view.lastAppliedIndex;
      const began = this.options.now();
      let file: StoredSnapshot;
      try {
        file = await this.storage.writeSnapshot(
          { index, term: this.termAt(index), confState: this.raft.membership, logTimeMs: view.logTimeMs },
          {
            keys: view.keyRows,
            sessions: view.sessionRows,
            stateDigest: view.digest,
            keyCount: view.keyCount,
            ...(view.changes === null ? {} : { changes: view.changes }),
          },
        );
        // The next snapshot's changes are counted from this one.
        view.stored();
      } finally {
        view.close();
      }
      if (this.stopped) return;
      const meta = this.raft.compact(index, this.options.snapshotKeepEntries);
      const how = this.storage.lastSnapshotWrite;
      this.options.metrics.snapshotsTaken++;
      if (how?.incremental === true) this.options.metrics.snapshotsIncremental++;
      this.options.metrics.lastSnapshotBytes = file.sizeBytes;
      this.logger.info({ index: meta.index, bytes: file.sizeBytes, ms: this.options.now() - began, ...how }, 'snapshot taken');
      await this.compactStorage(index - this.options.snapshotKeepEntries);
    } finally {
      this.snapshotInProgress = false;
    }
  }

  /**
   * Deletes the stored log through `throughIndex` a slice at a time: one
   * DELETE of a whole snapshot interval (100,000 rows) held the event loop
   * for over 100 ms, on every node at once. Each slice aims at
   * COMPACT_SLICE_MS, sized from the cost per entry of recent slices (also
   * those of earlier compactions).
   */
  private async compactStorage(throughIndex: number): Promise<void> {
    for (let first = this.storage.firstIndex; first !== null && first <= throughIndex; first = this.storage.firstIndex) {
      if (this.stopped) return;
      const entries = this.compactSliceEntries;
      const through = Math.min(throughIndex, first + entries - 1);
      const began = performance.now();
      this.storage.compact(through);
      const ms = performance.now() - began;
      if (through - first + 1 === entries) {
        // The cheapest recent slice is the estimate: preemption and WAL checkpoints only ever make a slice slower,
        // and sizing from a slowed one would shrink slices (and add transactions) for nothing.
        this.compactCostsMs.push(ms / entries);
        if (this.compactCostsMs.length > COMPACT_COST_WINDOW) this.compactCostsMs.shift();
        const perEntryMs = Math.max(1e-6, Math.min(...this.compactCostsMs));
        this.compactSliceEntries = Math.min(COMPACT_MAX_SLICE_ENTRIES, Math.max(COMPACT_MIN_SLICE_ENTRIES, Math.round(COMPACT_SLICE_MS / perEntryMs)));
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private termAt(index: number): number {
    const entry = this.raft.entry(index);
    if (entry !== undefined) return entry.term;
    const snapshot = this.storage.latestSnapshot;
    if (snapshot !== null && snapshot.index === index) return snapshot.term;
    throw new Error(`no term known for applied index ${index}`);
  }

  // ---- Helpers ------------------------------------------------------------

  // One promise and one timer per write, no wrappers: this runs for every put.
  private awaitProposal(proposal: Proposal, timeoutMs: number): Promise<Result> {
    const index = proposal.lastIndex;
    return new Promise<Result>((resolve, reject) => {
      const timer = setTimeout(() => this.failWrite(index, pending, new DeadlineError(timeoutMs)), timeoutMs);
      const pending: PendingWrite = { term: proposal.term, resolve, reject, timer };
      this.pendingWrites.set(index, pending);
    });
  }

  private failWrite(index: number, pending: PendingWrite, error: Error): void {
    // A later proposal may have taken the index over (a new term): leave that one in place.
    if (this.pendingWrites.get(index) === pending) this.pendingWrites.delete(index);
    clearTimeout(pending.timer);
    this.options.metrics.proposalsFailed++;
    pending.reject(error);
  }

  private dropAppliedStamps(): void {
    const applied = this.state.lastAppliedIndex;
    let drop = 0;
    while (drop < this.unappliedStamps.length && (this.unappliedStamps[drop] as { index: number }).index <= applied) drop++;
    if (drop > 0) this.unappliedStamps.splice(0, drop);
  }

  /** Entry time: the leader's clock, but never behind the last stamp or the applied log time. */
  private stamp(): number {
    const now = Math.max(this.options.now(), this.lastStampMs, this.state.logTimeMs);
    this.lastStampMs = now;
    return now;
  }

  /** Runs `then` with the time left once the state is restored; fails with DeadlineError if that takes longer than `timeoutMs`. */
  private async afterRestore<T>(timeoutMs: number, then: (leftMs: number) => Promise<T>): Promise<T> {
    const began = performance.now();
    await this.waitRestored(timeoutMs);
    return then(Math.max(1, timeoutMs - (performance.now() - began)));
  }

  private assertRunning(): void {
    if (this.stopped) throw new NodeStoppedError();
    if (this.raft.currentRole !== 'leader') throw new NotLeaderError(this.raft.leader);
  }
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, onTimeout: () => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      onTimeout();
      reject(new DeadlineError(timeoutMs));
    }, timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error as Error);
      },
    );
  });
}

function differsOnlyInCommit(next: HardState, durable: HardState): boolean {
  return next.term === durable.term && next.vote === durable.vote;
}

function hashSeed(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
