/**
 * A gRPC server on our own HTTP/2 connections (server-connection.ts), for
 * handlers written for grpc-js: addService() takes the same definitions and
 * implementations, and the handlers get grpc-js-shaped calls
 * (grpc-calls.ts).
 *
 * Why not grpc-js's server: on this 2-core machine its per-call work on top
 * of node:http2 cost ~40 µs of CPU a call even with unary calls answered
 * straight on the stream, where this server takes ~9 µs (BENCHMARKS.md).
 *
 * Plain TCP (HTTP/2 with prior knowledge, as gRPC clients speak it without
 * TLS) or TLS with ALPN h2, whose certificates are read again for each new
 * connection, so that a reload reaches it.
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { BidiCall, ServerStreamingCall, UnaryCall, trailersOnly } from './grpc-calls.ts';
import type { CallLimits, RequestHeaders, Route } from './grpc-calls.ts';
import { DEFAULT_LIMITS, ServerConnection } from './server-connection.ts';
import type { ConnectionLimits, ServerStream } from './server-connection.ts';

export interface GrpcServerOptions {
  /** grpc-js's meaning: the largest request message (default 4 MiB), and the largest answer (-1, the default: no limit). */
  readonly maxReceiveBytes?: number | undefined;
  readonly maxSendBytes?: number | undefined;
  readonly limits?: Partial<ConnectionLimits>;
}

export interface TlsOptions {
  /** The certificate, key and CA for a new connection (read for each one, so a reload takes effect). */
  readonly material: () => { readonly cert: Buffer; readonly key: Buffer; readonly ca: Buffer };
  /** Client certificates are always asked for and checked against the CA; with this, a client without one is refused. */
  readonly requireClientCertificate: boolean;
}

export class Http2GrpcServer {
  private readonly routes = new Map<string, Route>();
  private readonly connections = new Set<ServerConnection>();
  private readonly callLimits: CallLimits;
  private readonly limits: ConnectionLimits;
  private listener: net.Server | null = null;
  /** A tls.Server that never listens, for serveTls's sockets; made on first use. */
  private tlsAcceptor: tls.Server | null = null;

  constructor(options: GrpcServerOptions = {}) {
    this.callLimits = { maxReceiveBytes: options.maxReceiveBytes ?? 4 * 1024 * 1024, maxSendBytes: options.maxSendBytes ?? -1 };
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
  }

  addService(definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation): void {
    for (const [name, method] of Object.entries(definition)) {
      const handler = implementation[name];
      if (handler === undefined) continue;
      if (method.requestStream && !method.responseStream) throw new Error(`${method.path}: client-streaming methods are not served`);
      this.routes.set(method.path, {
        path: method.path,
        kind: method.requestStream ? 'bidi' : method.responseStream ? 'serverStream' : 'unary',
        handler,
        serialize: method.responseSerialize as grpc.serialize<unknown>,
        deserialize: method.requestDeserialize as grpc.deserialize<unknown>,
      });
    }
  }

  /** Serves gRPC on a connected socket: plain, or a TLSSocket whose handshake is done. */
  serve(socket: Duplex): void {
    const connection = new ServerConnection(socket, (stream, fields) => this.onStream(stream, fields), this.limits);
    this.connections.add(connection);
    socket.once('close', () => this.connections.delete(connection));
  }

  /**
   * The TLS side of a socket accepted elsewhere (the client threads accept on
   * their own): handed to a tls.Server that does not listen, which verifies
   * the client certificate as a listening one does.
   */
  serveTls(socket: net.Socket, options: TlsOptions): void {
    if (this.tlsAcceptor === null) this.tlsAcceptor = this.tlsServer(options);
    this.tlsAcceptor.emit('connection', socket);
  }

  private tlsServer(options: TlsOptions): tls.Server {
    let material = options.material();
    const server = tls.createServer(this.tlsServerOptions(options), (socket) => {
      socket.setNoDelay(true);
      this.serve(socket);
    });
    // Each new connection, before its handshake: reloaded certificates (SIGHUP) take effect from it on.
    server.on('connection', () => {
      if (options.material() === material) return;
      material = options.material();
      server.setSecureContext(this.tlsServerOptions(options));
    });
    server.on('tlsClientError', (_error, socket: tls.TLSSocket) => socket.destroy());
    return server;
  }

  /** Listens on host:port ("127.0.0.1:0", "[::1]:7001", "0.0.0.0:7001"); resolves with the port bound. */
  listen(address: string, tlsOptions: TlsOptions | null = null): Promise<number> {
    const { host, port } = splitAddress(address);
    const listener =
      tlsOptions === null
        ? net.createServer((socket) => {
            socket.setNoDelay(true);
            this.serve(socket);
          })
        : this.tlsServer(tlsOptions);
    this.listener = listener;
    return new Promise((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(port, host, () => {
        listener.off('error', reject);
        resolve((listener.address() as net.AddressInfo).port);
      });
    });
  }

  /**
   * Stops accepting, tells every connection to go away (calls in flight may
   * finish), and cuts what is left after `graceMs`.
   */
  async close(graceMs = 0): Promise<void> {
    const listener = this.listener;
    const closed = listener === null ? Promise.resolve() : new Promise<void>((resolve) => listener.close(() => resolve()));
    for (const connection of this.connections) connection.goAway();
    const deadline = Date.now() + graceMs;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    for (const connection of this.connections) connection.destroy();
    this.connections.clear();
    await closed;
  }

  private tlsServerOptions(options: TlsOptions): tls.TlsOptions {
    return { ...options.material(), ALPNProtocols: ['h2'], requestCert: true, rejectUnauthorized: options.requireClientCertificate };
  }

  private onStream(stream: ServerStream, fields: [string, string][]): void {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of fields) {
      const seen = headers[name];
      headers[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
    }
    const path = typeof headers[':path'] === 'string' ? headers[':path'] : '';
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      stream.respond([[':status', '415']], true);
      return;
    }
    const route = this.routes.get(path);
    if (route === undefined) {
      trailersOnly(stream, status.UNIMPLEMENTED, `The server does not implement the method ${path}`, null);
      return;
    }
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity' && encoding !== 'gzip' && encoding !== 'deflate') {
      trailersOnly(stream, status.UNIMPLEMENTED, `Received message compressed with unsupported encoding "${String(encoding)}"`, null);
      return;
    }
    this.startCall(stream, headers, route);
  }

  private startCall(stream: ServerStream, headers: RequestHeaders, route: Route): void {
    if (route.kind === 'unary') new UnaryCall(stream, headers, route, this.callLimits).start();
    else if (route.kind === 'serverStream') new ServerStreamingCall(stream, headers, route, this.callLimits).start();
    else new BidiCall(stream, headers, route, this.callLimits).start();
  }
}

function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  if (colon < 0) throw new Error(`address ${address} has no port`);
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(address.slice(colon + 1)) };
}
