/**
 * A grpc-js Server that answers unary calls itself, straight on node:http2's
 * stream, and leaves everything else (streaming calls, sessions, keepalive,
 * TLS, shutdown) to grpc-js.
 *
 * Why: grpc-js runs every call through an interceptor chain, a stream
 * decoder, a promise per message and a per-call deadline timer; on this
 * 2-core machine a no-op grpc-js server answered about 20,000 unary calls a
 * second where the same stream handling written directly on node:http2
 * answered 39,000 (h2load, 8 connections, 256 in flight). Unary calls are the
 * whole client hot path (every KV call but Watch).
 *
 * What a handler sees is the same as with grpc-js: a call object with
 * `request`, `metadata`, `getPeer()`, `getDeadline()`, `getAuthContext()`,
 * `sendMetadata()`, `cancelled` and the 'cancelled' event, and a callback(error, value,
 * trailer). What the client sees is the same too: the response headers,
 * statuses, trailers and message-size errors grpc-js sends.
 *
 * grpc-js dispatches each new HTTP/2 stream through its `_streamHandler`
 * method (bound when a port is bound, channelz off); this class puts its own
 * in front on the instance. That is not part of grpc-js's typed API, so the
 * constructor checks it is there and a test checks that unary calls really
 * take this path (test/unit/transport/fast-unary-server.test.ts).
 */
import { EventEmitter } from 'node:events';
import type * as http2 from 'node:http2';
import { TLSSocket } from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';

type StreamHandler = (extraInterceptors: unknown[], stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void;

interface UnaryRoute {
  readonly path: string;
  readonly handler: grpc.handleUnaryCall<unknown, unknown>;
  readonly serialize: grpc.serialize<unknown>;
  readonly deserialize: grpc.deserialize<unknown>;
}

/** grpc-js's own defaults (4 MiB in, unlimited out), so the limits mean the same here. */
const DEFAULT_MAX_RECEIVE_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_SEND_BYTES = -1;

/** The 5-byte gRPC message prefix: a compressed flag and a big-endian length. */
const PREFIX_BYTES = 5;

const RESPONSE_HEADERS: http2.OutgoingHttpHeaders = {
  ':status': 200,
  'content-type': 'application/grpc+proto',
  'grpc-accept-encoding': 'identity,deflate,gzip',
  'grpc-encoding': 'identity',
};
const RESPOND_OPTIONS: http2.ServerStreamResponseOptions = { waitForTrailers: true };
const TRAILERS_ONLY_OPTIONS: http2.ServerStreamResponseOptions = { endStream: true };
const OK_TRAILERS: http2.OutgoingHttpHeaders = { 'grpc-status': '0', 'grpc-message': 'OK' };

/** Request headers that are transport, not call metadata (grpc-js drops the same). */
const TRANSPORT_HEADERS = ['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type'];

/** The longest delay setTimeout takes (2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;
const TIMEOUT_PATTERN = /^(\d{1,8})\s*([HMSmun])$/;
const TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

export class FastUnaryServer extends grpc.Server {
  private readonly routes = new Map<string, UnaryRoute>();
  private readonly maxReceiveBytes: number;
  private readonly maxSendBytes: number;

  constructor(options: grpc.ServerOptions = {}) {
    if (options['grpc.enable_channelz'] !== 0) throw new Error('FastUnaryServer needs channelz off (grpc.enable_channelz: 0)');
    // Server interceptors would see only the calls grpc-js runs: none are allowed, so none are skipped.
    if ((options.interceptors?.length ?? 0) > 0) throw new Error('FastUnaryServer takes no server interceptors');
    super(options);
    this.maxReceiveBytes = (options['grpc.max_receive_message_length'] as number | undefined) ?? DEFAULT_MAX_RECEIVE_BYTES;
    this.maxSendBytes = (options['grpc.max_send_message_length'] as number | undefined) ?? DEFAULT_MAX_SEND_BYTES;
    const self = this as unknown as { _streamHandler?: StreamHandler; onStreamOpened?: (stream: http2.ServerHttp2Stream) => void };
    const grpcHandler = self._streamHandler;
    const onStreamOpened = self.onStreamOpened;
    if (typeof grpcHandler !== 'function' || typeof onStreamOpened !== 'function') {
      throw new Error('this @grpc/grpc-js has no Server._streamHandler/onStreamOpened: FastUnaryServer needs the version package.json names');
    }
    self._streamHandler = function (this: FastUnaryServer, extraInterceptors, stream, headers) {
      const route = extraInterceptors.length === 0 ? this.fastRoute(headers) : undefined;
      if (route === undefined) {
        grpcHandler.call(this, extraInterceptors, stream, headers);
        return;
      }
      // Counts the stream for grpc.max_connection_idle_ms, as grpc-js does for its own.
      onStreamOpened.call(this, stream);
      new FastUnaryCall(stream, headers, route, this.maxReceiveBytes, this.maxSendBytes).start();
    };
  }

  override register<RequestType, ResponseType>(
    name: string,
    handler: grpc.UntypedHandleCall,
    serialize: grpc.serialize<ResponseType>,
    deserialize: grpc.deserialize<RequestType>,
    type: string,
  ): boolean {
    const added = super.register(name, handler, serialize, deserialize, type);
    if (added && type === 'unary') {
      this.routes.set(name, {
        path: name,
        handler: handler as grpc.handleUnaryCall<unknown, unknown>,
        serialize: serialize as grpc.serialize<unknown>,
        deserialize: deserialize as grpc.deserialize<unknown>,
      });
    }
    return added;
  }

  override unregister(name: string): boolean {
    this.routes.delete(name);
    return super.unregister(name);
  }

  /** The unary route for a stream this class answers itself; undefined leaves the stream to grpc-js (which also answers the malformed ones). */
  private fastRoute(headers: http2.IncomingHttpHeaders): UnaryRoute | undefined {
    const path = headers[':path'];
    const route = path === undefined ? undefined : this.routes.get(path);
    if (route === undefined) return undefined;
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) return undefined;
    // Compressed requests are rare (no client of ours compresses); grpc-js decompresses them.
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') return undefined;
    return route;
  }
}

/**
 * One unary call answered on its HTTP/2 stream: collect the request message,
 * run the handler, send the response and the status. Also what the handler
 * gets as its call object (grpc.ServerUnaryCall).
 */
export class FastUnaryCall extends EventEmitter {
  cancelled = false;
  request: unknown = null;
  private readonly chunks: Buffer[] = [];
  private receivedBytes = 0;
  /** The request message's length from its prefix; -1 until the prefix is in. */
  private declaredBytes = -1;
  private done = false;
  private deadline = Infinity;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private metadataCache: grpc.Metadata | null = null;
  /** Whether the response headers went out (sendMetadata, or the answer). */
  private headersSent = false;
  /** What the response ends with, sent when node:http2 asks for it ('wantTrailers'). */
  private trailers: http2.OutgoingHttpHeaders = OK_TRAILERS;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly route: UnaryRoute,
    private readonly maxReceiveBytes: number,
    private readonly maxSendBytes: number,
  ) {
    super();
  }

  start(): void {
    const { stream } = this;
    // An 'error' event always comes with 'close', which is where a cut call ends.
    stream.on('error', () => {});
    stream.on('close', () => this.onClose());
    const timeout = this.headers['grpc-timeout'];
    if (timeout !== undefined && !this.startDeadline(timeout)) return;
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => this.onEnd());
  }

  get metadata(): grpc.Metadata {
    if (this.metadataCache === null) {
      const metadata = grpc.Metadata.fromHttp2Headers(this.headers);
      for (const name of TRANSPORT_HEADERS) metadata.remove(name);
      this.metadataCache = metadata;
    }
    return this.metadataCache;
  }

  getPeer(): string {
    const socket = this.stream.session?.socket;
    if (socket?.remoteAddress === undefined) return 'unknown';
    return socket.remotePort === undefined ? socket.remoteAddress : `${socket.remoteAddress}:${socket.remotePort}`;
  }

  getDeadline(): number {
    return this.deadline;
  }

  getPath(): string {
    return this.route.path;
  }

  getHost(): string {
    return this.headers[':authority'] ?? this.headers.host ?? '';
  }

  /** As grpc-js: the peer certificate only when TLS verified it against the CA. */
  getAuthContext(): { transportSecurityType?: string; sslPeerCertificate?: PeerCertificate } {
    const socket = this.stream.session?.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const certificate = socket.getPeerCertificate();
    return certificate.raw === undefined ? { transportSecurityType: 'ssl' } : { transportSecurityType: 'ssl', sslPeerCertificate: certificate };
  }

  private startDeadline(header: string | string[]): boolean {
    const match = TIMEOUT_PATTERN.exec(String(header));
    if (match === null) {
      this.sendStatus(grpc.status.INTERNAL, `Invalid grpc-timeout value "${String(header)}"`, null);
      return false;
    }
    const timeoutMs = Math.trunc(Number(match[1]) * (TIMEOUT_UNIT_MS[match[2] as string] as number));
    this.deadline = Date.now() + timeoutMs;
    // Node fires a longer timer at once (with a warning); a deadline over 24 days away never ends a call.
    if (timeoutMs > MAX_TIMER_MS) return true;
    this.deadlineTimer = setTimeout(() => {
      if (this.done) return;
      this.sendStatus(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded', null);
      this.cancel();
    }, timeoutMs);
    return true;
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    this.chunks.push(chunk);
    this.receivedBytes += chunk.length;
    if (this.declaredBytes < 0 && this.receivedBytes >= PREFIX_BYTES) {
      const head = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks);
      const length = head.readUInt32BE(1);
      // The same check and words as grpc-js's decoder, before the message is buffered whole.
      if (this.maxReceiveBytes !== -1 && length > this.maxReceiveBytes) {
        this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${this.maxReceiveBytes})`, null);
        return;
      }
      this.declaredBytes = length;
    }
    // A unary call has one message: anything past it is refused now, not buffered until the client ends.
    if (this.declaredBytes >= 0 && this.receivedBytes > PREFIX_BYTES + this.declaredBytes) {
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received more than one request message for unary method ${this.route.path}`, null);
    }
  }

  private onEnd(): void {
    if (this.done) return;
    const frame = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks.length = 0;
    if (frame.length < PREFIX_BYTES) {
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received no request message for unary method ${this.route.path}`, null);
      return;
    }
    // onData refused any bytes past the declared message, so only a short one is left to catch.
    if (frame.length < PREFIX_BYTES + frame.readUInt32BE(1)) {
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received a truncated request message for unary method ${this.route.path}`, null);
      return;
    }
    if (frame[0] !== 0) {
      this.sendStatus(grpc.status.INTERNAL, 'Received a compressed message without a grpc-encoding', null);
      return;
    }
    try {
      this.request = this.route.deserialize(frame.subarray(PREFIX_BYTES));
    } catch {
      this.sendStatus(grpc.status.INTERNAL, 'Error deserializing request', null);
      return;
    }
    try {
      this.route.handler(this as unknown as grpc.ServerUnaryCall<unknown, unknown>, (error, value, trailer) => this.respond(error, value, trailer));
    } catch {
      this.sendStatus(grpc.status.UNKNOWN, 'Unknown error', null);
    }
  }

  private respond(error: grpc.ServerErrorResponse | Partial<grpc.StatusObject> | null, value?: unknown, trailer?: grpc.Metadata | null): void {
    if (this.done) return;
    if (error !== null && error !== undefined) {
      // grpc-js's serverErrorToStatus: a numeric code and its details, else UNKNOWN with the message.
      const withCode = error as Partial<grpc.StatusObject> & { message?: string };
      const hasCode = typeof withCode.code === 'number' && Number.isInteger(withCode.code);
      const details = hasCode && typeof withCode.details === 'string' ? withCode.details : (withCode.message ?? 'Unknown Error');
      this.sendStatus(hasCode ? (withCode.code as grpc.status) : grpc.status.UNKNOWN, details, trailer ?? withCode.metadata ?? null);
      return;
    }
    let message: Buffer;
    try {
      message = this.route.serialize(value);
    } catch {
      this.sendStatus(grpc.status.INTERNAL, 'Error serializing response', null);
      return;
    }
    if (this.maxSendBytes !== -1 && message.length > this.maxSendBytes) {
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Sent message larger than max (${message.length + PREFIX_BYTES} vs. ${this.maxSendBytes})`, null);
      return;
    }
    if (this.stream.destroyed || this.stream.closed) return;
    this.finish();
    const frame = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
    frame[0] = 0;
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, PREFIX_BYTES);
    this.trailers = trailer === undefined || trailer === null ? OK_TRAILERS : { ...OK_TRAILERS, ...trailer.toHttp2Headers() };
    if (!this.headersSent) {
      this.headersSent = true;
      this.stream.respond(RESPONSE_HEADERS, RESPOND_OPTIONS);
    }
    this.stream.once('wantTrailers', () => this.stream.sendTrailers(this.trailers));
    this.stream.end(frame);
  }

  /** A trailers-only response: the status and its metadata in the one header block. */
  private sendStatus(code: grpc.status, details: string, metadata: grpc.Metadata | null): void {
    if (this.done) return;
    this.finish();
    // The rest of the request (if any) is read and dropped.
    this.chunks.length = 0;
    this.stream.resume();
    if (this.stream.destroyed || this.stream.closed) return;
    const status: http2.OutgoingHttpHeaders = { 'grpc-status': String(code), 'grpc-message': encodeURI(details), ...metadata?.toHttp2Headers() };
    if (this.headersSent) {
      // The handler sent its metadata already: the status goes in trailers after them.
      this.trailers = status;
      this.stream.once('wantTrailers', () => this.stream.sendTrailers(this.trailers));
      this.stream.end();
      return;
    }
    this.stream.respond({ ':status': 200, 'content-type': 'application/grpc+proto', ...status }, TRAILERS_ONLY_OPTIONS);
  }

  /** The response headers, with the handler's metadata, at once (grpc-js's call.sendMetadata). */
  sendMetadata(metadata: grpc.Metadata): void {
    if (this.done || this.headersSent || this.stream.destroyed || this.stream.closed) return;
    this.headersSent = true;
    this.stream.respond({ ...RESPONSE_HEADERS, ...metadata.toHttp2Headers() }, RESPOND_OPTIONS);
  }

  private finish(): void {
    this.done = true;
    if (this.deadlineTimer !== null) clearTimeout(this.deadlineTimer);
  }

  /** The stream closed: a call that had not answered yet was cancelled by the client (or the connection). */
  private onClose(): void {
    if (this.done) return;
    this.finish();
    this.cancel();
  }

  /** Tells the handler its answer is no longer wanted (grpc-js's 'cancelled' event). */
  private cancel(): void {
    this.cancelled = true;
    this.emit('cancelled', 'cancelled');
  }
}
