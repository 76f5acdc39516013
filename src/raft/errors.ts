import type { NodeId } from './types.ts';

/** Base of the core's errors: a stable `code` for callers, a message for people. */
export abstract class RaftError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** This node is not the leader; `leader` is the one it knows of, or '' when none. */
export class NotLeaderError extends RaftError {
  readonly code = 'NOT_LEADER';
  constructor(readonly leader: NodeId) {
    super(leader === '' ? 'not the leader, and no leader is known' : `not the leader; the leader is ${leader}`);
  }
}

/** The leader cannot take this proposal now (e.g. a leadership transfer is under way). Safe to retry. */
export class ProposalDroppedError extends RaftError {
  readonly code = 'PROPOSAL_DROPPED';
}

/** A membership change that is not allowed now, or not at all. */
export class ConfChangeError extends RaftError {
  readonly code = 'CONF_CHANGE_REJECTED';
}

/** A leadership transfer that cannot start. */
export class TransferError extends RaftError {
  readonly code = 'TRANSFER_REJECTED';
}

/** A request to compact the log at an index it cannot use. */
export class CompactionError extends RaftError {
  readonly code = 'COMPACTION_REJECTED';
}

/** The caller broke the Ready/advance protocol, or state handed to the core is inconsistent. */
export class RaftInvariantError extends RaftError {
  readonly code = 'INVARIANT';
}

export function invariant(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new RaftInvariantError(message());
}
