/**
 * The one place where errors become gRPC statuses. Every error a client can
 * see passes through toStatus(), so each code has one meaning everywhere:
 * UNAVAILABLE is always safe to retry, and carries the leader when known.
 */
import * as grpc from '@grpc/grpc-js';
import { ConfChangeError, NotLeaderError, ProposalDroppedError, RaftError, TransferError } from '../raft/index.ts';
import { StateError } from '../state/index.ts';
import { DeadlineError, LeaderUnreachableError, LeadershipLostError, NoLeaderError, NodeError, NodeStoppedError, OutcomeUnknownError, StateRestoringError, TransferAbortedError } from './errors.ts';
import { ProtoRangeError } from '../proto/loader.ts';

/** Metadata keys that name the leader on UNAVAILABLE, so clients go straight to it. */
export const LEADER_ID_HEADER = 'quorumkv-leader-id';
export const LEADER_ADDR_HEADER = 'quorumkv-leader-addr';

export interface LeaderHint {
  readonly id: string;
  /** The leader's client address, or '' when not known. */
  readonly clientAddr: string;
}

export type StatusError = grpc.StatusObject & Error;

export function statusError(code: grpc.status, details: string, metadata = new grpc.Metadata()): StatusError {
  return Object.assign(new Error(details), { code, details, metadata });
}

/** Metadata holding these string entries (a status's trailers as they crossed a hop). */
export function metadataOf(entries: Readonly<Record<string, string>>): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) metadata.set(key, value);
  return metadata;
}

const STATE_CODES: Record<StateError['code'], grpc.status> = {
  WRONGTYPE: grpc.status.FAILED_PRECONDITION,
  OUT_OF_RANGE: grpc.status.OUT_OF_RANGE,
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  STALE_SEQUENCE: grpc.status.FAILED_PRECONDITION,
  DATA_LOSS: grpc.status.DATA_LOSS,
};

/** Whether an error sent back by a peer or leader is already a gRPC status. */
export function isStatusError(error: unknown): error is StatusError {
  return error instanceof Error && typeof (error as Partial<StatusError>).code === 'number' && (error as Partial<StatusError>).metadata instanceof grpc.Metadata;
}

export function toStatus(error: unknown, leader: LeaderHint | null): StatusError {
  if (isStatusError(error)) return error;
  if (error instanceof StateError) {
    return statusError(STATE_CODES[error.code], error.message);
  }
  if (error instanceof ProtoRangeError) return statusError(grpc.status.INVALID_ARGUMENT, error.message);
  if (error instanceof DeadlineError) return statusError(grpc.status.DEADLINE_EXCEEDED, error.message);
  if (
    error instanceof NotLeaderError ||
    error instanceof NoLeaderError ||
    error instanceof LeaderUnreachableError ||
    error instanceof LeadershipLostError ||
    error instanceof NodeStoppedError ||
    error instanceof ProposalDroppedError ||
    error instanceof OutcomeUnknownError ||
    error instanceof StateRestoringError ||
    error instanceof TransferAbortedError
  ) {
    const metadata = new grpc.Metadata();
    if (leader !== null && leader.id !== '') {
      metadata.set(LEADER_ID_HEADER, leader.id);
      if (leader.clientAddr !== '') metadata.set(LEADER_ADDR_HEADER, leader.clientAddr);
    }
    return statusError(grpc.status.UNAVAILABLE, error.message, metadata);
  }
  if (error instanceof ConfChangeError || error instanceof TransferError) return statusError(grpc.status.FAILED_PRECONDITION, error.message);
  if (error instanceof RaftError || error instanceof NodeError) return statusError(grpc.status.INTERNAL, `${error.name}: ${error.message}`);
  const message = error instanceof Error ? error.message : String(error);
  return statusError(grpc.status.INTERNAL, `internal error: ${message}`);
}
