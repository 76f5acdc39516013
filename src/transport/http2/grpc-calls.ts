/**
 * The call objects gRPC handlers get, on our HTTP/2 streams, shaped as
 * grpc-js's (ServerUnaryCall, ServerWritableStream, ServerDuplexStream), so
 * that handlers written for grpc-js run unchanged; and the same statuses,
 * trailers and size errors on the wire.
 */
import { EventEmitter } from 'node:events';
import { Duplex, Writable } from 'node:stream';
import { TLSSocket } from 'node:tls';
import * as zlib from 'node:zlib';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { encodeHeaderBlock } from './hpack.ts';
import type { HeaderFields, ServerStream } from './server-connection.ts';

export interface Route {
  readonly path: string;
  readonly kind: 'unary' | 'serverStream' | 'bidi';
  readonly handler: grpc.UntypedHandleCall;
  readonly serialize: grpc.serialize<unknown>;
  readonly deserialize: grpc.deserialize<unknown>;
}

export interface CallLimits {
  /** grpc-js's meaning: the largest request message, and the largest answer (-1: no limit). */
  readonly maxReceiveBytes: number;
  readonly maxSendBytes: number;
}

export type RequestHeaders = Readonly<Record<string, string | string[]>>;

const PREFIX_BYTES = 5;
const RESPONSE_HEADERS: HeaderFields = [
  [':status', '200'],
  ['content-type', 'application/grpc+proto'],
  ['grpc-accept-encoding', 'identity,deflate,gzip'],
];
const OK_TRAILERS: HeaderFields = [
  ['grpc-status', '0'],
  ['grpc-message', 'OK'],
];
// The blocks every answer sends, encoded once (our encoder keeps no table, so they never change).
const RESPONSE_BLOCK = encodeHeaderBlock(RESPONSE_HEADERS);
const OK_TRAILERS_BLOCK = encodeHeaderBlock(OK_TRAILERS);
/** Request headers that are transport, not call metadata (grpc-js drops the same). */
const TRANSPORT_HEADERS = ['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type'];
const TIMEOUT_PATTERN = /^(\d{1,8})\s*([HMSmun])$/;
const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
/** Messages a bidi call may hold unread or unsent before the client is cut off. */
const MAX_QUEUED_MESSAGES = 1000;
/** The longest delay setTimeout takes (2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A status with details and metadata, as grpc-js's serverErrorToStatus reads an error. */
function statusOf(error: unknown, trailer: grpc.Metadata | null | undefined): { code: grpc.status; details: string; metadata: grpc.Metadata | null } {
  const withCode = error as Partial<grpc.StatusObject> & { message?: string };
  const hasCode = typeof withCode.code === 'number' && Number.isInteger(withCode.code);
  const details = hasCode && typeof withCode.details === 'string' ? withCode.details : (withCode.message ?? 'Unknown Error');
  return { code: hasCode ? (withCode.code as grpc.status) : grpc.status.UNKNOWN, details, metadata: trailer ?? withCode.metadata ?? null };
}

export function metadataFields(metadata: grpc.Metadata | null | undefined): [string, string][] {
  if (metadata === null || metadata === undefined) return [];
  const fields: [string, string][] = [];
  for (const [name, value] of Object.entries(metadata.toHttp2Headers())) {
    for (const one of Array.isArray(value) ? value : [value]) fields.push([name, String(one)]);
  }
  return fields;
}

/** Answers a stream with a status and nothing else (a trailers-only response). */
export function trailersOnly(stream: ServerStream, code: grpc.status, details: string, metadata: grpc.Metadata | null): void {
  stream.respond([[':status', '200'], ['content-type', 'application/grpc+proto'], ['grpc-status', String(code)], ['grpc-message', encodeURI(details)], ...metadataFields(metadata)], true);
}

function framed(message: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, PREFIX_BYTES);
  return frame;
}

/**
 * What every call shares: the request's facts (metadata, peer, deadline,
 * TLS peer), the response headers, the status at the end, and telling the
 * handler when the client goes away.
 */
class CallState {
  done = false;
  headersSent = false;
  private metadataCache: grpc.Metadata | null = null;
  deadline = Infinity;
  private deadlineTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly stream: ServerStream,
    readonly headers: RequestHeaders,
    readonly route: Route,
    readonly limits: CallLimits,
  ) {}

  get metadata(): grpc.Metadata {
    if (this.metadataCache === null) {
      const metadata = grpc.Metadata.fromHttp2Headers(this.headers as Record<string, string | string[]>);
      for (const name of TRANSPORT_HEADERS) metadata.remove(name);
      this.metadataCache = metadata;
    }
    return this.metadataCache;
  }

  peer(): string {
    const socket = this.stream.socket as { remoteAddress?: string; remotePort?: number };
    if (socket.remoteAddress === undefined) return 'unknown';
    return socket.remotePort === undefined ? socket.remoteAddress : `${socket.remoteAddress}:${socket.remotePort}`;
  }

  /** As grpc-js: the peer certificate only when TLS verified it against the CA. */
  authContext(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } {
    const socket = this.stream.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const certificate = socket.getPeerCertificate();
    return certificate.raw === undefined ? { transportSecurityType: 'ssl' } : { transportSecurityType: 'ssl', sslPeerCertificate: certificate };
  }

  /** Starts the grpc-timeout's timer; false (and the call answered) when the header is malformed. */
  startDeadline(onExpiry: () => void): boolean {
    const header = this.headers['grpc-timeout'];
    if (header === undefined) return true;
    const match = TIMEOUT_PATTERN.exec(String(header));
    if (match === null) {
      this.fail(grpc.status.INTERNAL, `Invalid grpc-timeout value "${String(header)}"`, null);
      return false;
    }
    const timeoutMs = Math.trunc(Number(match[1]) * (TIMEOUT_UNIT_MS[match[2] as string] as number));
    this.deadline = Date.now() + timeoutMs;
    // Node fires a longer timer at once; a deadline over 24 days away never ends a call.
    if (timeoutMs <= MAX_TIMER_MS) {
      this.deadlineTimer = setTimeout(() => {
        if (this.done) return;
        this.fail(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded', null);
        onExpiry();
      }, timeoutMs);
    }
    return true;
  }

  sendMetadata(metadata: grpc.Metadata | null): void {
    if (this.done || this.headersSent) return;
    this.headersSent = true;
    this.stream.respond(metadata === null ? RESPONSE_BLOCK : [...RESPONSE_HEADERS, ...metadataFields(metadata)]);
  }

  /** A serialized message framed for the wire, or null (and the call failed) when it cannot be sent. */
  frame(message: unknown): Buffer | null {
    let bytes: Buffer;
    try {
      bytes = this.route.serialize(message);
    } catch {
      this.fail(grpc.status.INTERNAL, 'Error serializing response', null);
      return null;
    }
    if (this.limits.maxSendBytes !== -1 && bytes.length > this.limits.maxSendBytes) {
      this.fail(grpc.status.RESOURCE_EXHAUSTED, `Sent message larger than max (${bytes.length + PREFIX_BYTES} vs. ${this.limits.maxSendBytes})`, null);
      return null;
    }
    return framed(bytes);
  }

  /** The last message (if any) and an OK status. */
  succeed(lastMessage: Buffer | null, trailer: grpc.Metadata | null): void {
    if (this.done) return;
    this.sendMetadata(null);
    this.finish();
    this.stream.end(trailer === null ? OK_TRAILERS_BLOCK : [...OK_TRAILERS, ...metadataFields(trailer)], lastMessage ?? undefined);
  }

  fail(code: grpc.status, details: string, metadata: grpc.Metadata | null): void {
    if (this.done) return;
    this.finish();
    if (this.headersSent) this.stream.end([['grpc-status', String(code)], ['grpc-message', encodeURI(details)], ...metadataFields(metadata)]);
    else trailersOnly(this.stream, code, details, metadata);
  }

  finish(): void {
    this.done = true;
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
  }
}

/**
 * Collects a stream's request messages: each is checked against the receive
 * limit from its prefix, before it is buffered. `onMessage` gets the decoded
 * messages; a unary or server-streaming call takes exactly one.
 */
class RequestReader {
  private readonly chunks: Buffer[] = [];
  private bufferedBytes = 0;
  messages = 0;

  constructor(
    private readonly state: CallState,
    private readonly maxMessages: number,
    private readonly onMessage: (message: unknown) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.state.done) return;
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    while (this.bufferedBytes >= PREFIX_BYTES) {
      if (this.messages >= this.maxMessages) return this.fail(grpc.status.UNIMPLEMENTED, `Received more than one request message for method ${this.state.route.path}`);
      const length = this.declaredLength();
      const { maxReceiveBytes } = this.state.limits;
      if (maxReceiveBytes !== -1 && length > maxReceiveBytes) return this.fail(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${maxReceiveBytes})`);
      // The chunks are joined once, when the message is whole: joining at every chunk would copy a big message over and over.
      if (this.bufferedBytes < PREFIX_BYTES + length) return;
      const input = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks, this.bufferedBytes);
      const rest = input.subarray(PREFIX_BYTES + length);
      this.chunks.length = 0;
      if (rest.length > 0) this.chunks.push(rest);
      this.bufferedBytes = rest.length;
      this.messages++;
      const bytes = input[0] === 0 ? input.subarray(PREFIX_BYTES, PREFIX_BYTES + length) : this.decompress(input.subarray(PREFIX_BYTES, PREFIX_BYTES + length));
      if (bytes === null) return;
      let message: unknown;
      try {
        message = this.state.route.deserialize(bytes);
      } catch {
        return this.fail(grpc.status.INTERNAL, 'Error deserializing request');
      }
      this.onMessage(message);
    }
  }

  /** The length in the buffered message's 5-byte prefix, which may span chunks. */
  private declaredLength(): number {
    // A prefix split over chunks: the few chunks that hold it become one, once.
    while ((this.chunks[0] as Buffer).length < PREFIX_BYTES) {
      this.chunks.splice(0, 2, Buffer.concat(this.chunks.slice(0, 2)));
    }
    return (this.chunks[0] as Buffer).readUInt32BE(1);
  }

  /** A compressed message in the call's grpc-encoding, no larger than the receive limit once inflated; null (and the call failed) otherwise. */
  private decompress(compressed: Buffer): Buffer | null {
    const encoding = this.state.headers['grpc-encoding'];
    const { maxReceiveBytes } = this.state.limits;
    const maxOutputLength = maxReceiveBytes === -1 ? undefined : maxReceiveBytes;
    try {
      if (encoding === 'gzip') return zlib.gunzipSync(compressed, maxOutputLength === undefined ? {} : { maxOutputLength });
      if (encoding === 'deflate') return zlib.inflateSync(compressed, maxOutputLength === undefined ? {} : { maxOutputLength });
    } catch (error) {
      const tooLarge = (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
      this.fail(tooLarge ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INTERNAL, tooLarge ? `Received message larger than max (over ${maxReceiveBytes} once decompressed)` : `Received a message that does not decompress as ${String(encoding)}`);
      return null;
    }
    this.fail(grpc.status.INTERNAL, 'Received a compressed message without a grpc-encoding');
    return null;
  }

  /** At the request's end: null when it ended cleanly, else what was wrong. */
  endProblem(): string | null {
    if (this.bufferedBytes > 0) return `Received a truncated request message for method ${this.state.route.path}`;
    return null;
  }

  private fail(code: grpc.status, details: string): void {
    this.chunks.length = 0;
    this.bufferedBytes = 0;
    this.state.fail(code, details, null);
  }
}

// TypeScript takes a mixin's base only as a constructor of any[].
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type EmitterClass = new (...args: any[]) => EventEmitter;

/**
 * What every call object tells its handler, read from its CallState, and
 * the 'cancelled' event. A mixin, as the three call classes extend
 * different bases (EventEmitter, Writable, Duplex), as grpc-js's do.
 */
function withCallFacts<Base extends EmitterClass>(base: Base) {
  return class extends base {
    cancelled = false;
    /** Set by each call class's constructor. */
    declare state: CallState;

    get metadata(): grpc.Metadata {
      return this.state.metadata;
    }

    getPeer(): string {
      return this.state.peer();
    }

    getDeadline(): number {
      return this.state.deadline;
    }

    getPath(): string {
      return this.state.route.path;
    }

    getAuthContext(): object {
      return this.state.authContext();
    }

    sendMetadata(metadata: grpc.Metadata): void {
      this.state.sendMetadata(metadata);
    }

    /**
     * Wires the stream to this call: the request's bytes and end, its abort,
     * and the deadline. False when the call is already answered (a malformed
     * grpc-timeout).
     */
    protected attach(onData: (chunk: Buffer) => void, onEnd: () => void): boolean {
      const { stream } = this.state;
      stream.onAbort = () => this.cancel();
      if (!this.state.startDeadline(() => this.cancel())) return false;
      stream.onData = onData;
      stream.onEnd = onEnd;
      return true;
    }

    /** The client went away, or the deadline passed: the handler is told. */
    private cancel(): void {
      if (this.cancelled) return;
      this.state.finish();
      this.cancelled = true;
      this.emit('cancelled', 'cancelled');
      // A streaming call's writes are dropped from now on; 'close' tells the handler's listeners.
      if (this instanceof Writable) this.destroy();
    }
  };
}

/** A unary call, as grpc.ServerUnaryCall. */
export class UnaryCall extends withCallFacts(EventEmitter) {
  request: unknown = null;
  private readonly reader: RequestReader;

  constructor(stream: ServerStream, headers: RequestHeaders, route: Route, limits: CallLimits) {
    super();
    this.state = new CallState(stream, headers, route, limits);
    this.reader = new RequestReader(this.state, 1, (message) => (this.request = message));
  }

  start(): void {
    this.attach(
      (chunk) => this.reader.push(chunk),
      () => this.onEnd(),
    );
  }

  private onEnd(): void {
    if (this.state.done) return;
    const problem = this.reader.endProblem() ?? (this.reader.messages === 0 ? `Received no request message for unary method ${this.state.route.path}` : null);
    if (problem !== null) return this.state.fail(grpc.status.UNIMPLEMENTED, problem, null);
    try {
      (this.state.route.handler as grpc.handleUnaryCall<unknown, unknown>)(this as unknown as grpc.ServerUnaryCall<unknown, unknown>, (error, value, trailer) => this.respond(error, value, trailer));
    } catch {
      this.state.fail(grpc.status.UNKNOWN, 'Unknown error', null);
    }
  }

  private respond(error: unknown, value: unknown, trailer: grpc.Metadata | null | undefined): void {
    if (this.state.done) return;
    if (error !== null && error !== undefined) {
      const status = statusOf(error, trailer);
      return this.state.fail(status.code, status.details, status.metadata);
    }
    const frame = this.state.frame(value);
    if (frame !== null) this.state.succeed(frame, trailer ?? null);
  }

}

/**
 * The writing half of a streaming call, as grpc-js's ServerWritableStream:
 * write() with backpressure (false, then 'drain'), end() for OK, and an
 * 'error' event for any other status.
 */
function responseWriter(state: CallState, owner: Writable): Partial<Writable> {
  let pendingStatus: { code: grpc.status; details: string; metadata: grpc.Metadata | null } | null = null;
  owner.on('error', (error) => {
    pendingStatus = statusOf(error, null);
    owner.end();
  });
  return {
    _write(message: unknown, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
      if (state.done) return callback();
      const frame = state.frame(message);
      if (frame === null) return callback();
      state.sendMetadata(null);
      if (state.stream.write(frame)) return callback();
      // Called once: a later drain, with no write waiting, must not finish some other write.
      state.stream.onDrain = () => {
        state.stream.onDrain = () => {};
        callback();
      };
    },
    _final(callback: (error?: Error | null) => void): void {
      if (pendingStatus === null) state.succeed(null, null);
      else state.fail(pendingStatus.code, pendingStatus.details, pendingStatus.metadata);
      callback();
    },
  };
}

/** A server-streaming call, as grpc.ServerWritableStream. */
export class ServerStreamingCall extends withCallFacts(Writable) {
  request: unknown = null;
  private readonly reader: RequestReader;

  constructor(stream: ServerStream, headers: RequestHeaders, route: Route, limits: CallLimits) {
    super({ objectMode: true });
    this.state = new CallState(stream, headers, route, limits);
    this.reader = new RequestReader(this.state, 1, (message) => (this.request = message));
    const writer = responseWriter(this.state, this);
    this._write = writer._write as Writable['_write'];
    this._final = writer._final as Writable['_final'];
  }

  start(): void {
    this.attach((chunk) => this.reader.push(chunk), () => {
      if (this.state.done) return;
      const problem = this.reader.endProblem() ?? (this.reader.messages === 0 ? `Received no request message for server streaming method ${this.state.route.path}` : null);
      if (problem !== null) return this.state.fail(grpc.status.UNIMPLEMENTED, problem, null);
      try {
        (this.state.route.handler as grpc.handleServerStreamingCall<unknown, unknown>)(this as unknown as grpc.ServerWritableStream<unknown, unknown>);
      } catch {
        this.state.fail(grpc.status.UNKNOWN, 'Unknown error', null);
      }
    });
  }
}

/** A bidi call, as grpc.ServerDuplexStream: the handler runs at once and reads the requests as they come. */
export class BidiCall extends withCallFacts(Duplex) {
  private readonly reader: RequestReader;

  constructor(stream: ServerStream, headers: RequestHeaders, route: Route, limits: CallLimits) {
    super({ objectMode: true });
    this.state = new CallState(stream, headers, route, limits);
    this.reader = new RequestReader(this.state, Number.POSITIVE_INFINITY, (message) => this.pushRequest(message));
    const writer = responseWriter(this.state, this);
    this._write = writer._write as Duplex['_write'];
    this._final = writer._final as Duplex['_final'];
  }

  override _read(): void {
    // Requests are pushed as they arrive; pushRequest bounds how many may wait unread.
  }

  /** A request for the handler; a client that sends far more than it reads back is cut off, not buffered without end. */
  private pushRequest(message: unknown): void {
    if (this.readableLength + this.writableLength >= MAX_QUEUED_MESSAGES) {
      this.state.fail(grpc.status.RESOURCE_EXHAUSTED, `more than ${MAX_QUEUED_MESSAGES} messages queued on this call: read the answers`, null);
      this.destroy();
      return;
    }
    this.push(message);
  }

  start(): void {
    const attached = this.attach(
      (chunk) => this.reader.push(chunk),
      () => {
        const problem = this.reader.endProblem();
        if (problem !== null) return this.state.fail(grpc.status.UNIMPLEMENTED, problem, null);
        this.push(null);
      },
    );
    if (!attached) return;
    try {
      (this.state.route.handler as grpc.handleBidiStreamingCall<unknown, unknown>)(this as unknown as grpc.ServerDuplexStream<unknown, unknown>);
    } catch {
      this.state.fail(grpc.status.UNKNOWN, 'Unknown error', null);
    }
  }
}
