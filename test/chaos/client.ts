/**
 * The chaos suite's gRPC client: one node, one attempt per call, no retries,
 * so that each recorded operation is exactly one request whose fate the
 * history can describe. And the one place that decides what an error says
 * about a write: definitely not applied ('fail') or maybe applied ('unknown').
 */
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../../src/proto/loader.ts';
import { GrpcError } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';

type UnaryFn = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: Reply) => void) => void;

const CLUSTER_METHODS = new Set(['Status', 'Members', 'AddMember', 'RemoveMember', 'PromoteMember', 'TransferLeadership', 'Snapshot']);

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // grpc-js waits up to 120 s between reconnects by default: far too long after a node restarts.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  // A channel of its own, so that closing it after a kill really drops the old connection.
  'grpc.use_local_subchannel_pool': 1,
  'grpc.enable_retries': 0,
};

export class ChaosClient {
  private readonly kv: grpc.Client;
  private readonly cluster: grpc.Client;

  constructor(readonly address: string) {
    const protos = loadProtos();
    this.kv = new protos.clients.kv(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    this.cluster = new protos.clients.cluster(address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  call(method: string, request: object, timeoutMs: number): Promise<Reply> {
    const client = CLUSTER_METHODS.has(method) ? this.cluster : this.kv;
    const fn = (client as unknown as Record<string, UnaryFn>)[method];
    if (fn === undefined) return Promise.reject(new Error(`no method ${method}`));
    return new Promise((resolve, reject) =>
      fn.call(client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (error, reply) => {
        if (error !== null) reject(new GrpcError(error.code, error.details, error.metadata));
        else resolve(reply ?? {});
      }),
    );
  }

  close(): void {
    this.kv.close();
    this.cluster.close();
  }
}

/**
 * UNAVAILABLE answers that promise the write never took effect: the server's
 * own (src/server/errors.ts, src/raft/errors.ts), and grpc-js failing a call
 * it never sent. Every other UNAVAILABLE (a connection dropped mid-call, a
 * node shutting down with writes in flight, a snapshot overtaking a write)
 * leaves the outcome unknown. Trusting these claims is deliberate: if one is
 * false, the checker sees a write that "failed" yet took effect.
 */
const NOT_APPLIED = [
  /^not the leader/,
  /^no leader is known right now/,
  /^leadership changed before the request committed/,
  /^leadership is being transferred to/,
  /^No connection established/,
  /^the leader \S+ cannot be reached .*the request was not sent/,
];

/** Status codes that mean the request was refused before it could change anything. */
const REFUSED = new Set([grpc.status.INVALID_ARGUMENT, grpc.status.FAILED_PRECONDITION, grpc.status.OUT_OF_RANGE, grpc.status.RESOURCE_EXHAUSTED]);

export type ErrorOutcome = 'fail' | 'unknown';

export function classifyError(error: unknown): ErrorOutcome {
  if (!(error instanceof GrpcError)) return 'unknown';
  if (REFUSED.has(error.code)) return 'fail';
  if (error.code === grpc.status.UNAVAILABLE && NOT_APPLIED.some((pattern) => pattern.test(error.details))) return 'fail';
  return 'unknown';
}

export function describeError(error: unknown): string {
  if (error instanceof GrpcError) return `${grpc.status[error.code] ?? error.code}: ${error.details}`;
  return error instanceof Error ? error.message : String(error);
}

export function isInternalError(error: unknown): boolean {
  return error instanceof GrpcError && (error.code === grpc.status.INTERNAL || error.code === grpc.status.DATA_LOSS || error.code === grpc.status.UNKNOWN);
}
