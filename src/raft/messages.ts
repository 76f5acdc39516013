import type { Entry, NodeId, SnapshotMeta } from './types.ts';

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  /**
   * The sender's term, except: a preVote carries the term the sender would
   * campaign in, and a granted preVoteResp echoes that term.
   */
  readonly term: number;
}

export interface VoteRequest extends Envelope {
  readonly type: 'preVote' | 'vote';
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set when a leader handed over with TimeoutNow: voters skip the leader-lease check. */
  readonly leaderTransfer: boolean;
}

export interface VoteResponse extends Envelope {
  readonly type: 'preVoteResp' | 'voteResp';
  readonly reject: boolean;
}

export interface AppendRequest extends Envelope {
  readonly type: 'append';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
}

export interface AppendResponse extends Envelope {
  readonly type: 'appendResp';
  readonly reject: boolean;
  /** On success the last index now known to match; on reject the prevIndex that did not match. */
  readonly index: number;
  /** On reject: the follower's guess of the last index that may match, and its term (fast backoff). */
  readonly hintIndex: number;
  readonly hintTerm: number;
}

export interface Heartbeat extends Envelope {
  readonly type: 'heartbeat';
  /** min(follower's match, leader's commit): never ahead of what the follower holds. */
  readonly commit: number;
  /** The latest ReadIndex round the leader started; echoed back to confirm leadership. */
  readonly readRound: number;
}

export interface HeartbeatResponse extends Envelope {
  readonly type: 'heartbeatResp';
  readonly readRound: number;
}

export interface InstallSnapshot extends Envelope {
  readonly type: 'snapshot';
  /** The snapshot's data travels beside the message: the transport streams it, the core never sees it. */
  readonly snapshot: SnapshotMeta;
}

export interface TimeoutNow extends Envelope {
  readonly type: 'timeoutNow';
  /** The leader's commit index, capped at what the target holds: it learns the commit (a promotion among it) before campaigning. */
  readonly commit: number;
}

export type Message =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | InstallSnapshot
  | TimeoutNow;

export type MessageType = Message['type'];
