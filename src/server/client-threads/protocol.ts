/**
 * What the client threads and the main thread say to each other, and the
 * method table both sides index the same way.
 *
 * The workers speak gRPC/HTTP/2 and pass each call's raw request bytes to the
 * main thread, which decodes, runs the service handler and encodes the answer.
 * One postMessage costs several microseconds on each side, so each side sends
 * what one event-loop turn produced as one batch: per-call facts as flat number
 * arrays (cheap to clone), and all the turn's message bytes in one ArrayBuffer
 * that is transferred, not copied.
 */
import type * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type { TlsFiles } from '../../config/config.ts';
import type { Protos } from '../../proto/loader.ts';
import { FORWARDED_HEADER, FORWARDED_USER_HEADER } from '../forwarder.ts';

/** The services the client threads forward, in method-table order (reflection the workers answer themselves). */
export const FORWARDED_SERVICES = ['kv', 'cluster', 'health'] as const;
export type ForwardedServiceKey = (typeof FORWARDED_SERVICES)[number];

/** The metadata the services read (auth.ts, kv-service.ts, cluster-service.ts); the rest stays in the worker. */
export const FORWARDED_METADATA = ['authorization', FORWARDED_HEADER, FORWARDED_USER_HEADER] as const;

export interface ClientMethod {
  readonly service: ForwardedServiceKey;
  readonly name: string;
  readonly definition: grpc.MethodDefinition<unknown, unknown>;
}

/** Every method of the forwarded services; a call names its method by its index here. */
export function clientMethods(protos: Protos): ClientMethod[] {
  return FORWARDED_SERVICES.flatMap((service) =>
    Object.entries(protos[service] as grpc.ServiceDefinition).map(([name, definition]) => ({ service, name, definition })),
  );
}

/** How a worker runs its gRPC server (workerData). */
export interface WorkerSettings {
  readonly index: number;
  readonly host: string;
  readonly port: number;
  readonly serverOptions: grpc.ServerOptions;
  readonly tls: { readonly files: TlsFiles; readonly nodeId: string; readonly requireClientCertificate: boolean } | null;
}

/** What the main thread keeps of one client connection: its address and the verified certificate it presented. */
export interface ConnectionFacts {
  readonly id: number;
  readonly peer: string;
  readonly certificate: PeerCertificate | null;
}

/** Fields per call in CallBatch.calls. */
export const CALL_FIELDS = 6;

/** Worker to main: the calls, cancellations and flow-control acknowledgements of one turn. */
export interface CallBatch {
  readonly type: 'calls';
  /** Per call: id, method index, connection id, deadline (ms since the epoch; Infinity: none), request bytes, index into `metadata` (-1: none). */
  readonly calls: number[];
  /** FORWARDED_METADATA values per call that has any. */
  readonly metadata: (string | null)[][];
  /** Connections seen for the first time in this batch. */
  readonly connections: ConnectionFacts[];
  /** Connections that closed. */
  readonly closed: number[];
  /** Streaming calls the client cancelled (or whose connection dropped). */
  readonly cancels: number[];
  /** Per pair: stream call id, bytes the worker's gRPC stream took (so the main thread's writes may go on). */
  readonly acks: number[];
  /** The request bytes of `calls`, one after the other. */
  readonly data: ArrayBuffer | null;
}

export const REPLY_FIELDS = 3;

export const enum ReplyKind {
  /** A unary call's response. */
  Unary = 0,
  /** One message of a server stream. */
  StreamMessage = 1,
  /** A server stream ended with OK. */
  StreamEnd = 2,
  /** The call ended with a status (the next entry of ReplyBatch.statuses). */
  Status = 3,
}

export interface StatusReply {
  readonly code: number;
  readonly details: string;
  /** Trailing metadata (e.g. the leader hint on UNAVAILABLE). */
  readonly metadata: Record<string, string>;
}

/** Main to worker: the answers of one turn. */
export interface ReplyBatch {
  readonly type: 'replies';
  /** Per reply: call id, ReplyKind, message bytes (0 unless a message). */
  readonly replies: number[];
  readonly statuses: StatusReply[];
  readonly data: ArrayBuffer | null;
}

export type MainToWorker =
  | ReplyBatch
  | { readonly type: 'reload' }
  /** Listen on the socket the first worker opened. */
  | { readonly type: 'listen'; readonly fd: number }
  /** Stop taking connections, let calls finish for graceMs, then cut the rest. */
  | { readonly type: 'drain'; readonly graceMs: number };

export type WorkerToMain =
  | CallBatch
  | { readonly type: 'listening'; readonly port: number; readonly fd: number }
  | { readonly type: 'failed'; readonly message: string }
  /** Something went wrong that the worker survives (a failed accept). */
  | { readonly type: 'warning'; readonly message: string }
  | { readonly type: 'reloaded'; readonly ok: boolean; readonly error?: string; readonly serialNumber?: string }
  | { readonly type: 'drained' };

/** Packs message bytes into one fresh ArrayBuffer, so that it can be transferred. */
export function packBytes(chunks: readonly Uint8Array[], total: number): ArrayBuffer | null {
  if (total === 0) return null;
  const packed = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    packed.set(chunk, offset);
    offset += chunk.length;
  }
  return packed.buffer;
}
