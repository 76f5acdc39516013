/**
 * gRPC over our own HTTP/2 connections (server-connection.ts): routes by
 * path to handlers written for grpc-js (the same call objects and callback),
 * so services move here unchanged.
 *
 * WORK IN PROGRESS on branch own-http2: unary calls only, plain TCP. Still
 * to come before it can replace the client port's server: server-streaming
 * and bidi calls (Watch, Backup, Health.Watch, reflection), TLS with ALPN and
 * reload, the deadline timer, drain with a grace time, and the client
 * threads' injected sockets.
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { encodeHeaderBlock } from './hpack.ts';
import { DEFAULT_LIMITS, ServerConnection } from './server-connection.ts';
import type { ConnectionLimits, HeaderFields, ServerStream } from './server-connection.ts';

interface UnaryRoute {
  readonly path: string;
  readonly handler: grpc.handleUnaryCall<unknown, unknown>;
  readonly serialize: grpc.serialize<unknown>;
  readonly deserialize: grpc.deserialize<unknown>;
}

export interface GrpcServerOptions {
  /** grpc-js's meaning: the largest request message (default 4 MiB), and the largest answer (-1: no limit). */
  readonly maxReceiveBytes?: number;
  readonly maxSendBytes?: number;
  readonly limits?: Partial<ConnectionLimits>;
}

const PREFIX_BYTES = 5;
const RESPONSE_HEADERS: HeaderFields = [
  [':status', '200'],
  ['content-type', 'application/grpc+proto'],
  ['grpc-accept-encoding', 'identity'],
];
const OK_TRAILERS: HeaderFields = [
  ['grpc-status', '0'],
  ['grpc-message', 'OK'],
];
// The two blocks every answer sends, encoded once (our encoder keeps no table, so they never change).
const RESPONSE_BLOCK = encodeHeaderBlock(RESPONSE_HEADERS);
const OK_TRAILERS_BLOCK = encodeHeaderBlock(OK_TRAILERS);

export class Http2GrpcServer {
  private readonly routes = new Map<string, UnaryRoute>();
  private readonly connections = new Set<ServerConnection>();
  private readonly maxReceiveBytes: number;
  private readonly maxSendBytes: number;
  private readonly limits: ConnectionLimits;
  private listener: net.Server | null = null;

  constructor(options: GrpcServerOptions = {}) {
    this.maxReceiveBytes = options.maxReceiveBytes ?? 4 * 1024 * 1024;
    this.maxSendBytes = options.maxSendBytes ?? -1;
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
  }

  addService(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    for (const [name, method] of Object.entries(definition)) {
      const handler = implementation[name];
      if (handler === undefined) continue;
      if (method.requestStream || method.responseStream) throw new Error(`${method.path}: streaming methods are not served here yet`);
      this.routes.set(method.path, {
        path: method.path,
        handler: handler as grpc.handleUnaryCall<unknown, unknown>,
        serialize: method.responseSerialize as grpc.serialize<unknown>,
        deserialize: method.requestDeserialize as grpc.deserialize<unknown>,
      });
    }
  }

  /** Serves gRPC on a connected socket (plain HTTP/2, prior knowledge). */
  serve(socket: Duplex): void {
    const connection = new ServerConnection(socket, (stream, fields) => this.onStream(stream, fields), this.limits);
    this.connections.add(connection);
    socket.once('close', () => this.connections.delete(connection));
  }

  listen(host: string, port: number): Promise<number> {
    const listener = net.createServer((socket) => {
      socket.setNoDelay(true);
      this.serve(socket);
    });
    this.listener = listener;
    return new Promise((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(port, host, () => resolve((listener.address() as net.AddressInfo).port));
    });
  }

  close(): void {
    this.listener?.close();
    for (const connection of this.connections) connection.destroy();
  }

  private onStream(stream: ServerStream, fields: [string, string][]): void {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of fields) {
      const seen = headers[name];
      headers[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
    }
    const path = typeof headers[':path'] === 'string' ? headers[':path'] : '';
    const route = this.routes.get(path);
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      stream.respond([[':status', '415']], true);
      return;
    }
    if (route === undefined) {
      trailersOnly(stream, grpc.status.UNIMPLEMENTED, `The server does not implement the method ${path}`, null);
      return;
    }
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity') {
      trailersOnly(stream, grpc.status.UNIMPLEMENTED, `Received message compressed with unsupported encoding "${String(encoding)}"`, null);
      return;
    }
    new UnaryCall(stream, headers, route, this.maxReceiveBytes, this.maxSendBytes).start();
  }
}

function trailersOnly(stream: ServerStream, code: grpc.status, details: string, metadata: grpc.Metadata | null): void {
  stream.respond([[':status', '200'], ['content-type', 'application/grpc+proto'], ['grpc-status', String(code)], ['grpc-message', encodeURI(details)], ...metadataFields(metadata)], true);
}

function metadataFields(metadata: grpc.Metadata | null | undefined): [string, string][] {
  if (metadata === null || metadata === undefined) return [];
  const fields: [string, string][] = [];
  for (const [name, value] of Object.entries(metadata.toHttp2Headers())) {
    for (const one of Array.isArray(value) ? value : [value]) fields.push([name, String(one)]);
  }
  return fields;
}

/** One unary call, and the call object its handler gets (grpc.ServerUnaryCall). */
class UnaryCall extends EventEmitter {
  cancelled = false;
  request: unknown = null;
  private readonly chunks: Buffer[] = [];
  private receivedBytes = 0;
  private declaredBytes = -1;
  private done = false;
  private metadataCache: grpc.Metadata | null = null;
  private headersSent = false;

  constructor(
    private readonly stream: ServerStream,
    private readonly headers: Record<string, string | string[]>,
    private readonly route: UnaryRoute,
    private readonly maxReceiveBytes: number,
    private readonly maxSendBytes: number,
  ) {
    super();
  }

  start(): void {
    this.stream.onData = (chunk) => this.onData(chunk);
    this.stream.onEnd = () => this.onEnd();
    this.stream.onAbort = () => {
      if (this.done) return;
      this.done = true;
      this.cancelled = true;
      this.emit('cancelled', 'cancelled');
    };
  }

  get metadata(): grpc.Metadata {
    if (this.metadataCache === null) {
      const metadata = grpc.Metadata.fromHttp2Headers(this.headers);
      for (const name of ['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type']) metadata.remove(name);
      this.metadataCache = metadata;
    }
    return this.metadataCache;
  }

  getPeer(): string {
    return 'unknown';
  }

  getDeadline(): number {
    return Infinity;
  }

  getPath(): string {
    return this.route.path;
  }

  getAuthContext(): object {
    return {};
  }

  sendMetadata(metadata: grpc.Metadata): void {
    if (this.done || this.headersSent) return;
    this.headersSent = true;
    this.stream.respond([...RESPONSE_HEADERS, ...metadataFields(metadata)]);
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    this.chunks.push(chunk);
    this.receivedBytes += chunk.length;
    if (this.declaredBytes < 0 && this.receivedBytes >= PREFIX_BYTES) {
      const length = (this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks)).readUInt32BE(1);
      if (this.maxReceiveBytes !== -1 && length > this.maxReceiveBytes) {
        this.fail(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${this.maxReceiveBytes})`, null);
        return;
      }
      this.declaredBytes = length;
    }
    if (this.declaredBytes >= 0 && this.receivedBytes > PREFIX_BYTES + this.declaredBytes) {
      this.fail(grpc.status.UNIMPLEMENTED, `Received more than one request message for unary method ${this.route.path}`, null);
    }
  }

  private onEnd(): void {
    if (this.done) return;
    const frame = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    this.chunks.length = 0;
    if (frame.length < PREFIX_BYTES) return this.fail(grpc.status.UNIMPLEMENTED, `Received no request message for unary method ${this.route.path}`, null);
    if (frame.length < PREFIX_BYTES + frame.readUInt32BE(1)) return this.fail(grpc.status.UNIMPLEMENTED, `Received a truncated request message for unary method ${this.route.path}`, null);
    if (frame[0] !== 0) return this.fail(grpc.status.INTERNAL, 'Received a compressed message without a grpc-encoding', null);
    try {
      this.request = this.route.deserialize(frame.subarray(PREFIX_BYTES));
    } catch {
      return this.fail(grpc.status.INTERNAL, 'Error deserializing request', null);
    }
    try {
      this.route.handler(this as unknown as grpc.ServerUnaryCall<unknown, unknown>, (error, value, trailer) => this.respond(error, value, trailer));
    } catch {
      this.fail(grpc.status.UNKNOWN, 'Unknown error', null);
    }
  }

  private respond(error: grpc.ServerErrorResponse | Partial<grpc.StatusObject> | null, value?: unknown, trailer?: grpc.Metadata | null): void {
    if (this.done) return;
    if (error !== null && error !== undefined) {
      const withCode = error as Partial<grpc.StatusObject> & { message?: string };
      const hasCode = typeof withCode.code === 'number' && Number.isInteger(withCode.code);
      const details = hasCode && typeof withCode.details === 'string' ? withCode.details : (withCode.message ?? 'Unknown Error');
      this.fail(hasCode ? (withCode.code as grpc.status) : grpc.status.UNKNOWN, details, trailer ?? withCode.metadata ?? null);
      return;
    }
    let message: Buffer;
    try {
      message = this.route.serialize(value);
    } catch {
      return this.fail(grpc.status.INTERNAL, 'Error serializing response', null);
    }
    if (this.maxSendBytes !== -1 && message.length > this.maxSendBytes) {
      return this.fail(grpc.status.RESOURCE_EXHAUSTED, `Sent message larger than max (${message.length + PREFIX_BYTES} vs. ${this.maxSendBytes})`, null);
    }
    this.done = true;
    const frame = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
    frame[0] = 0;
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, PREFIX_BYTES);
    if (!this.headersSent) this.stream.respond(RESPONSE_BLOCK);
    this.stream.end(trailer === undefined || trailer === null ? OK_TRAILERS_BLOCK : [...OK_TRAILERS, ...metadataFields(trailer)], frame);
  }

  private fail(code: grpc.status, details: string, metadata: grpc.Metadata | null): void {
    if (this.done) return;
    this.done = true;
    this.chunks.length = 0;
    if (this.headersSent) this.stream.end([['grpc-status', String(code)], ['grpc-message', encodeURI(details)], ...metadataFields(metadata)]);
    else trailersOnly(this.stream, code, details, metadata);
  }
}

