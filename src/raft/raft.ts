import { applyConfChange, decodeConfChange, encodeConfChange, isMember, validateConfChange } from './conf-change.ts';
import { CompactionError, ConfChangeError, NotLeaderError, ProposalDroppedError, TransferError, invariant } from './errors.ts';
import { RaftLog } from './log.ts';
import type { AppendRequest, AppendResponse, Heartbeat, HeartbeatResponse, InstallSnapshot, Message, VoteRequest, VoteResponse } from './messages.ts';
import { Progress } from './progress.ts';
import { quorumMinimum, tallyVotes } from './quorum.ts';
import type { Random } from './random.ts';
import { NONE } from './types.ts';
import type { ConfChange, ConfState, Entry, EntryType, HardState, NodeId, Role, SnapshotMeta } from './types.ts';

/** The core logs through this; pino satisfies it. */
export interface RaftLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

const silentLogger: RaftLogger = { debug() {}, info() {}, warn() {} };

/** With lazyCommitNotice: how long a driver waits before noticeCommit(), in ms (a write stream's next append comes sooner). */
export const COMMIT_NOTICE_MS = 1;

export interface RaftOptions {
  readonly id: NodeId;
  readonly random: Random;
  /** Followers wait between electionTicks and 2*electionTicks without a leader before campaigning. */
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  /** §9.6 of the thesis: a node campaigns only after a quorum says it could win, so a rejoining node cannot disrupt. */
  readonly preVote?: boolean;
  /** A leader that has not heard from a quorum within an election timeout steps down. */
  readonly checkQuorum?: boolean;
  readonly maxInflightMessages?: number;
  readonly maxBytesPerMessage?: number;
  readonly maxEntriesPerMessage?: number;
  /** Caps how much a single Ready hands out for application, so one Ready never stalls the node. */
  readonly maxApplyBytesPerReady?: number;
  /** A snapshot not acknowledged within this many ticks is sent again. */
  readonly snapshotRetryTicks?: number;
  /** A learner may be promoted only when it is at most this many entries behind. */
  readonly maxPromoteLagEntries?: number;
  /**
   * A leader whose commit index moved sends no append that carries only the
   * new commit index; the next append with entries, a heartbeat, or the
   * driver's noticeCommit() (see commitNoticePending) tells the followers.
   * Under a steady stream of writes that saves an append and its response
   * per follower per write. Off: such an append goes out in the next Ready.
   */
  readonly lazyCommitNotice?: boolean;
  readonly logger?: RaftLogger;
}

/** What a node had durably when it (re)started. */
export interface InitialState {
  readonly hardState: HardState;
  readonly snapshot: SnapshotMeta | null;
  readonly entries: readonly Entry[];
}

export interface SoftState {
  readonly role: Role;
  readonly leader: NodeId;
  readonly term: number;
}

/** A linearizable read may be served once the state machine has applied `index`. */
export interface ReadState {
  readonly requestId: number;
  readonly index: number;
}

/**
 * One batch of work for the caller, in this order:
 * 1. persist hardState, entries (an entry at index i replaces stored entries >= i) and snapshot, durably
 *    (a leader's own messages — see isLeaderMessage — may be sent before or while this happens:
 *    the leader counts its own entries toward commit only once advance() says they are durable);
 * 2. send messages;
 * 3. install the snapshot (if any), then apply committedEntries, then serve readStates once applied;
 * 4. call advance().
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: SnapshotMeta | null;
  readonly messages: readonly Message[];
  readonly committedEntries: readonly Entry[];
  readonly readStates: readonly ReadState[];
  /** Reads that will never be confirmed here (leadership lost): fail them so clients retry. */
  readonly abortedReads: readonly number[];
}

export interface Proposal {
  readonly term: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
}

export interface PeerStatus {
  readonly id: NodeId;
  readonly match: number;
  readonly next: number;
  readonly state: Progress['state'];
  readonly isLearner: boolean;
  readonly recentActive: boolean;
}

export interface RaftStatus extends SoftState {
  readonly id: NodeId;
  readonly vote: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly conf: ConfState;
  /** The leader's view of every member, empty on other roles. */
  readonly peers: readonly PeerStatus[];
}

interface PendingRead {
  readonly requestId: number;
  readonly index: number;
  /** The ReadIndex round that confirms it; 0 until a round starts. */
  round: number;
}

const EMPTY = new Uint8Array(0);

/**
 * The Raft consensus core: a deterministic state machine in etcd raft's model.
 * It does no I/O and reads no clock: time is tick(), randomness is the injected
 * Random, and everything to persist, send and apply comes out as a Ready.
 */
export class Raft {
  readonly id: NodeId;
  private readonly random: Random;
  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxInflight: number;
  private readonly maxBytesPerMessage: number;
  private readonly maxEntriesPerMessage: number;
  private readonly maxApplyBytes: number;
  private readonly snapshotRetryTicks: number;
  private readonly maxPromoteLag: number;
  private readonly logger: RaftLogger;

  private term = 0;
  private vote: NodeId = NONE;
  private lead: NodeId = NONE;
  private role: Role = 'follower';
  private readonly log: RaftLog;
  /** Membership as of the commit index (changes take effect when committed). */
  private conf: ConfState;
  /** Membership after each committed change since the snapshot, to know it at any snapshot index. */
  private confHistory: { index: number; conf: ConfState }[];

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private readonly votes = new Map<NodeId, boolean>();
  /** Whether the campaign under way is a leadership transfer's (its requests say so: voters in a lease still answer them). */
  private campaignIsTransfer = false;
  /** Set by reportRemoved(): the index a member saw this node removed at; 0 while it is not known removed. Never campaigns while set. */
  private removedAt = 0;

  // Leader state.
  private readonly progress = new Map<NodeId, Progress>();
  /** Highest commit index sent to each follower, to know when an empty append must carry a new commit. */
  private readonly sentCommit = new Map<NodeId, number>();
  /** Followers that must get an append even when there is nothing new (a heartbeat showed them behind). */
  private readonly forceAppend = new Set<NodeId>();
  private appendsPending = false;
  private readonly lazyCommitNotice: boolean;
  /** noticeCommit() was called: the next flush sends the commit index even without entries. */
  private commitNoticeDue = false;
  private leadTransferee: NodeId = NONE;
  private transferElapsed = 0;
  /** Index of the last membership change in the log: no new change until it commits. */
  private pendingConfIndex = 0;
  private readRound = 0;
  private readRoundInFlight = 0;
  private readQueue: PendingRead[] = [];
  /** Reads that arrived before this term's no-op committed: the commit index is not yet trustworthy. */
  private readsAwaitingNoop: number[] = [];

  // Outputs waiting for the next Ready.
  private messages: Message[] = [];
  private readStates: ReadState[] = [];
  private abortedReads: number[] = [];
  private lastHardState: HardState;
  private lastSoftState: SoftState;
  private readyInFlight: { appliedTo: number; persistedTo: number } | null = null;

  constructor(options: RaftOptions, initial: InitialState) {
    this.id = options.id;
    this.random = options.random;
    this.electionTicks = options.electionTicks ?? 10;
    this.heartbeatTicks = options.heartbeatTicks ?? 1;
    this.preVote = options.preVote ?? true;
    this.checkQuorum = options.checkQuorum ?? true;
    this.maxInflight = options.maxInflightMessages ?? 256;
    this.maxBytesPerMessage = options.maxBytesPerMessage ?? 1024 * 1024;
    this.maxEntriesPerMessage = options.maxEntriesPerMessage ?? 4096;
    this.maxApplyBytes = options.maxApplyBytesPerReady ?? 64 * 1024 * 1024;
    this.snapshotRetryTicks = options.snapshotRetryTicks ?? this.electionTicks * 10;
    this.maxPromoteLag = options.maxPromoteLagEntries ?? 1000;
    this.lazyCommitNotice = options.lazyCommitNotice ?? false;
    this.logger = options.logger ?? silentLogger;
    invariant(this.id !== NONE, () => 'a node id must not be empty');
    invariant(this.heartbeatTicks >= 1 && this.electionTicks > this.heartbeatTicks, () => 'electionTicks must exceed heartbeatTicks >= 1');

    const { hardState, snapshot, entries } = initial;
    this.log = new RaftLog(snapshot, entries, hardState.commit);
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.conf = snapshot?.confState ?? { voters: [], learners: [] };
    this.confHistory = [{ index: snapshot?.index ?? 0, conf: this.conf }];
    this.applyConfChanges(snapshot?.index ?? 0, this.log.committed);
    this.becomeFollower(this.term, NONE);
    this.lastHardState = this.hardState();
    this.lastSoftState = this.softState();
  }

  // ---- Inputs -------------------------------------------------------------

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /**
   * With lazyCommitNotice: a follower that could take an append has not been
   * sent the leader's commit index yet. The driver calls noticeCommit() soon
   * (unless an append with entries carries it first).
   */
  get commitNoticePending(): boolean {
    if (this.role !== 'leader') return false;
    for (const [id, pr] of this.progress) {
      if (id !== this.id && !pr.isPaused() && (this.sentCommit.get(id) ?? 0) < this.log.committed) return true;
    }
    return false;
  }

  /** Leader: send the commit index to followers that have not had it, with or without entries. */
  noticeCommit(): void {
    if (this.role !== 'leader') return;
    this.commitNoticeDue = true;
    this.appendsPending = true;
  }

  /** Proposes normal entries; only the leader accepts them. */
  propose(data: readonly Uint8Array[]): Proposal {
    this.requireLeader();
    if (this.leadTransferee !== NONE) {
      throw new ProposalDroppedError(`leadership is being transferred to ${this.leadTransferee}`);
    }
    const firstIndex = this.log.lastIndex() + 1;
    this.appendEntries(data.map((d) => ({ type: 'normal' as const, data: d })));
    return { term: this.term, firstIndex, lastIndex: this.log.lastIndex() };
  }

  /**
   * Proposes one membership change. Refused until this term's no-op has
   * committed and while another change is uncommitted: with single changes
   * that rule is what keeps two majorities from ever being disjoint.
   */
  proposeConfChange(change: ConfChange): Proposal {
    this.requireLeader();
    if (this.leadTransferee !== NONE) throw new ProposalDroppedError(`leadership is being transferred to ${this.leadTransferee}`);
    if (!this.committedInCurrentTerm()) throw new ConfChangeError('the new leader has not committed an entry in its term yet; retry shortly');
    if (this.pendingConfIndex > this.log.committed) {
      throw new ConfChangeError(`another membership change (at index ${this.pendingConfIndex}) is not committed yet`);
    }
    validateConfChange(this.conf, change);
    if (change.type === 'promote') {
      const lag = this.log.lastIndex() - (this.progress.get(change.nodeId)?.match ?? 0);
      if (lag > this.maxPromoteLag) {
        throw new ConfChangeError(`${change.nodeId} is ${lag} entries behind (at most ${this.maxPromoteLag} to promote); let it catch up`);
      }
    }
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ type: 'config', data: encodeConfChange(change) }]);
    this.pendingConfIndex = index;
    return { term: this.term, firstIndex: index, lastIndex: index };
  }

  /**
   * Starts a linearizable read: once confirmed, a ReadState says which index
   * the state machine must reach before the read is served.
   */
  readIndex(requestId: number): void {
    this.requireLeader();
    if (!this.committedInCurrentTerm()) {
      this.readsAwaitingNoop.push(requestId);
      return;
    }
    this.queueRead(requestId);
  }

  /**
   * While paused, Readys carry no committedEntries; everything else goes on
   * (voting, appending, acknowledging, committing, ReadIndex). On resume the
   * entries committed meanwhile are handed out in order, from the one after
   * the last applied. For a driver whose state machine is still being
   * rebuilt from the snapshot: Raft needs only the snapshot's index and term.
   * Such a driver refuses snapshot transfers meanwhile: one installed would
   * replace the state being rebuilt.
   */
  setApplyPaused(paused: boolean): void {
    this.log.applyPaused = paused;
  }

  /** Hands leadership to `to` (§3.10 of the thesis): catch it up, then TimeoutNow. */
  transferLeadership(to: NodeId): void {
    this.requireLeader();
    if (to === this.id) return;
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isLearner) throw new TransferError(`${to} is not a voter`);
    if (this.leadTransferee === to) return;
    this.leadTransferee = to;
    this.transferElapsed = 0;
    this.logger.info({ to, term: this.term }, 'transferring leadership');
    if (pr.match === this.log.lastIndex()) {
      this.sendTimeoutNow(to, pr.match);
    } else {
      this.forceAppend.add(to);
      this.appendsPending = true;
    }
  }

  /** The transport tells the leader how sending a snapshot ended. */
  reportSnapshot(to: NodeId, ok: boolean): void {
    const pr = this.progress.get(to);
    if (this.role !== 'leader' || pr === undefined || pr.state !== 'snapshot') return;
    if (ok) pr.becomeProbe();
    else {
      pr.becomeProbe();
      pr.next = pr.match + 1;
    }
    pr.probeSent = true; // wait for the follower's answer (or a heartbeat) before probing
  }

  /**
   * A member refused this node's traffic because it committed this node's
   * removal at `index`. Unless this node knows better (it is a member of its
   * own configuration, committed at or past `index`: it was added back and
   * that member lags), it stops campaigning, and steps down without touching
   * its term, until a committed change or a snapshot after `index` lists it
   * again. A node that missed its own removal (it was down, or restarted from
   * old data) believes it is a voter: this keeps it from forcing elections.
   * Returns whether the report was taken.
   */
  reportRemoved(index: number): boolean {
    if (isMember(this.conf, this.id) && this.log.committed >= index) return false;
    this.removedAt = Math.max(this.removedAt, index);
    if (this.role !== 'follower') this.becomeFollower(this.term, NONE);
    return true;
  }

  /** Tells the core that `to` is unreachable, so pipelining to it stops until it answers again. */
  reportUnreachable(to: NodeId): void {
    const pr = this.progress.get(to);
    if (this.role === 'leader' && pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  /**
   * Tells the core that messages to `to` get through again (the transport's
   * stream to it was accepted). A campaign whose request to `to` was lost
   * while it was down (a whole cluster starting at once: the first node to
   * campaign finds the others not yet listening) asks it again now, instead
   * of waiting a whole election timeout to campaign anew. A repeated request
   * is a duplicated message, which Raft tolerates: a voter answers the same,
   * and a second answer from it is not counted.
   */
  reportReachable(to: NodeId): void {
    if (this.role !== 'preCandidate' && this.role !== 'candidate') return;
    if (to === this.id || !this.conf.voters.includes(to) || this.votes.has(to)) return;
    this.sendVoteRequest(to);
  }

  /**
   * Records that the caller saved the state machine at `index` (<= applied)
   * and drops log entries up to it, keeping `keepEntries` before it.
   */
  compact(index: number, keepEntries: number): SnapshotMeta {
    const snapshotIndex = this.log.snapshot?.index ?? 0;
    if (index > this.log.applied) throw new CompactionError(`cannot snapshot at ${index}: only ${this.log.applied} is applied`);
    if (index <= snapshotIndex) throw new CompactionError(`cannot snapshot at ${index}: there is already a snapshot at ${snapshotIndex}`);
    const term = this.log.term(index);
    invariant(term !== undefined, () => `no term known for index ${index}`);
    const snapshot: SnapshotMeta = { index, term, confState: this.confAt(index) };
    this.log.compact(snapshot, keepEntries);
    while (this.confHistory.length > 1 && (this.confHistory[1] as { index: number }).index <= index) this.confHistory.shift();
    return snapshot;
  }

  /** Feeds a message from a peer into the core. */
  step(m: Message): void {
    if (m.term > this.term) {
      if (m.type === 'preVote' || m.type === 'vote') {
        // Within a leader's lease a higher-term vote is most likely from a node that
        // was cut off; ignoring it keeps it from deposing a healthy leader.
        const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTicks;
        if (inLease && !m.leaderTransfer) return;
      }
      if (m.type === 'preVote' || (m.type === 'preVoteResp' && !m.reject)) {
        // A preVote does not change our term; a granted preVoteResp carries the future term.
      } else if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === 'append' || m.type === 'heartbeat')) {
        // A stale leader learns of the new term from this and steps down.
        this.send({ type: 'appendResp', from: this.id, to: m.from, term: this.term, reject: false, index: 0, hintIndex: 0, hintTerm: 0 });
      } else if (m.type === 'preVote') {
        this.send({ type: 'preVoteResp', from: this.id, to: m.from, term: this.term, reject: true });
      }
      return;
    }

    if (m.type === 'preVote' || m.type === 'vote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'preCandidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
    }
  }

  // ---- Ready / advance ----------------------------------------------------

  hasReady(): boolean {
    if (this.readyInFlight !== null) return false;
    return (
      this.messages.length > 0 ||
      this.log.hasUnstable() ||
      this.log.hasNextCommitted() ||
      this.readStates.length > 0 ||
      this.abortedReads.length > 0 ||
      (this.role === 'leader' && this.appendsPending) ||
      !sameHardState(this.hardState(), this.lastHardState) ||
      !sameSoftState(this.softState(), this.lastSoftState)
    );
  }

  ready(): Ready {
    invariant(this.readyInFlight === null, () => 'ready() called again before advance()');
    if (this.role === 'leader' && this.appendsPending) this.flushAppends();
    const hardState = this.hardState();
    const softState = this.softState();
    const snapshot = this.log.takePendingSnapshot();
    const entries = this.log.takeUnstable();
    const rd: Ready = {
      softState: sameSoftState(softState, this.lastSoftState) ? null : softState,
      hardState: sameHardState(hardState, this.lastHardState) ? null : hardState,
      entries,
      snapshot,
      messages: this.messages,
      committedEntries: this.log.takeCommitted(this.maxApplyBytes),
      readStates: this.readStates,
      abortedReads: this.abortedReads,
    };
    this.lastHardState = hardState;
    this.lastSoftState = softState;
    this.messages = [];
    this.readStates = [];
    this.abortedReads = [];
    this.readyInFlight = { appliedTo: this.log.applying, persistedTo: entries[entries.length - 1]?.index ?? 0 };
    return rd;
  }

  /** The caller has persisted, sent and applied the last Ready. */
  advance(): void {
    invariant(this.readyInFlight !== null, () => 'advance() called without a Ready in flight');
    this.log.appliedTo(this.readyInFlight.appliedTo);
    this.log.persistedTo(this.readyInFlight.persistedTo);
    this.readyInFlight = null;
    if (this.role === 'leader') {
      // Our own entries count toward the quorum only now that they are durable.
      const self = this.progress.get(this.id);
      if (self !== undefined && self.maybeUpdate(this.log.persisted) && this.maybeCommit()) this.appendsPending = true;
    }
  }

  // ---- Introspection ------------------------------------------------------

  status(): RaftStatus {
    const peers: PeerStatus[] = [];
    for (const [id, pr] of this.progress) {
      peers.push({ id, match: pr.match, next: pr.next, state: pr.state, isLearner: pr.isLearner, recentActive: pr.recentActive });
    }
    return {
      ...this.softState(),
      id: this.id,
      vote: this.vote,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      snapshotIndex: this.log.snapshot?.index ?? 0,
      conf: this.conf,
      peers,
    };
  }

  get currentTerm(): number {
    return this.term;
  }

  get currentRole(): Role {
    return this.role;
  }

  /** The node leadership is being handed to, or '' (none, or the transfer ended or was aborted). */
  get transferTarget(): NodeId {
    return this.leadTransferee;
  }

  get leader(): NodeId {
    return this.lead;
  }

  get membership(): ConfState {
    return this.conf;
  }

  /** The commit index (the membership above is as of it); cheaper than status() on hot paths. */
  get commitIndex(): number {
    return this.log.committed;
  }

  /** The index a member reported this node removed at (reportRemoved), or 0. */
  get removedAtIndex(): number {
    return this.removedAt;
  }

  /** Index of the latest snapshot (0 when none); cheaper than status() on hot paths. */
  get snapshotIndex(): number {
    return this.log.snapshot?.index ?? 0;
  }

  /** The entry at `index` if it is still in memory (for tests and checkers). */
  entry(index: number): Entry | undefined {
    return this.log.entryAt(index);
  }

  // ---- Roles --------------------------------------------------------------

  private becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.role = 'follower';
    this.lead = lead;
  }

  private becomePreCandidate(): void {
    invariant(this.role !== 'leader', () => 'a leader cannot become a pre-candidate');
    // A pre-election changes neither term nor vote: a node that cannot win leaves no trace.
    this.role = 'preCandidate';
    this.lead = NONE;
    this.votes.clear();
  }

  private becomeCandidate(): void {
    invariant(this.role !== 'leader', () => 'a leader cannot become a candidate');
    this.reset(this.term + 1);
    this.role = 'candidate';
    this.vote = this.id;
  }

  private becomeLeader(): void {
    invariant(this.role === 'candidate', () => `only a candidate can become leader (was ${this.role})`);
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    const next = this.log.lastIndex() + 1;
    for (const id of this.conf.voters) this.progress.set(id, new Progress(next, this.maxInflight, false));
    for (const id of this.conf.learners) this.progress.set(id, new Progress(next, this.maxInflight, true));
    const self = this.progress.get(this.id);
    if (self !== undefined) {
      self.match = this.log.persisted;
      self.recentActive = true;
    }
    // Uncommitted changes from earlier terms must commit before any new one.
    this.pendingConfIndex = this.log.lastIndex();
    this.logger.info({ term: this.term }, 'became leader');
    // §8: a no-op in the new term commits everything before it (and makes ReadIndex safe).
    this.appendEntries([{ type: 'noop', data: EMPTY }]);
  }

  private reset(term: number): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NONE;
    }
    if (this.role === 'leader') this.abortReads();
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTicks + this.random.int(this.electionTicks);
    this.votes.clear();
    this.progress.clear();
    this.sentCommit.clear();
    this.commitNoticeDue = false;
    this.forceAppend.clear();
    this.appendsPending = false;
    this.leadTransferee = NONE;
    this.pendingConfIndex = 0;
  }

  private isVoter(): boolean {
    return this.conf.voters.includes(this.id);
  }

  private campaign(kind: 'preElection' | 'election' | 'transfer'): void {
    if (!this.isVoter() || this.removedAt !== 0) return;
    let voteTerm: number;
    if (kind === 'preElection') {
      this.becomePreCandidate();
      voteTerm = this.term + 1;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    this.logger.debug({ term: voteTerm, kind }, 'campaigning');
    this.campaignIsTransfer = kind === 'transfer';
    this.votes.set(this.id, true);
    if (this.checkVotes()) return;
    for (const to of this.conf.voters) {
      if (to !== this.id) this.sendVoteRequest(to);
    }
  }

  /** The request of the campaign under way (pre-vote or vote) to `to`. */
  private sendVoteRequest(to: NodeId): void {
    const preCandidate = this.role === 'preCandidate';
    this.send({
      type: preCandidate ? 'preVote' : 'vote',
      from: this.id,
      to,
      // A pre-vote asks about the term the election would have; a candidate has already taken it.
      term: preCandidate ? this.term + 1 : this.term,
      lastLogIndex: this.log.lastIndex(),
      lastLogTerm: this.log.lastTerm(),
      leaderTransfer: this.campaignIsTransfer,
    });
  }

  /** Acts on the votes so far; returns whether the election ended. */
  private checkVotes(): boolean {
    const outcome = tallyVotes(this.conf.voters, this.votes);
    if (outcome === 'won') {
      if (this.role === 'preCandidate') this.campaign('election');
      else this.becomeLeader();
      return true;
    }
    if (outcome === 'lost') {
      this.becomeFollower(this.term, NONE);
      return true;
    }
    return false;
  }

  // ---- Ticks --------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.isVoter() && this.removedAt === 0 && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign(this.preVote ? 'preElection' : 'election');
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum && !this.quorumActive()) {
        this.logger.warn({ term: this.term }, 'stepping down: no quorum heard from within an election timeout');
        this.becomeFollower(this.term, NONE);
        return;
      }
    }
    if (this.leadTransferee !== NONE && ++this.transferElapsed >= this.electionTicks) {
      this.logger.warn({ to: this.leadTransferee }, 'leadership transfer timed out');
      this.leadTransferee = NONE;
    }
    for (const [id, pr] of this.progress) {
      if (pr.state === 'snapshot' && ++pr.snapshotTicks >= this.snapshotRetryTicks) {
        this.logger.warn({ to: id, index: pr.pendingSnapshot }, 'snapshot not acknowledged; will send again');
        this.reportSnapshot(id, false);
        pr.probeSent = false;
        this.appendsPending = true;
      }
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat();
    }
  }

  /** Counts the voters heard from since the last check, and starts a new round. */
  private quorumActive(): boolean {
    const active = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) {
      if (!pr.isLearner) active.set(id, pr.recentActive || id === this.id);
      if (id !== this.id) pr.recentActive = false;
    }
    return tallyVotes(this.conf.voters, active) === 'won';
  }

  // ---- Voting -------------------------------------------------------------

  private handleVoteRequest(m: VoteRequest): void {
    const respType = m.type === 'preVote' ? 'preVoteResp' : 'voteResp';
    // We can vote for m.from if we already did, or have voted for no one and know no
    // leader in this term, or it is a pre-vote for a later term.
    const canVote = this.vote === m.from || (this.vote === NONE && this.lead === NONE) || (m.type === 'preVote' && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.lastLogIndex, m.lastLogTerm)) {
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === 'vote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true });
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot':
        // Someone won this term.
        this.becomeFollower(this.term, m.from);
        this.stepFollower(m);
        return;
      case 'preVoteResp':
      case 'voteResp': {
        const expected = this.role === 'preCandidate' ? 'preVoteResp' : 'voteResp';
        if (m.type !== expected) return;
        this.recordVote(m);
        return;
      }
      default:
        return;
    }
  }

  private recordVote(m: VoteResponse): void {
    if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject);
    this.checkVotes();
  }

  // ---- Follower -----------------------------------------------------------

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snapshot':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case 'timeoutNow':
        // First the commit it carries, which may make this node a voter (a promotion just committed).
        this.commitTo(m.commit);
        this.logger.info({ from: m.from, term: this.term }, 'leadership handed over: campaigning now');
        this.campaign('transfer');
        return;
      default:
        return;
    }
  }

  private replyAppend(to: NodeId, fields: Pick<AppendResponse, 'reject' | 'index' | 'hintIndex' | 'hintTerm'>): void {
    this.send({ type: 'appendResp', from: this.id, to, term: this.term, ...fields });
  }

  private handleAppend(m: AppendRequest): void {
    if (m.prevIndex < this.log.committed) {
      // An old or duplicated message: what is committed here is already known to match.
      this.replyAppend(m.from, { reject: false, index: this.log.committed, hintIndex: 0, hintTerm: 0 });
      return;
    }
    const before = this.log.committed;
    const lastNew = this.log.maybeAppend(m.prevIndex, m.prevTerm, m.commit, m.entries);
    if (lastNew !== null) {
      this.applyConfChanges(before, this.log.committed);
      this.replyAppend(m.from, { reject: false, index: lastNew, hintIndex: 0, hintTerm: 0 });
      return;
    }
    const hint = this.log.findConflictByTerm(m.prevIndex, m.prevTerm);
    this.replyAppend(m.from, { reject: true, index: m.prevIndex, hintIndex: hint.index, hintTerm: hint.term });
  }

  private handleHeartbeat(m: Heartbeat): void {
    this.commitTo(m.commit);
    this.send({ type: 'heartbeatResp', from: this.id, to: m.from, term: this.term, readRound: m.readRound });
  }

  private handleSnapshot(m: InstallSnapshot): void {
    const { snapshot } = m;
    if (snapshot.index <= this.log.committed) {
      this.replyAppend(m.from, { reject: false, index: this.log.committed, hintIndex: 0, hintTerm: 0 });
      return;
    }
    if (this.log.matchTerm(snapshot.index, snapshot.term)) {
      // We already hold the snapshot's last entry: just learn that it is committed.
      this.commitTo(snapshot.index);
    } else {
      this.logger.info({ index: snapshot.index, term: snapshot.term }, 'installing snapshot from the leader');
      this.log.restore(snapshot);
      this.conf = snapshot.confState;
      this.confHistory = [{ index: snapshot.index, conf: this.conf }];
      if (isMember(this.conf, this.id)) this.addedBack(snapshot.index);
    }
    this.replyAppend(m.from, { reject: false, index: snapshot.index, hintIndex: 0, hintTerm: 0 });
  }

  // ---- Leader -------------------------------------------------------------

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    switch (m.type) {
      case 'appendResp':
        if (pr !== undefined) this.handleAppendResponse(m, pr);
        return;
      case 'heartbeatResp':
        if (pr !== undefined) this.handleHeartbeatResponse(m, pr);
        return;
      default:
        return;
    }
  }

  private handleAppendResponse(m: AppendResponse, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      const hint = m.hintTerm > 0 ? this.log.findConflictByTerm(m.hintIndex, m.hintTerm).index : m.hintIndex;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.forceAppend.add(m.from);
        this.appendsPending = true;
      }
      return;
    }
    const updated = pr.maybeUpdate(m.index);
    if (updated || (pr.match === m.index && pr.state === 'probe')) {
      if (pr.state === 'probe') pr.becomeReplicate();
      else if (pr.state === 'snapshot' && pr.match + 1 >= this.log.firstIndex()) pr.becomeReplicate();
      else if (pr.state === 'replicate') pr.inflights.freeTo(m.index);
      this.maybeCommit();
      this.appendsPending = true;
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) {
        this.sendTimeoutNow(m.from, pr.match);
      }
    }
  }

  private handleHeartbeatResponse(m: HeartbeatResponse, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    // A lost append could otherwise fill the window for good.
    if (pr.state === 'replicate' && pr.inflights.full()) pr.inflights.freeFirst();
    if (pr.match < this.log.lastIndex()) {
      this.forceAppend.add(m.from);
      this.appendsPending = true;
    }
    if (m.readRound > pr.readRoundAck) {
      pr.readRoundAck = m.readRound;
      this.confirmReads();
    }
  }

  private appendEntries(entries: readonly { type: EntryType; data: Uint8Array }[]): void {
    let index = this.log.lastIndex();
    const toAppend: Entry[] = entries.map(({ type, data }) => ({ index: ++index, term: this.term, type, data }));
    this.log.append(toAppend);
    // The leader's own copy counts once it is durable (see advance()), not yet.
    this.appendsPending = true;
  }

  /** §5.4.2: only an entry of the current term is committed by counting replicas. */
  private maybeCommit(): boolean {
    const index = quorumMinimum(this.conf.voters, (id) => this.progress.get(id)?.match ?? 0);
    if (index <= this.log.committed || this.log.term(index) !== this.term) return false;
    const wasCommittedInTerm = this.committedInCurrentTerm();
    this.commitTo(index);
    if (!wasCommittedInTerm && this.readsAwaitingNoop.length > 0) {
      const waiting = this.readsAwaitingNoop;
      this.readsAwaitingNoop = [];
      for (const requestId of waiting) this.queueRead(requestId);
    }
    return true;
  }

  /** TimeoutNow to a transferee that holds the log up to `match`: with the commit it may learn, as a heartbeat's. */
  private sendTimeoutNow(to: NodeId, match: number): void {
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term, commit: Math.min(match, this.log.committed) });
  }

  private commitTo(index: number): void {
    const before = this.log.committed;
    if (this.log.commitTo(index)) this.applyConfChanges(before, index);
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  /** Sends appends to every follower that can take them. */
  private flushAppends(): void {
    this.appendsPending = false;
    const sendCommit = !this.lazyCommitNotice || this.commitNoticeDue;
    this.commitNoticeDue = false;
    for (const id of this.progress.keys()) {
      if (id === this.id) continue;
      let force = this.forceAppend.has(id);
      while (this.sendAppend(id, force || (sendCommit && (this.sentCommit.get(id) ?? 0) < this.log.committed))) force = false;
    }
    this.forceAppend.clear();
  }

  /** Sends one append (or a snapshot) to `to`; returns whether more may follow. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined) {
      this.sendSnapshot(to, pr);
      return false;
    }
    const entries = pr.next <= this.log.lastIndex() ? this.log.slice(pr.next, this.log.lastIndex() + 1, this.maxBytesPerMessage, this.maxEntriesPerMessage) : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    const commit = this.log.committed;
    this.send({ type: 'append', from: this.id, to, term: this.term, prevIndex, prevTerm, entries, commit });
    this.sentCommit.set(to, commit);
    const last = entries[entries.length - 1];
    if (pr.state === 'replicate') {
      if (last === undefined) return false;
      pr.next = last.index + 1;
      pr.inflights.add(last.index);
      return true;
    }
    pr.probeSent = true;
    return false;
  }

  private sendSnapshot(to: NodeId, pr: Progress): void {
    const snapshot = this.log.snapshot;
    invariant(snapshot !== null, () => `follower ${to} needs entries before ${this.log.firstIndex()} but there is no snapshot`);
    pr.becomeSnapshot(snapshot.index);
    this.logger.info({ to, index: snapshot.index }, 'sending snapshot');
    this.send({ type: 'snapshot', from: this.id, to, term: this.term, snapshot });
  }

  private broadcastHeartbeat(): void {
    for (const [to, pr] of this.progress) {
      if (to === this.id) continue;
      const commit = Math.min(pr.match, this.log.committed);
      this.send({ type: 'heartbeat', from: this.id, to, term: this.term, commit, readRound: this.readRound });
    }
  }

  // ---- ReadIndex ----------------------------------------------------------

  private queueRead(requestId: number): void {
    if (this.conf.voters.length === 1 && this.isVoter()) {
      this.readStates.push({ requestId, index: this.log.committed });
      return;
    }
    this.readQueue.push({ requestId, index: this.log.committed, round: 0 });
    if (this.readRoundInFlight === 0) this.startReadRound();
  }

  /**
   * One heartbeat round confirms every read queued before it started; reads that
   * arrive meanwhile wait for the next round, so a busy leader pays one round per batch.
   */
  private startReadRound(): void {
    this.readRound++;
    this.readRoundInFlight = this.readRound;
    for (const read of this.readQueue) if (read.round === 0) read.round = this.readRound;
    const self = this.progress.get(this.id);
    if (self !== undefined) self.readRoundAck = this.readRound;
    this.broadcastHeartbeat();
  }

  private confirmReads(): void {
    const confirmed = quorumMinimum(this.conf.voters, (id) => (id === this.id ? this.readRound : (this.progress.get(id)?.readRoundAck ?? 0)));
    if (confirmed === 0) return;
    const stillWaiting: PendingRead[] = [];
    for (const read of this.readQueue) {
      if (read.round !== 0 && read.round <= confirmed) this.readStates.push({ requestId: read.requestId, index: read.index });
      else stillWaiting.push(read);
    }
    this.readQueue = stillWaiting;
    if (confirmed >= this.readRoundInFlight) {
      this.readRoundInFlight = 0;
      if (this.readQueue.length > 0) this.startReadRound();
    }
  }

  private abortReads(): void {
    for (const read of this.readQueue) this.abortedReads.push(read.requestId);
    this.abortedReads.push(...this.readsAwaitingNoop);
    this.readQueue = [];
    this.readsAwaitingNoop = [];
    this.readRoundInFlight = 0;
  }

  // ---- Membership ---------------------------------------------------------

  /** Applies the membership changes among newly committed entries (from, to]. */
  private applyConfChanges(from: number, to: number): void {
    for (let index = from + 1; index <= to; index++) {
      const entry = this.log.entryAt(index);
      if (entry?.type === 'config') this.applyConfChange(decodeConfChange(entry.data), index);
    }
  }

  private applyConfChange(change: ConfChange, index: number): void {
    this.conf = applyConfChange(this.conf, change);
    this.confHistory.push({ index, conf: this.conf });
    if (change.type === 'addLearner' && change.nodeId === this.id) this.addedBack(index);
    this.logger.info({ change: change.type, node: change.nodeId, index, voters: this.conf.voters, learners: this.conf.learners }, 'membership changed');
    if (this.role !== 'leader') return;
    switch (change.type) {
      case 'addLearner':
        if (!this.progress.has(change.nodeId)) this.progress.set(change.nodeId, new Progress(this.log.lastIndex() + 1, this.maxInflight, true));
        break;
      case 'promote': {
        const pr = this.progress.get(change.nodeId);
        if (pr !== undefined) pr.isLearner = false;
        break;
      }
      case 'remove':
        this.progress.delete(change.nodeId);
        this.sentCommit.delete(change.nodeId);
        if (this.leadTransferee === change.nodeId) this.leadTransferee = NONE;
        break;
    }
    this.appendsPending = true;
    if (!isMember(this.conf, this.id)) {
      // Tell the others the removal committed, then step aside.
      this.flushAppends();
      this.logger.info({ term: this.term }, 'removed from the cluster: stepping down');
      this.becomeFollower(this.term, NONE);
      return;
    }
    this.maybeCommit(); // the quorum changed
  }

  /** A committed change at `index` lists this node: after a removal reported before it, it may campaign again. */
  private addedBack(index: number): void {
    if (this.removedAt === 0 || index <= this.removedAt) return;
    this.logger.info({ index, removedAt: this.removedAt }, 'added back to the cluster');
    this.removedAt = 0;
  }

  private confAt(index: number): ConfState {
    let conf = (this.confHistory[0] as { conf: ConfState }).conf;
    for (const record of this.confHistory) {
      if (record.index > index) break;
      conf = record.conf;
    }
    return conf;
  }

  // ---- Helpers ------------------------------------------------------------

  private requireLeader(): void {
    if (this.role !== 'leader') throw new NotLeaderError(this.lead);
  }

  private send(m: Message): void {
    this.messages.push(m);
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private softState(): SoftState {
    return { role: this.role, leader: this.lead, term: this.term };
  }
}

/**
 * A leader's messages (appends, heartbeats, snapshots, TimeoutNow) depend on
 * nothing the same Ready persists, so they may be sent before or while it is
 * written: the leader's disk write then overlaps its followers'. Every other
 * message (votes, acknowledgements) must wait until the Ready is durable.
 */
export function isLeaderMessage(m: Message): boolean {
  return m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot' || m.type === 'timeoutNow';
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function sameSoftState(a: SoftState, b: SoftState): boolean {
  return a.role === b.role && a.leader === b.leader && a.term === b.term;
}

/** The first durable state of a new cluster's members: a snapshot at index 1 holding the membership. */
export function bootstrapState(voters: readonly NodeId[]): InitialState {
  invariant(voters.length > 0, () => 'a cluster needs at least one voter');
  return {
    hardState: { term: 1, vote: NONE, commit: 1 },
    snapshot: { index: 1, term: 1, confState: { voters: [...voters], learners: [] } },
    entries: [],
  };
}

/** The first durable state of a node that will join a running cluster: empty, it waits to be sent a snapshot. */
export function joiningState(): InitialState {
  return { hardState: { term: 0, vote: NONE, commit: 0 }, snapshot: null, entries: [] };
}
