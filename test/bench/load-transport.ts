/**
 * One connection of the load generator, making unary gRPC calls with request
 * bytes that are already encoded. Two implementations:
 *
 * - `raw` (load-h2.ts): gRPC over a minimal HTTP/2 client of our own on a TCP
 *   socket. On a 2-core machine shared with the servers every cycle the
 *   generator saves is one the servers get, and this client costs a fraction
 *   of what node:http2 or grpc-js cost per call.
 * - `grpc-js`: @grpc/grpc-js `makeUnaryRequest` with pass-through
 *   (de)serializers, for a cross-check that the figures do not depend on the
 *   client. Each connection is its own channel with a local subchannel pool,
 *   because grpc-js otherwise shares one TCP connection between every channel
 *   to the same target with the same options.
 *
 * Responses are not decoded: only the status matters, and decoding would
 * charge the generator for work the measurement does not need.
 */
import * as grpc from '@grpc/grpc-js';
import { RawHttp2Connection } from './load-h2.ts';

export const CLIENT_KINDS = ['raw', 'grpc-js'] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

export const STATUS_OK = 0;

/** Called once per call with the gRPC status code. */
export type CallDone = (code: number) => void;

export interface Connection {
  /** Encodes a protobuf message the way call() expects it (framed or not). */
  prepare(message: Buffer): Buffer;
  call(path: string, prepared: Buffer, done: CallDone): void;
  /** Resolves once the connection is up, so that connecting is not measured. */
  ready(timeoutMs: number): Promise<void>;
  close(): void;
}

export function connect(kind: ClientKind, address: string, index: number): Connection {
  return kind === 'raw' ? new RawHttp2Connection(address) : new GrpcJsConnection(address, index);
}

const passThrough = (value: Buffer): Buffer => value;

class GrpcJsConnection implements Connection {
  private readonly client: grpc.Client;

  constructor(
    private readonly address: string,
    index: number,
  ) {
    this.client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      // Only to tell the channels apart in grpc-js traces.
      'grpc.bench_connection': index,
    });
  }

  prepare(message: Buffer): Buffer {
    return message;
  }

  call(path: string, prepared: Buffer, done: CallDone): void {
    this.client.makeUnaryRequest(path, passThrough, passThrough, prepared, (error) => done(error === null ? STATUS_OK : error.code));
  }

  ready(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) =>
      this.client.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(new Error(`could not connect to ${this.address}: ${error.message}`)) : resolve())),
    );
  }

  close(): void {
    this.client.close();
  }
}
