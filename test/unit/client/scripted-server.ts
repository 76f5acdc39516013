/**
 * Minimal gRPC servers for client and CLI tests: the real KV and Cluster
 * services from the .proto files, answered by per-test scripts. Every
 * request is recorded. Methods without a script answer UNIMPLEMENTED.
 * A ServerPool closes everything it started (call closeAll in afterEach).
 */
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_METHODS, KV_METHODS, loadProtos, type ClusterMethod, type KvMethod } from '../../../src/proto/loader.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- requests are whatever the proto decodes; tests read fields they know
export type Request = Record<string, any>;
export type UnaryScript = (request: Request, call: grpc.ServerUnaryCall<Request, unknown>) => unknown;
export type StreamScript = (call: grpc.ServerWritableStream<Request, unknown>) => void | Promise<void>;
type Script = UnaryScript | StreamScript;

export interface Scripts {
  readonly kv?: { readonly [M in Exclude<KvMethod, 'Watch'>]?: UnaryScript } & { readonly Watch?: StreamScript };
  readonly cluster?: { readonly [M in Exclude<ClusterMethod, 'Backup'>]?: UnaryScript } & { readonly Backup?: StreamScript };
}

export interface Recorded {
  readonly method: string;
  readonly request: Request;
}

const STREAMING = new Set<string>(['Watch', 'Backup']);

/** A status error as a handler throws it (or a stream emits it), with optional trailing metadata. */
export function status(code: grpc.status, details: string, metadata: Record<string, string> = {}): Partial<grpc.StatusObject> & Error {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  return Object.assign(new Error(details), { code, details, metadata: md });
}

/** UNAVAILABLE naming the leader, as a node that knows it answers. */
export function notLeader(leaderAddress: string, leaderId = 'n1'): Error {
  return status(grpc.status.UNAVAILABLE, `not the leader; the leader is ${leaderId}`, {
    'quorumkv-leader-id': leaderId,
    'quorumkv-leader-addr': leaderAddress,
  });
}

export class ScriptedServer {
  constructor(
    readonly server: grpc.Server,
    readonly address: string,
    readonly requests: Recorded[],
  ) {}

  /** The requests one method received, in order. */
  received(method: string): Request[] {
    return this.requests.filter((r) => r.method === method).map((r) => r.request);
  }

  close(): void {
    this.server.forceShutdown();
  }
}

export class ServerPool {
  private readonly servers: ScriptedServer[] = [];

  /** Starts a server on 127.0.0.1, on `port` when given (a restart), else on a free port. */
  async start(scripts: Scripts, port = 0): Promise<ScriptedServer> {
    const protos = loadProtos();
    const server = new grpc.Server();
    const requests: Recorded[] = [];
    const record = (method: string, request: Request): void => void requests.push({ method, request });
    server.addService(protos.kv, implement(KV_METHODS, scripts.kv ?? {}, record));
    server.addService(protos.cluster, implement(CLUSTER_METHODS, scripts.cluster ?? {}, record));
    const bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, p) => (error === null ? resolve(p) : reject(error))),
    );
    const scripted = new ScriptedServer(server, `127.0.0.1:${bound}`, requests);
    this.servers.push(scripted);
    return scripted;
  }

  closeAll(): void {
    for (const s of this.servers.splice(0)) s.close();
  }
}

function implement(methods: readonly string[], scripts: { readonly [method: string]: Script | undefined }, record: (method: string, request: Request) => void): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {};
  for (const method of methods) {
    const script = scripts[method];
    if (STREAMING.has(method)) {
      impl[method] = (call: grpc.ServerWritableStream<Request, unknown>) => {
        record(method, call.request);
        if (script === undefined) {
          call.emit('error', status(grpc.status.UNIMPLEMENTED, `${method} is not scripted`));
          return;
        }
        void Promise.resolve((script as StreamScript)(call)).catch((error: unknown) => call.emit('error', error));
      };
    } else {
      impl[method] = (call: grpc.ServerUnaryCall<Request, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        record(method, call.request);
        if (script === undefined) {
          callback(status(grpc.status.UNIMPLEMENTED, `${method} is not scripted`));
          return;
        }
        Promise.resolve()
          .then(() => (script as UnaryScript)(call.request, call))
          .then(
            (response) => callback(null, response),
            (error: unknown) => callback(error as grpc.ServiceError),
          );
      };
    }
  }
  return impl;
}

/** An address nothing listens on: a port the OS just handed out and took back. */
export async function deadAddress(): Promise<string> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `127.0.0.1:${port}`;
}
