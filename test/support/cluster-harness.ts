/**
 * Real clusters for tests: `quorumkv serve` child processes on free loopback
 * ports with temp data dirs, and a small raw gRPC client. Everything started
 * here is stopped and removed by stop(), which tests call in afterEach/afterAll
 * so that a failing test cleans up too.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../../src/proto/loader.ts';
import { certFileNames } from '../../src/tls/certs.ts';
import { TestCerts } from './test-certs.ts';

export const REPO_ROOT = resolve(import.meta.dirname, '..', '..');
const BIN = join(REPO_ROOT, 'bin', 'quorumkv.js');

/** Ports freePort() has handed out in this process: the OS may offer a port again once the probe closes. */
const handedOut = new Set<number>();

/**
 * A port nothing listens on now and that this process has not handed out
 * before (one node's client, peer and HTTP ports once came back equal).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await probePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no free port: the OS kept offering ports already handed out');
}

function probePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export interface NodeSpec {
  readonly id: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
}

export type Reply = Record<string, unknown>;

export class GrpcError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
    readonly metadata: grpc.Metadata,
    /** Which call failed, for the message: a test that makes many calls then says which one. */
    call = '',
  ) {
    super(`${call === '' ? '' : `${call}: `}${grpc.status[code]}: ${details}`);
  }
}

type UnaryFn = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: Reply) => void) => void;

/** A raw client for one node: calls any KV or Cluster method with plain objects. */
export class NodeClient {
  private readonly kv: grpc.Client;
  private readonly cluster: grpc.Client;

  /**
   * `token`: sent as `authorization: Bearer` on every call (nodes started with --auth-file).
   * `channelOptions`: grpc-js channel options, e.g. a short reconnect backoff for a client that waits for a node to come up.
   */
  constructor(
    readonly address: string,
    credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
    private readonly token: string | null = null,
    channelOptions: grpc.ChannelOptions = {},
  ) {
    const protos = loadProtos();
    this.kv = new protos.clients.kv(address, credentials, channelOptions);
    this.cluster = new protos.clients.cluster(address, credentials, channelOptions);
  }

  call(method: string, request: object = {}, timeoutMs = 5000): Promise<Reply> {
    const clusterMethods = ['Status', 'Members', 'AddMember', 'RemoveMember', 'PromoteMember', 'TransferLeadership', 'Snapshot'];
    const client = clusterMethods.includes(method) ? this.cluster : this.kv;
    const fn = (client as unknown as Record<string, UnaryFn>)[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    return new Promise((resolveCall, reject) =>
      fn.call(client, request, this.metadata(), { deadline: Date.now() + timeoutMs }, (error, reply) => {
        if (error !== null) reject(new GrpcError(error.code, error.details, error.metadata, `${method} (${timeoutMs} ms deadline)`));
        else resolveCall(reply ?? {});
      }),
    );
  }

  watch(request: object): grpc.ClientReadableStream<Reply> {
    return (this.kv as unknown as { Watch(r: object, m: grpc.Metadata): grpc.ClientReadableStream<Reply> }).Watch(request, this.metadata());
  }

  backup(): grpc.ClientReadableStream<Reply> {
    return (this.cluster as unknown as { Backup(r: object, m: grpc.Metadata): grpc.ClientReadableStream<Reply> }).Backup({}, this.metadata());
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    if (this.token !== null) metadata.set('authorization', `Bearer ${this.token}`);
    return metadata;
  }

  close(): void {
    this.kv.close();
    this.cluster.close();
  }
}

export interface RunningProcess {
  readonly spec: NodeSpec;
  readonly child: ChildProcess;
  /** stdout and stderr so far, for failure messages. */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface ClusterOptions {
  readonly size: number;
  /** Extra `serve` flags for every node. */
  readonly flags?: readonly string[];
  /**
   * TLS everywhere: a CA and node certificates made in the cluster's temp dir
   * (see `certs`), --cert/--key/--ca on every node, and client(id) speaking
   * TLS while presenting user CLIENT_USER's client certificate.
   */
  readonly tls?: boolean;
  /** A bearer token the harness's own clients send (an admin's, for nodes started with --auth-file). */
  readonly token?: string;
  /** The bin/quorumkv.js the nodes run (default: this checkout's). */
  readonly bin?: string;
}

/** The user whose client certificate the harness's own clients present in a TLS cluster. */
export const CLIENT_USER = 'admin';

export class TestCluster {
  readonly specs: NodeSpec[] = [];
  readonly processes = new Map<string, RunningProcess>();
  /** Every process ever launched, including ones a later launch of the same id replaced in `processes`. */
  private readonly launched: RunningProcess[] = [];
  private readonly clients = new Map<string, NodeClient>();
  private readonly root: string;
  /** The --initial-cluster every node was started with. */
  initialCluster = '';
  /** The cluster's CA and certificates when started with `tls`, else null. */
  certs: TestCerts | null = null;
  private clientCredentials: grpc.ChannelCredentials = grpc.credentials.createInsecure();

  private constructor(
    private readonly flags: readonly string[],
    private readonly token: string | null,
    private readonly bin: string,
  ) {
    this.root = mkdtempSync(join(tmpdir(), 'quorumkv-test-'));
  }

  static async start(options: ClusterOptions): Promise<TestCluster> {
    const cluster = new TestCluster(options.flags ?? [], options.token ?? null, options.bin ?? BIN);
    try {
      if (options.tls === true) {
        cluster.certs = await TestCerts.create(join(cluster.root, 'certs'));
        cluster.clientCredentials = await cluster.certs.credentials(CLIENT_USER);
      }
      for (let i = 1; i <= options.size; i++) cluster.specs.push(await cluster.newSpec(`n${i}`));
      cluster.initialCluster = cluster.specs.map((s) => `${s.id}=127.0.0.1:${s.peerPort}`).join(',');
      for (const spec of cluster.specs) cluster.launch(spec, ['--initial-cluster', cluster.initialCluster]);
      await cluster.waitForLeader();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  async newSpec(id: string): Promise<NodeSpec> {
    await this.certs?.node(id);
    return { id, clientPort: await freePort(), peerPort: await freePort(), httpPort: await freePort(), dataDir: join(this.root, id) };
  }

  /** Starts (or restarts) a node's process with its spec's ports and data dir. */
  launch(spec: NodeSpec, extraFlags: readonly string[] = ['--initial-cluster', this.initialCluster]): RunningProcess {
    const child = spawn(
      process.execPath,
      [
        this.bin,
        'serve',
        '--id', spec.id,
        '--data-dir', spec.dataDir,
        '--client-addr', `127.0.0.1:${spec.clientPort}`,
        '--peer-addr', `127.0.0.1:${spec.peerPort}`,
        '--http-addr', `127.0.0.1:${spec.httpPort}`,
        '--log-level', 'warn',
        ...this.tlsFlags(spec.id),
        ...this.flags,
        ...extraFlags,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolveExit) =>
      child.once('exit', (code, signal) => resolveExit({ code, signal })),
    );
    const running: RunningProcess = { spec, child, output: () => output, exited };
    this.processes.set(spec.id, running);
    this.launched.push(running);
    if (!this.specs.includes(spec)) this.specs.push(spec);
    return running;
  }

  /** --cert/--key/--ca of member `id` (its certificate was issued by newSpec); none without TLS. */
  tlsFlags(id: string): string[] {
    if (this.certs === null) return [];
    const files = certFileNames(this.certs.dir, id);
    return ['--cert', files.certFile, '--key', files.keyFile, '--ca', this.certs.caFile];
  }

  spec(id: string): NodeSpec {
    const spec = this.specs.find((s) => s.id === id);
    if (spec === undefined) throw new Error(`no node ${id}`);
    return spec;
  }

  client(id: string): NodeClient {
    let client = this.clients.get(id);
    if (client === undefined) {
      client = new NodeClient(`127.0.0.1:${this.spec(id).clientPort}`, this.clientCredentials, this.token);
      this.clients.set(id, client);
    }
    return client;
  }

  isRunning(id: string): boolean {
    const p = this.processes.get(id);
    return p !== undefined && p.child.exitCode === null && p.child.signalCode === null;
  }

  runningIds(): string[] {
    return this.specs.map((s) => s.id).filter((id) => this.isRunning(id));
  }

  /** Polls Status on every running node until one of them is leader and the others agree. */
  async waitForLeader(timeoutMs = 20_000, among: readonly string[] = this.runningIds()): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      try {
        const statuses = await Promise.all(among.map((id) => this.client(id).call('Status', {}, 1000)));
        const leaders = new Set(statuses.map((s) => s['leader_id']));
        const leader = statuses.find((s) => s['role'] === 'LEADER');
        if (leader !== undefined && leaders.size === 1) return leader['id'] as string;
        last = JSON.stringify(statuses.map((s) => [s['id'], s['role'], s['term'], s['leader_id']]));
      } catch (error) {
        last = (error as Error).message;
      }
      await sleep(100);
    }
    throw new Error(`no leader within ${timeoutMs} ms (${last})\n${this.outputs()}`);
  }

  /** Waits until every listed node has applied the same index and has the same state digest. */
  async waitForConvergence(ids: readonly string[] = this.runningIds(), timeoutMs = 20_000): Promise<Reply[]> {
    const deadline = Date.now() + timeoutMs;
    let last: Reply[] = [];
    while (Date.now() < deadline) {
      try {
        last = await Promise.all(ids.map((id) => this.client(id).call('Status', {}, 1000)));
        const applied = new Set(last.map((s) => s['applied_index']));
        const digests = new Set(last.map((s) => s['state_digest']));
        if (applied.size === 1 && digests.size === 1) return last;
      } catch {
        // A node still starting: keep polling.
      }
      await sleep(100);
    }
    throw new Error(`nodes did not converge: ${JSON.stringify(last.map((s) => [s['id'], s['applied_index'], s['state_digest']]))}`);
  }

  kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const p = this.processes.get(id);
    if (p === undefined) throw new Error(`no process for ${id}`);
    this.clients.get(id)?.close();
    this.clients.delete(id);
    p.child.kill(signal);
    return p.exited;
  }

  outputs(): string {
    return [...this.processes.values()].map((p) => `--- ${p.spec.id} ---\n${p.output().slice(-3000)}`).join('\n');
  }

  async stop(): Promise<void> {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
    await Promise.all(
      this.launched.map(async (p) => {
        if (p.child.exitCode === null && p.child.signalCode === null) {
          p.child.kill('SIGKILL');
          await p.exited;
        }
      }),
    );
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Polls `probe` every 100 ms until it returns a value (not undefined); throws naming `what` and the last error after `timeoutMs`. */
export async function eventually<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = 'never tried';
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
      last = 'not yet';
    } catch (error) {
      last = error;
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms (last: ${String(last)})`);
}

/** eventually() for a yes/no condition. */
export async function waitFor(what: string, condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  await eventually(what, timeoutMs, async () => ((await condition()) ? true : undefined));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms));
}

export const bytes = (text: string): Buffer => Buffer.from(text);
export const text = (value: unknown): string => (value instanceof Uint8Array ? Buffer.from(value).toString() : String(value));

/** A counter or gauge of node `id`, read from its /metrics; NaN when it is not there. */
export async function metric(c: TestCluster, id: string, name: string): Promise<number> {
  const body = await (await fetch(`http://127.0.0.1:${c.spec(id).httpPort}/metrics`)).text();
  const match = new RegExp(`^${name} (\\d+)$`, 'm').exec(body);
  return match === null ? Number.NaN : Number(match[1]);
}
