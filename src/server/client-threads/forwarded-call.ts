/**
 * The main thread's stand-in for a grpc-js server call that a client thread
 * received: it offers what the service handlers use (request, metadata,
 * getDeadline, getPeer, getAuthContext, cancelled and its events, and for
 * server streams write/end/'drain'/writableLength and emit('error')), and
 * turns what they answer into replies for the worker.
 */
import { EventEmitter } from 'node:events';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { ReplyKind } from './protocol.ts';
import type { StatusReply } from './protocol.ts';

/** Where a call's answers go (the worker link batches them). */
export interface ReplySink {
  message(id: number, kind: ReplyKind.Unary | ReplyKind.StreamMessage, bytes: Buffer): void;
  end(id: number): void;
  status(id: number, status: StatusReply): void;
  /** The call is over: no more cancels or acknowledgements for it. */
  finished(id: number): void;
}

export interface CallFacts {
  readonly id: number;
  readonly request: unknown;
  readonly metadata: grpc.Metadata;
  /** ms since the epoch; Infinity: none. */
  readonly deadline: number;
  readonly peer: string;
  readonly certificate: PeerCertificate | null;
}

/**
 * Unacknowledged stream bytes past which write() asks the handler to wait for
 * 'drain' (what a grpc-js stream's writable buffer does in-process).
 */
export const STREAM_HIGH_WATER_BYTES = 1024 * 1024;

/** A method with the handler that serves it here (as grpc-js's server would call it). */
export interface ServedMethod {
  readonly name: string;
  readonly definition: grpc.MethodDefinition<unknown, unknown>;
  readonly handler: grpc.UntypedHandleCall;
}

type UnaryHandler = (call: ForwardedCall, callback: ForwardedCall['callback']) => void;
type StreamHandler = (call: ForwardedCall) => void;

/**
 * Runs one call that arrived as raw bytes through its method's handler: the
 * request is decoded with the method's own deserializer, and every answer
 * goes to `sink`. `beforeHandler` sees the call first (to track a stream).
 */
export function runForwardedCall(
  method: ServedMethod | undefined,
  facts: Omit<CallFacts, 'request'> & { readonly methodLabel: string },
  requestBytes: Buffer,
  sink: ReplySink,
  beforeHandler?: (call: ForwardedCall) => void,
): void {
  if (method === undefined) {
    sink.status(facts.id, { code: grpc.status.UNIMPLEMENTED, details: `no method ${facts.methodLabel}`, metadata: {} });
    return;
  }
  let request: unknown;
  try {
    request = method.definition.requestDeserialize(requestBytes);
  } catch (error) {
    sink.status(facts.id, { code: grpc.status.INVALID_ARGUMENT, details: `cannot decode the ${method.name} request: ${(error as Error).message}`, metadata: {} });
    return;
  }
  const call = new ForwardedCall({ ...facts, request }, method.definition.responseSerialize as (message: unknown) => Buffer, sink);
  beforeHandler?.(call);
  try {
    if (method.definition.responseStream) (method.handler as unknown as StreamHandler)(call);
    else (method.handler as unknown as UnaryHandler)(call, call.callback);
  } catch (error) {
    call.emit('error', { code: grpc.status.INTERNAL, details: `internal error: ${(error as Error).message}` });
  }
}

export class ForwardedCall extends EventEmitter {
  cancelled = false;
  readonly request: unknown;
  readonly metadata: grpc.Metadata;
  private ended = false;
  private unacknowledgedBytes = 0;
  private waitingForDrain = false;

  constructor(
    private readonly facts: CallFacts,
    private readonly serialize: (message: unknown) => Buffer,
    private readonly sink: ReplySink,
  ) {
    super();
    this.request = facts.request;
    this.metadata = facts.metadata;
    // A handler ends a stream with a status by emitting 'error' (as on a grpc-js stream).
    this.on('error', (error: unknown) => this.fail(error));
  }

  getDeadline(): number {
    return this.facts.deadline;
  }

  getPeer(): string {
    return this.facts.peer;
  }

  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } {
    return this.facts.certificate === null ? {} : { transportSecurityType: 'ssl', sslPeerCertificate: this.facts.certificate };
  }

  /** What the stream has handed the worker that its gRPC stream has not yet taken. */
  get writableLength(): number {
    return this.unacknowledgedBytes;
  }

  /** The unary callback grpc-js would pass the handler. */
  readonly callback = (error: grpc.ServerErrorResponse | Partial<grpc.StatusObject> | null, value?: unknown): void => {
    if (this.ended) return;
    if (error !== null && error !== undefined) {
      this.fail(error);
      return;
    }
    const bytes = this.encode(value);
    if (bytes === null) return;
    this.ended = true;
    this.sink.message(this.facts.id, ReplyKind.Unary, bytes);
    this.sink.finished(this.facts.id);
  };

  write(message: unknown): boolean {
    if (this.ended) return false;
    const bytes = this.encode(message);
    if (bytes === null) return false;
    this.sink.message(this.facts.id, ReplyKind.StreamMessage, bytes);
    this.unacknowledgedBytes += bytes.length;
    if (this.unacknowledgedBytes <= STREAM_HIGH_WATER_BYTES) return true;
    this.waitingForDrain = true;
    return false;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.sink.end(this.facts.id);
    this.sink.finished(this.facts.id);
    process.nextTick(() => this.emit('close'));
  }

  /** The worker's stream took `bytes` more. */
  acknowledge(bytes: number): void {
    this.unacknowledgedBytes = Math.max(0, this.unacknowledgedBytes - bytes);
    if (this.waitingForDrain && this.unacknowledgedBytes <= STREAM_HIGH_WATER_BYTES / 2) {
      this.waitingForDrain = false;
      this.emit('drain');
    }
  }

  /** The client cancelled, the deadline passed or the connection dropped. */
  cancel(): void {
    if (this.ended) return;
    this.ended = true;
    this.cancelled = true;
    this.sink.finished(this.facts.id);
    this.emit('cancelled', 'cancelled');
    // A handler waiting for 'drain' (Backup) looks again, sees `cancelled` and lets go.
    if (this.waitingForDrain) {
      this.waitingForDrain = false;
      this.emit('drain');
    }
    this.emit('close');
  }

  private fail(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.sink.status(this.facts.id, statusReplyOf(error));
    this.sink.finished(this.facts.id);
    process.nextTick(() => this.emit('close'));
  }

  private encode(message: unknown): Buffer | null {
    try {
      return this.serialize(message);
    } catch (error) {
      this.fail({ code: grpc.status.INTERNAL, details: `cannot encode the response: ${(error as Error).message}` });
      return null;
    }
  }
}

/** What grpc-js makes of an error a handler passes: UNKNOWN unless it has a code, its details or message, its metadata. */
export function statusReplyOf(error: unknown): StatusReply {
  const { code, details, message, metadata } = (error ?? {}) as Partial<grpc.StatusObject & Error>;
  const entries: Record<string, string> = {};
  if (metadata instanceof grpc.Metadata) {
    for (const [key, value] of Object.entries(metadata.getMap())) if (typeof value === 'string') entries[key] = value;
  }
  return { code: typeof code === 'number' ? code : grpc.status.UNKNOWN, details: details ?? message ?? 'unknown error', metadata: entries };
}
