/**
 * A follower's way to the leader for client calls: one long-lived Forward
 * stream per leader (raft.proto) on the Raft connection, carrying the calls of
 * each event-loop turn as one batch, and bringing the answers back in
 * batches. A call forwarded this way costs the leader no HTTP/2 stream of its
 * own: that per-call work is what made calls through a follower cost about
 * three times as much as calls to the leader.
 */
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import type { NodeId } from '../raft/index.ts';
import { decodeForwardedReplies, encodeForwardedCalls, forwardBatches } from '../transport/forward-codec.ts';
import type { ForwardedCall } from '../transport/forward-codec.ts';
import { DeadlineError, LeaderUnreachableError } from './errors.ts';
import type { ForwardedFor } from './forwarder.ts';
import { metadataOf, statusError } from './grpc-status.ts';

/** How grpc-js begins the status of a call it failed because no connection could be made. */
const NEVER_SENT = 'No connection established';

/** Opens a Forward stream to a peer; null when the peer has no known address. */
export type OpenForwardStream = (peer: NodeId) => grpc.ClientDuplexStream<Buffer, Buffer> | null;

interface PendingCall {
  readonly resolve: (response: Buffer) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/** The calls to one peer: its stream (opened on demand), what waits for an answer, what goes out this turn. */
class ForwardChannel {
  private stream: grpc.ClientDuplexStream<Buffer, Buffer> | null = null;
  private readonly pending = new Map<number, PendingCall>();
  private queue: ForwardedCall[] = [];
  private flushScheduled = false;

  constructor(
    private readonly peer: NodeId,
    private readonly open: OpenForwardStream,
  ) {}

  call(call: ForwardedCall, pending: PendingCall): void {
    this.pending.set(call.id, pending);
    this.queue.push(call);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Nothing waits for an answer and nothing is queued: closing loses nothing. */
  get idle(): boolean {
    return this.pending.size === 0 && this.queue.length === 0;
  }

  /** The caller's deadline passed: its answer, if it comes, goes nowhere. */
  forget(id: number): void {
    this.pending.delete(id);
  }

  close(reason: string): void {
    const stream = this.stream;
    this.stream = null;
    stream?.cancel();
    this.failAll(reason);
  }

  private flush(): void {
    this.flushScheduled = false;
    const calls = this.queue;
    this.queue = [];
    const stream = this.stream ?? this.openStream();
    if (stream === null) {
      for (const call of calls) this.settle(call.id, new LeaderUnreachableError(this.peer, 'no address is known for it'));
      return;
    }
    // grpc-js buffers what the connection cannot take yet; the callers' deadlines bound what waits.
    for (const batch of forwardBatches(calls, (call) => call.request.length)) stream.write(encodeForwardedCalls(batch));
  }

  private openStream(): grpc.ClientDuplexStream<Buffer, Buffer> | null {
    const stream = this.open(this.peer);
    if (stream === null) return null;
    this.stream = stream;
    stream.on('data', (bytes: Buffer) => this.receive(bytes));
    const broken = (reason: string | Error): void => {
      if (this.stream !== stream) return;
      this.stream = null;
      this.failAll(reason);
    };
    stream.on('error', (error: grpc.ServiceError) => {
      const details = error.details || error.message;
      // grpc-js's words for a call that never had a connection to go out on: nothing reached the leader.
      if (details.startsWith(NEVER_SENT)) broken(new LeaderUnreachableError(this.peer, details));
      else broken(`the stream forwarding calls to the leader ${this.peer} failed (${details})`);
    });
    stream.on('end', () => broken(`the leader ${this.peer} ended the stream forwarding calls`));
    return stream;
  }

  private receive(bytes: Buffer): void {
    let replies;
    try {
      replies = decodeForwardedReplies(bytes);
    } catch (error) {
      this.close(`the leader ${this.peer} sent a malformed reply batch: ${(error as Error).message}`);
      return;
    }
    for (const reply of replies) {
      if (reply.code === status.OK) this.settle(reply.id, Buffer.from(reply.response.buffer, reply.response.byteOffset, reply.response.byteLength));
      else this.settle(reply.id, statusError(reply.code, reply.details, metadataOf(reply.trailers)));
    }
  }

  private settle(id: number, outcome: Buffer | Error): void {
    const pending = this.pending.get(id);
    if (pending === undefined) return;
    this.pending.delete(id);
    clearTimeout(pending.timer);
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  /**
   * Fails every call waiting for an answer. Unless `reason` says none was sent, a write among them
   * may or may not have been applied: UNAVAILABLE, and the client retries with its session.
   */
  private failAll(reason: string | Error): void {
    const error =
      reason instanceof Error
        ? reason
        : statusError(status.UNAVAILABLE, `${reason}; the call may or may not have taken effect: retry (with the same client_id and sequence for a write)`);
    for (const id of [...this.pending.keys()]) this.settle(id, error);
  }
}

export class ForwardClient {
  private readonly channels = new Map<NodeId, ForwardChannel>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly open: OpenForwardStream) {}

  /** Runs a call (`path`: its gRPC method path) on `peer`; resolves with the response bytes, rejects with its status. */
  call(peer: NodeId, path: string, request: Uint8Array, timeoutMs: number, caller: ForwardedFor | null): Promise<Buffer> {
    if (this.closed) return Promise.reject(statusError(status.UNAVAILABLE, 'this node is stopping'));
    let channel = this.channels.get(peer);
    if (channel === undefined) {
      // A new leader: the streams to former ones are closed once nothing waits on them.
      for (const [other, old] of this.channels) {
        if (!old.idle) continue;
        old.close('the leader changed');
        this.channels.delete(other);
      }
      channel = new ForwardChannel(peer, this.open);
      this.channels.set(peer, channel);
    }
    const id = this.nextId++;
    const forwarded: ForwardedCall = {
      id,
      method: path,
      timeoutMs: Math.max(1, Math.ceil(timeoutMs)),
      request,
      user: caller?.user ?? '',
      authorization: caller?.authorization ?? '',
    };
    const target = channel;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        target.forget(id);
        reject(new DeadlineError(timeoutMs));
      }, timeoutMs);
      target.call(forwarded, { resolve, reject, timer });
    });
  }

  close(): void {
    this.closed = true;
    for (const channel of this.channels.values()) channel.close('this node is stopping');
    this.channels.clear();
  }
}
