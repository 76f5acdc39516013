/**
 * The node's own failures. Each has a stable `code`; grpc-status.ts maps
 * them, and the state machine's and the core's errors, to gRPC statuses.
 */
import type { NodeId } from '../raft/index.ts';

export abstract class NodeError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The request waited longer than its deadline for commit or apply; it may still take effect. */
export class DeadlineError extends NodeError {
  readonly code = 'DEADLINE_EXCEEDED';
  constructor(readonly timeoutMs: number) {
    super(`not committed within ${timeoutMs} ms; it may still take effect (retry with the same client_id and sequence to be sure)`);
  }
}

/** Leadership changed before the request could complete; it did not take effect and is safe to retry. */
export class LeadershipLostError extends NodeError {
  readonly code = 'LEADERSHIP_LOST';
  constructor(readonly leader: NodeId) {
    super(`leadership changed before the request committed; retry${leader === '' ? '' : ` (the leader is now ${leader})`}`);
  }
}

/** A leadership transfer ran out its election timeout and was aborted: the leader stays (as etcd's leader-transfer timeout). */
export class TransferAbortedError extends NodeError {
  readonly code = 'TRANSFER_ABORTED';
  constructor(to: NodeId, leader: NodeId) {
    super(`the leadership transfer to ${to} did not complete within an election timeout and was aborted; ${leader} still leads: retry`);
  }
}

/** This node is shutting down. */
export class NodeStoppedError extends NodeError {
  readonly code = 'NODE_STOPPED';
  constructor() {
    super('the node is shutting down; retry on another member');
  }
}

/** No leader is known, so the request cannot be forwarded. */
export class NoLeaderError extends NodeError {
  readonly code = 'NO_LEADER';
  constructor() {
    super('no leader is known right now (an election may be under way); retry shortly');
  }
}

/** The leader could not be reached, so the request was never sent: it did not take effect. */
export class LeaderUnreachableError extends NodeError {
  readonly code = 'LEADER_UNREACHABLE';
  constructor(leader: string, reason: string) {
    super(`the leader ${leader} cannot be reached (${reason}); the request was not sent: retry shortly`);
  }
}

/** The request may or may not have taken effect (e.g. it was overtaken by a snapshot install). */
export class OutcomeUnknownError extends NodeError {
  readonly code = 'OUTCOME_UNKNOWN';
  constructor(reason: string) {
    super(`${reason}: the write may or may not have taken effect; retry with the same client_id and sequence to find out`);
  }
}

/** The state is still being rebuilt from the snapshot at start-up: nothing that reads it can be answered here yet. */
export class StateRestoringError extends NodeError {
  readonly code = 'STATE_RESTORING';
  constructor(readonly snapshotIndex: number) {
    super(`this node is still restoring its state from its snapshot (index ${snapshotIndex}) after a restart; retry shortly or ask another member`);
  }
}
