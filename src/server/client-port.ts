/**
 * The client port (KV, Cluster, Health, reflection): our own gRPC server
 * (transport/http2/) on the main thread, or with --client-threads N, N worker threads that forward
 * every call to the same handlers here (client-threads/).
 */
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { Config } from '../config/config.ts';
import { addReflection } from '../proto/loader.ts';
import type { Protos } from '../proto/loader.ts';
import type { NodeTls } from '../tls/node-tls.ts';
import { Http2GrpcServer } from '../transport/http2/grpc-server.ts';
import { GRPC_SERVER_DEFAULTS } from '../transport/grpc-server.ts';
import { ClientThreads } from './client-threads/client-threads.ts';
import type { ForwardedServiceKey } from './client-threads/protocol.ts';

/** The largest answer the client port sends (a Backup chunk, a big HGetAll). */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/** How long calls in flight may go on when the node stops, before their connections are cut. */
const STOP_GRACE_MS = 2000;

export interface ClientPort {
  readonly port: number;
  /** SIGHUP: with client threads, each re-reads the TLS files (the main thread's NodeTls reloads on its own). */
  reload(): void;
  /** Stops taking calls, lets those in flight finish for a moment, then cuts the rest. */
  stop(): Promise<void>;
}

export interface ClientPortOptions {
  readonly config: Config;
  readonly tls: NodeTls | null;
  readonly protos: Protos;
  readonly implementations: Record<ForwardedServiceKey, grpc.UntypedServiceImplementation>;
  readonly logger: Logger;
  /** A client thread failed after the start. */
  readonly onFatal: (error: Error) => void;
}

export async function serveClientPort(options: ClientPortOptions): Promise<ClientPort> {
  const { config, tls, protos, implementations } = options;
  const serverOptions: grpc.ServerOptions = {
    ...GRPC_SERVER_DEFAULTS,
    'grpc.max_receive_message_length': config.maxRequestBytes,
    'grpc.max_send_message_length': MAX_ANSWER_BYTES,
    'grpc.max_concurrent_streams': config.maxStreamsPerConnection,
  };
  if (config.clientThreads > 0) {
    const threads = await ClientThreads.start({
      threads: config.clientThreads,
      address: config.clientAddr,
      serverOptions,
      tls: tls === null ? null : { files: tls.files, nodeId: tls.nodeId, requireClientCertificate: config.clientCertAuth },
      protos,
      implementations,
      logger: options.logger.child({ component: 'client-threads' }),
      onFatal: options.onFatal,
    });
    return { port: threads.port, reload: () => threads.reload(), stop: () => threads.stop(STOP_GRACE_MS) };
  }
  const server = new Http2GrpcServer({
    maxReceiveBytes: config.maxRequestBytes,
    maxSendBytes: MAX_ANSWER_BYTES,
    limits: { maxConcurrentStreams: config.maxStreamsPerConnection },
  });
  server.addService(protos.kv, implementations.kv);
  server.addService(protos.cluster, implementations.cluster);
  server.addService(protos.health, implementations.health);
  addReflection(server);
  const port = await server
    .listen(config.clientAddr, tls === null ? null : { material: () => tls.material, requireClientCertificate: config.clientCertAuth })
    .catch((error: Error) => {
      throw new Error(`cannot serve the client API on ${config.clientAddr}: ${error.message}`, { cause: error });
    });
  return { port, reload: () => {}, stop: () => server.close(STOP_GRACE_MS) };
}
