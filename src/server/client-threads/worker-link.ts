/**
 * The main thread's end of one client thread: it runs each call the worker
 * forwards through the service's own handler (decoding the request with the
 * method's real deserializer) and sends the answers of each event-loop turn
 * back as one batch.
 */
import type { Worker } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { runForwardedCall } from './forwarded-call.ts';
import type { ForwardedCall, ReplySink, ServedMethod as HandledMethod } from './forwarded-call.ts';
import { CALL_FIELDS, FORWARDED_METADATA, ReplyKind, packBytes } from './protocol.ts';
import type { CallBatch, ClientMethod, ConnectionFacts, MainToWorker, ReplyBatch, StatusReply } from './protocol.ts';

/** A method of the table with the handler that serves it here. */
export interface ServedMethod extends ClientMethod, HandledMethod {}

export class WorkerLink implements ReplySink {
  private readonly connections = new Map<number, ConnectionFacts>();
  /** Streaming calls in progress, for cancels and acknowledgements. */
  private readonly streams = new Map<number, ForwardedCall>();
  private replies: number[] = [];
  private statuses: StatusReply[] = [];
  private chunks: Buffer[] = [];
  private bytes = 0;
  private flushScheduled = false;

  constructor(
    private readonly worker: Worker,
    private readonly methods: readonly ServedMethod[],
  ) {}

  /** Calls in progress (streams only: a unary call holds nothing here). */
  get openStreams(): number {
    return this.streams.size;
  }

  receive(batch: CallBatch): void {
    for (const facts of batch.connections) {
      const certificate = facts.certificate;
      // Structured cloning turned the certificate's Buffers into Uint8Arrays.
      if (certificate !== null && certificate.raw !== undefined) certificate.raw = Buffer.from(certificate.raw.buffer, certificate.raw.byteOffset, certificate.raw.byteLength);
      this.connections.set(facts.id, facts);
    }
    const { calls, data } = batch;
    let offset = 0;
    for (let i = 0; i < calls.length; i += CALL_FIELDS) {
      const length = calls[i + 4] as number;
      const request = data === null || length === 0 ? Buffer.alloc(0) : Buffer.from(data, offset, length);
      offset += length;
      const metadataIndex = calls[i + 5] as number;
      this.start(calls[i] as number, calls[i + 1] as number, calls[i + 2] as number, calls[i + 3] as number, request, metadataIndex < 0 ? null : (batch.metadata[metadataIndex] ?? null));
    }
    for (const id of batch.cancels) this.streams.get(id)?.cancel();
    for (let i = 0; i < batch.acks.length; i += 2) this.streams.get(batch.acks[i] as number)?.acknowledge(batch.acks[i + 1] as number);
    for (const id of batch.closed) this.connections.delete(id);
  }

  private start(id: number, methodIndex: number, connectionId: number, deadline: number, request: Buffer, values: (string | null)[] | null): void {
    const metadata = new grpc.Metadata();
    if (values !== null) {
      for (const [index, key] of FORWARDED_METADATA.entries()) {
        const value = values[index];
        if (value !== null && value !== undefined) metadata.set(key, value);
      }
    }
    const method = this.methods[methodIndex];
    const connection = this.connections.get(connectionId);
    const facts = { id, metadata, deadline, peer: connection?.peer ?? 'unknown', certificate: connection?.certificate ?? null, methodLabel: `#${methodIndex}` };
    runForwardedCall(method, facts, request, this, (call: ForwardedCall) => {
      if (method?.definition.responseStream === true) this.streams.set(id, call);
    });
  }

  // ---- ReplySink: batched per turn ----

  message(id: number, kind: ReplyKind.Unary | ReplyKind.StreamMessage, bytes: Buffer): void {
    this.replies.push(id, kind, bytes.length);
    this.chunks.push(bytes);
    this.bytes += bytes.length;
    this.scheduleFlush();
  }

  end(id: number): void {
    this.replies.push(id, ReplyKind.StreamEnd, 0);
    this.scheduleFlush();
  }

  status(id: number, status: StatusReply): void {
    this.replies.push(id, ReplyKind.Status, 0);
    this.statuses.push(status);
    this.scheduleFlush();
  }

  finished(id: number): void {
    this.streams.delete(id);
  }

  /** Orders for the worker other than replies (reload, drain). */
  send(message: Exclude<MainToWorker, ReplyBatch>): void {
    this.worker.postMessage(message);
  }

  /** The worker is gone: its streams end as if cancelled, so that their handlers let go of what they hold. */
  abandon(): void {
    for (const call of [...this.streams.values()]) call.cancel();
    this.connections.clear();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const data = packBytes(this.chunks, this.bytes);
    const batch: ReplyBatch = { type: 'replies', replies: this.replies, statuses: this.statuses, data };
    this.replies = [];
    this.statuses = [];
    this.chunks = [];
    this.bytes = 0;
    this.worker.postMessage(batch, data === null ? [] : [data]);
  }
}
