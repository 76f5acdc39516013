/**
 * What the cluster benchmark drives: a fresh local quorumkv cluster, an
 * existing one (--endpoints), a fresh local etcd cluster, or the no-op
 * server. Each tells the benchmark its nodes' addresses and process ids (for
 * CPU), which node leads, and can read back a preloaded key to prove the
 * generator's requests did what they claim.
 *
 * A target is created synchronously (its temp dir, if any, exists at once)
 * and started afterwards, so the benchmark can register it for cleanup before
 * anything can go wrong: a Ctrl-C during a slow start still removes it all.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SERVE_NODE_FLAGS } from '../../src/cli/node-flags.ts';
import { NodeClient, REPO_ROOT, freePort } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';
import { EtcdCluster, etcdVersion } from './etcd-cluster.ts';
import { loadEtcdProtos } from './etcd-proto.ts';
import { NOOP_NODE_ID } from './load-noop-server.ts';
import { stringKey } from './load-workloads.ts';
import type { SystemName } from './load-workloads.ts';

export interface TargetNode {
  readonly id: string;
  readonly address: string;
  /** The node's process, when the benchmark started it (its CPU is then measured). */
  readonly pid: number | null;
}

export interface Target {
  readonly system: SystemName;
  /** For reports: "quorumkv 0.1.0 (a9d23dd)", "etcd 3.4.23". */
  readonly version: string;
  /** Known once start() has resolved. */
  readonly nodes: readonly TargetNode[];
  /** Preload key spaces already filled on this target. */
  readonly preloaded: Set<string>;
  start(): Promise<void>;
  /** The leader's id, once every node agrees on it. */
  leader(): Promise<string>;
  /** Throws unless key `keyIndex` of `space` reads back as preloaded. */
  checkPreloaded(space: string, keyIndex: number, valueBytes: number, hashFields: number): Promise<void>;
  stop(): Promise<void>;
  /** Synchronous last resort for an exit handler. */
  stopNow(): void;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function checkQuorumkv(client: NodeClient, space: string, keyIndex: number, valueBytes: number, hashFields: number): Promise<void> {
  if (space === 'strings') {
    const reply = await client.call('Get', { key: stringKey(keyIndex) });
    const value = reply['value'];
    if (reply['found'] !== true || !(value instanceof Uint8Array) || value.length !== valueBytes) {
      throw new Error(`preload check: ${stringKey(keyIndex)} reads back as ${JSON.stringify(reply)}`);
    }
  } else if (space === 'hashes') {
    const reply = await client.call('HLen', { key: `hash-${keyIndex}` });
    if (reply['length'] !== hashFields) throw new Error(`preload check: hash-${keyIndex} has ${String(reply['length'])} fields, not ${hashFields}`);
  }
}

/** Polls Status on every client until exactly one node leads and all name it; resolves with its index. */
async function agreedLeader(clients: readonly NodeClient[], timeoutMs: number, alive: () => string | null = () => null): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const dead = alive();
    if (dead !== null) throw new Error(dead);
    try {
      const statuses: Reply[] = await Promise.all(clients.map((c) => c.call('Status', {}, 1000)));
      const leaders = new Set(statuses.map((s) => s['leader_id']));
      const index = statuses.findIndex((s) => s['role'] === 'LEADER');
      if (index >= 0 && leaders.size === 1) return index;
      last = JSON.stringify(statuses.map((s) => [s['id'], s['role'], s['term'], s['leader_id']]));
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`no agreed leader within ${timeoutMs} ms (${last})`);
}

interface LocalNode extends TargetNode {
  readonly child: ChildProcess;
  readonly client: NodeClient;
  /** performance.now() when the process was spawned. */
  readonly spawnedAtMs: number;
  output: string;
}

/** A fresh local quorumkv cluster whose nodes the benchmark can stop and start again (load-scenarios.ts). */
export interface LocalQuorumkv extends Target {
  /** Sends `signal` to node `id` and resolves once its process has exited. */
  kill(id: string, signal: NodeJS.Signals): Promise<void>;
  /** Starts node `id` again on its ports and data dir; resolves with performance.now() at the spawn. */
  relaunch(id: string): number;
}

/**
 * A fresh quorumkv cluster: `size` `quorumkv serve` processes on free
 * loopback ports (the flags test/support/cluster-harness.ts uses), data in
 * one temp dir. Node runs with the flags `quorumkv dev` and the Docker image
 * give it (SERVE_NODE_FLAGS); `nodeFlags` go to node too (e.g. --cpu-prof,
 * which Node does not take from NODE_OPTIONS), `serveFlags` to `quorumkv serve`.
 */
export function localQuorumkv(size: number, nodeFlags: readonly string[], serveFlags: readonly string[], version: string): LocalQuorumkv {
  const root = mkdtempSync(join(tmpdir(), 'quorumkv-bench-'));
  const nodes: LocalNode[] = [];
  const running = (n: LocalNode): boolean => n.child.exitCode === null && n.child.signalCode === null;
  const exitedNode = (): string | null => {
    const dead = nodes.find((n) => !running(n));
    return dead === undefined ? null : `node ${dead.id} exited (${dead.child.exitCode ?? dead.child.signalCode}):\n${dead.output}`;
  };
  const leader = async (): Promise<string> => nodes[await agreedLeader(nodes.map((n) => n.client), 20_000, exitedNode)]!.id;
  const ports = new Map<string, { client: number; peer: number; http: number }>();
  let initialCluster = '';
  /** Spawns node `id`, in place of its earlier process if it had one. */
  const launch = (id: string): LocalNode => {
    const p = ports.get(id)!;
    const child = spawn(
      process.execPath,
      [
        ...SERVE_NODE_FLAGS,
        ...nodeFlags,
        join(REPO_ROOT, 'bin', 'quorumkv.js'), 'serve',
        '--id', id,
        '--data-dir', join(root, id),
        '--client-addr', `127.0.0.1:${p.client}`,
        '--peer-addr', `127.0.0.1:${p.peer}`,
        '--http-addr', `127.0.0.1:${p.http}`,
        '--initial-cluster', initialCluster,
        '--log-level', 'warn',
        ...serveFlags,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const spawnedAtMs = performance.now();
    const address = `127.0.0.1:${p.client}`;
    const node: LocalNode = { id, address, pid: child.pid ?? null, child, client: new NodeClient(address), spawnedAtMs, output: '' };
    const keep = (chunk: Buffer): void => {
      node.output = (node.output + chunk.toString()).slice(-4000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const earlier = nodes.findIndex((n) => n.id === id);
    if (earlier < 0) {
      nodes.push(node);
    } else {
      nodes[earlier]!.client.close();
      nodes[earlier] = node;
    }
    return node;
  };
  const stopNode = async (n: LocalNode, signal: NodeJS.Signals): Promise<void> => {
    if (!running(n)) return;
    const exited = new Promise<void>((resolve) => n.child.once('exit', () => resolve()));
    n.child.kill(signal);
    const timer = setTimeout(() => n.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    system: 'quorumkv',
    version: serveFlags.length === 0 ? version : `${version} [${serveFlags.join(' ')}]`,
    nodes,
    preloaded: new Set(),
    async start() {
      for (let i = 1; i <= size; i++) ports.set(`n${i}`, { client: await freePort(), peer: await freePort(), http: await freePort() });
      initialCluster = [...ports].map(([id, p]) => `${id}=127.0.0.1:${p.peer}`).join(',');
      for (const id of ports.keys()) launch(id);
      await leader();
    },
    leader,
    async checkPreloaded(space, keyIndex, valueBytes, hashFields) {
      const id = await leader();
      await checkQuorumkv(nodes.find((n) => n.id === id)!.client, space, keyIndex, valueBytes, hashFields);
    },
    async stop() {
      for (const n of nodes) n.client.close();
      // SIGTERM: a node shuts down cleanly on it, and only then does --cpu-prof write its profile.
      await Promise.all(nodes.map((n) => stopNode(n, 'SIGTERM')));
      rmSync(root, { recursive: true, force: true });
    },
    async kill(id, signal) {
      const node = nodes.find((n) => n.id === id);
      if (node === undefined) throw new Error(`no node ${id}`);
      await stopNode(node, signal);
    },
    relaunch: (id) => launch(id).spawnedAtMs,
    stopNow() {
      for (const n of nodes) if (running(n)) n.child.kill('SIGKILL');
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** An existing quorumkv cluster: its processes are not ours, so their CPU is not measured. */
export function existingQuorumkv(endpoints: readonly string[]): Target {
  const clients = endpoints.map((address) => new NodeClient(address));
  const nodes: TargetNode[] = [];
  const leader = async (): Promise<string> => nodes[await agreedLeader(clients, 10_000)]!.id;
  const close = (): void => {
    for (const c of clients) c.close();
  };
  return {
    system: 'quorumkv',
    version: `quorumkv at ${endpoints.join(',')}`,
    nodes,
    preloaded: new Set(),
    async start() {
      const statuses = await Promise.all(clients.map((c) => c.call('Status', {}, 5000)));
      statuses.forEach((s, i) => nodes.push({ id: typeof s['id'] === 'string' && s['id'] !== '' ? s['id'] : endpoints[i]!, address: endpoints[i]!, pid: null }));
    },
    leader,
    async checkPreloaded(space, keyIndex, valueBytes, hashFields) {
      const id = await leader();
      await checkQuorumkv(clients[nodes.findIndex((n) => n.id === id)]!, space, keyIndex, valueBytes, hashFields);
    },
    stop: async () => close(),
    stopNow: close,
  };
}

type RangeFn = (request: object, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: { kvs?: { value?: Buffer }[] }) => void) => void;

/** A fresh etcd cluster (etcd-cluster.ts), driven through etcd's own gRPC API. */
export function localEtcd(binary: string, size: number): Target {
  const cluster = new EtcdCluster(binary);
  const nodes: TargetNode[] = [];
  return {
    system: 'etcd',
    version: `etcd ${etcdVersion(binary)}`,
    nodes,
    preloaded: new Set(),
    async start() {
      await cluster.start(size);
      for (const m of cluster.members) nodes.push({ id: m.name, address: m.clientAddr, pid: m.child.pid ?? null });
    },
    leader: () => cluster.leader(10_000),
    async checkPreloaded(space, keyIndex, valueBytes) {
      if (space !== 'strings') throw new Error(`etcd has no ${space}`);
      const name = await cluster.leader(10_000);
      const member = cluster.members.find((m) => m.name === name)!;
      const client = new (loadEtcdProtos().clients.kv)(member.clientAddr, grpc.credentials.createInsecure());
      try {
        const range = (client as unknown as { Range: RangeFn }).Range;
        const reply = await new Promise<{ kvs?: { value?: Buffer }[] }>((resolve, reject) =>
          range.call(client, { key: Buffer.from(stringKey(keyIndex)) }, { deadline: Date.now() + 5000 }, (error, r) => (error ? reject(error) : resolve(r ?? {}))),
        );
        const length = reply.kvs?.[0]?.value?.length;
        if (length !== valueBytes) throw new Error(`preload check: etcd key ${stringKey(keyIndex)} reads back with ${String(length)} value bytes, not ${valueBytes}`);
      } finally {
        client.close();
      }
    },
    stop: () => cluster.stop(),
    stopNow: () => cluster.stopNow(),
  };
}

/**
 * The no-op server (load-noop-server.ts) in a process of its own:
 * speaks quorumkv's protocol, stores nothing, answers at once.
 */
export function noopServer(): Target {
  let child: ChildProcess | null = null;
  const nodes: TargetNode[] = [];
  const running = (): boolean => child !== null && child.exitCode === null && child.signalCode === null;
  return {
    system: 'quorumkv',
    version: 'no-op server (client port class)',
    nodes,
    // It stores nothing, so there is nothing to preload and nothing to read back.
    preloaded: new Set(['strings', 'hashes']),
    async start() {
      const server = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(import.meta.dirname, 'load-noop-server.ts')], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      child = server;
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error('the no-op server did not start within 20 s')), 20_000);
        server.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          const match = /port (\d+)/.exec(out);
          if (match !== null) {
            clearTimeout(timer);
            resolve(Number(match[1]));
          }
        });
        server.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`the no-op server exited (${code})`));
        });
      });
      nodes.push({ id: NOOP_NODE_ID, address: `127.0.0.1:${port}`, pid: server.pid ?? null });
    },
    leader: async () => NOOP_NODE_ID,
    checkPreloaded: async () => {},
    async stop() {
      const server = child;
      if (server === null || !running()) return;
      const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
      server.kill('SIGTERM');
      const timer = setTimeout(() => server.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
    stopNow() {
      if (running()) child?.kill('SIGKILL');
    },
  };
}
