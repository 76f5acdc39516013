/**
 * The vocabulary of the Raft core. Indexes and terms are plain numbers that
 * must stay safe integers; conversion to uint64 happens only at the protobuf edge.
 */

export type NodeId = string;

/** Sentinel for "no node" (no vote cast, no known leader). */
export const NONE: NodeId = '';

export type EntryType = 'normal' | 'noop' | 'config';

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  /** Opaque to the core for 'normal' entries; an encoded ConfChange for 'config'; empty for 'noop'. */
  readonly data: Uint8Array;
}

/** What must be durable before any message that depends on it is sent. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId;
  readonly commit: number;
}

/** The membership: voters decide elections and commits, learners only receive the log. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  /** The membership as of `index`: a node restored from this snapshot needs no log to know its peers. */
  readonly confState: ConfState;
}

export type ConfChangeType = 'addLearner' | 'promote' | 'remove';

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: NodeId;
  /** Opaque to the core (the server keeps member addresses here). */
  readonly context: string;
}

export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';
