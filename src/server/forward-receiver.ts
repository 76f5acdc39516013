/**
 * The leader's end of its followers' Forward streams (forward-client.ts):
 * each forwarded call runs through the same handler, authentication guard
 * included, as a call on the client port, marked forwarded so that it is not
 * forwarded again. The answers of one event-loop turn go back as one batch.
 */
import * as grpc from '@grpc/grpc-js';
import { decodeForwardedCalls, encodeForwardedReplies, forwardBatches } from '../transport/forward-codec.ts';
import type { ForwardedReply } from '../transport/forward-codec.ts';
import { runForwardedCall } from './client-threads/forwarded-call.ts';
import type { ReplySink, ServedMethod } from './client-threads/forwarded-call.ts';
import type { StatusReply } from './client-threads/protocol.ts';
import { FORWARDED_HEADER, FORWARDED_USER_HEADER } from './forwarder.ts';

const NO_BYTES = new Uint8Array(0);

/** One follower's stream: its calls in, their answers out. */
class ForwardSession implements ReplySink {
  private replies: ForwardedReply[] = [];
  private flushScheduled = false;
  private ended = false;

  constructor(
    private readonly stream: grpc.ServerDuplexStream<Buffer, Buffer>,
    private readonly methods: ReadonlyMap<string, ServedMethod>,
  ) {}

  listen(): void {
    const stream = this.stream;
    stream.on('data', (bytes: Buffer) => this.receive(bytes));
    // The follower closes its stream only when it stops; answers still under way go nowhere.
    stream.on('end', () => this.close());
    stream.on('error', () => this.close());
  }

  private receive(bytes: Buffer): void {
    if (this.ended) return;
    let calls;
    try {
      calls = decodeForwardedCalls(bytes);
    } catch (error) {
      this.ended = true;
      this.stream.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: `malformed batch of forwarded calls: ${(error as Error).message}` });
      return;
    }
    const certificate = this.stream.getAuthContext().sslPeerCertificate ?? null;
    const peer = this.stream.getPeer();
    const now = Date.now();
    for (const call of calls) {
      const metadata = new grpc.Metadata();
      metadata.set(FORWARDED_HEADER, '1');
      if (call.user !== '') metadata.set(FORWARDED_USER_HEADER, call.user);
      if (call.authorization !== '') metadata.set('authorization', call.authorization);
      const request = Buffer.from(call.request.buffer, call.request.byteOffset, call.request.byteLength);
      const facts = { id: call.id, metadata, deadline: now + call.timeoutMs, peer, certificate, methodLabel: call.method };
      runForwardedCall(this.methods.get(call.method), facts, request, this);
    }
  }

  // ---- ReplySink: one batch per turn ----

  message(id: number, _kind: unknown, bytes: Buffer): void {
    this.queue({ id, code: grpc.status.OK, response: bytes, details: '', trailers: {} });
  }

  status(id: number, status: StatusReply): void {
    this.queue({ id, code: status.code, response: NO_BYTES, details: status.details, trailers: status.metadata });
  }

  /** Only unary calls are forwarded: no call here ends a stream of its own. */
  end(): void {}

  finished(): void {}

  private close(): void {
    if (this.ended) return;
    this.ended = true;
    this.stream.end();
  }

  private queue(reply: ForwardedReply): void {
    if (this.ended) return;
    this.replies.push(reply);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const replies = this.replies;
      this.replies = [];
      if (this.ended) return;
      for (const batch of forwardBatches(replies, (reply) => reply.response.length + reply.details.length)) this.stream.write(encodeForwardedReplies(batch));
    });
  }
}

export class ForwardReceiver {
  private readonly methods: ReadonlyMap<string, ServedMethod>;

  /** `services`: the unary methods forwarded calls may name, with their (guarded) handlers. */
  constructor(services: readonly { readonly definition: grpc.ServiceDefinition; readonly handlers: grpc.UntypedServiceImplementation }[]) {
    const methods = new Map<string, ServedMethod>();
    for (const { definition, handlers } of services) {
      for (const [name, method] of Object.entries(definition)) {
        const handler = handlers[name];
        // Streams stay on the node a client called (Watch, Backup): only unary calls are forwarded.
        if (handler === undefined || method.requestStream || method.responseStream) continue;
        methods.set(method.path, { name, definition: method as grpc.MethodDefinition<unknown, unknown>, handler });
      }
    }
    this.methods = methods;
  }

  serve(stream: grpc.ServerDuplexStream<Buffer, Buffer>): void {
    const session = new ForwardSession(stream, this.methods);
    session.listen();
  }
}
