/**
 * QuorumError: every failure the client reports, named by its gRPC status
 * code with the server's message. Local argument checks use the same class
 * (INVALID_ARGUMENT) so callers handle one type.
 */
import * as grpc from '@grpc/grpc-js';

/** A gRPC status code's name, e.g. 'FAILED_PRECONDITION'. */
export type StatusName = Exclude<keyof typeof grpc.status, number>;

/** Trailing-metadata keys a node sets on UNAVAILABLE when it knows the leader. */
export const LEADER_ID_METADATA = 'quorumkv-leader-id';
export const LEADER_ADDR_METADATA = 'quorumkv-leader-addr';

export interface LeaderHint {
  /** The leader's member id; empty when the node named only its address. */
  readonly id: string;
  /** The leader's client address (HOST:PORT). */
  readonly address: string;
}

export interface QuorumErrorOptions {
  readonly cause?: unknown;
  /** The endpoint whose answer this is, when one answered. */
  readonly endpoint?: string;
  readonly leader?: LeaderHint;
  /** How many attempts the call made before giving up. */
  readonly attempts?: number;
}

export class QuorumError extends Error {
  /** The gRPC status code's name: stable, safe to switch on. */
  readonly code: StatusName;
  /** The server's message (or the client's, for local checks). */
  readonly details: string;
  readonly endpoint: string | undefined;
  readonly leader: LeaderHint | undefined;
  readonly attempts: number;

  constructor(code: StatusName, details: string, options: QuorumErrorOptions = {}) {
    super(`${code}: ${details}`, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'QuorumError';
    this.code = code;
    this.details = details;
    this.endpoint = options.endpoint;
    this.leader = options.leader;
    this.attempts = options.attempts ?? 1;
  }

  /** The numeric gRPC status code. */
  get grpcCode(): grpc.status {
    return grpc.status[this.code];
  }

  /** The same error, recording how many attempts were made. */
  withAttempts(attempts: number): QuorumError {
    return new QuorumError(this.code, this.details, {
      cause: this.cause,
      ...(this.endpoint === undefined ? {} : { endpoint: this.endpoint }),
      ...(this.leader === undefined ? {} : { leader: this.leader }),
      attempts,
    });
  }
}

/** A local check failed before anything was sent. */
export function invalidArgument(details: string): QuorumError {
  return new QuorumError('INVALID_ARGUMENT', details);
}

/** The QuorumError for whatever a grpc-js call failed with. */
export function fromCallError(error: unknown, endpoint: string): QuorumError {
  if (error instanceof QuorumError) return error;
  if (!isServiceError(error)) {
    return new QuorumError('UNKNOWN', error instanceof Error ? error.message : String(error), { cause: error, endpoint });
  }
  const code = (grpc.status[error.code] as StatusName | undefined) ?? 'UNKNOWN';
  const leader = leaderHint(error.metadata);
  return new QuorumError(code, describe(error.details) || code, { cause: error, endpoint, ...(leader === undefined ? {} : { leader }) });
}

/**
 * grpc-js's connection failures in one short line. The inner error names the
 * address (a node forwarding to a dead leader passes its own such failure
 * on, so the address is not necessarily the endpoint's).
 */
function describe(details: string): string {
  const connect = /^No connection established\. Last error: (?:Error: )?(.*?)\.?\s*(?:Resolution note:.*)?$/s.exec(details);
  if (connect !== null) return `cannot connect: ${connect[1] ?? ''}`;
  return details.replace(/\s*Resolution note:\s*$/, '');
}

function isServiceError(error: unknown): error is grpc.ServiceError {
  return error instanceof Error && typeof (error as Partial<grpc.ServiceError>).code === 'number';
}

function leaderHint(metadata: grpc.Metadata | undefined): LeaderHint | undefined {
  if (metadata === undefined) return undefined;
  const address = firstString(metadata, LEADER_ADDR_METADATA);
  if (address === '') return undefined;
  return { id: firstString(metadata, LEADER_ID_METADATA), address };
}

function firstString(metadata: grpc.Metadata, key: string): string {
  const value = metadata.get(key)[0];
  return typeof value === 'string' ? value.trim() : '';
}
