/**
 * The cluster under test: `quorumkv serve` child processes on loopback, each
 * with a test-only faults file (clock offset, slow fsync, and the proxy ports
 * it dials its peers at), its log in the report folder, and a record of every
 * exit the suite did not cause.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type { WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { TestFaults } from '../../src/server/fault-injection.ts';
import { createServer } from 'node:net';
import { REPO_ROOT, sleep } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';
import { ChaosClient } from './client.ts';
import type { FaultProxy } from './proxy.ts';

const BIN = join(REPO_ROOT, 'bin', 'quorumkv.js');

export type ProcessState = 'running' | 'paused' | 'stopped';

export interface ChaosNode {
  readonly id: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly httpPort: number;
  readonly dataDir: string;
  readonly faultsFile: string;
  readonly logFile: string;
  child: ChildProcess | null;
  exited: Promise<void>;
  state: ProcessState;
  /** Set while the suite is stopping it: its exit is expected. */
  stopping: boolean;
  /** Started with --join (after a remove and re-add) rather than --initial-cluster. */
  joinAddress: string | null;
  faults: Required<Omit<TestFaults, 'peerDial'>> & { peerDial: Record<string, string> };
  launches: number;
}

export interface UnexpectedExit {
  readonly id: string;
  readonly at: number;
  readonly code: number | null;
  readonly signal: string | null;
  readonly logTail: string;
}

export interface ClusterOptions {
  readonly size: number;
  /** Data dirs and faults files; removed by stop(). */
  readonly root: string;
  /** Node logs go here; kept. */
  readonly logDir: string;
  readonly proxy: FaultProxy;
  /** Extra `serve` flags for every node. */
  readonly flags: readonly string[];
  /** Time origin for recorded events (performance.now() of the run's start). */
  readonly origin: () => number;
}

export class ChaosCluster {
  readonly nodes = new Map<string, ChaosNode>();
  readonly unexpectedExits: UnexpectedExit[] = [];
  private readonly clients = new Map<string, ChaosClient>();
  private readonly logs = new Map<string, WriteStream>();
  private initialCluster = '';

  private constructor(private readonly options: ClusterOptions) {}

  /** Allocates ports, sets up the proxy links and faults files, and starts every node. */
  static async start(options: ClusterOptions): Promise<ChaosCluster> {
    const cluster = new ChaosCluster(options);
    mkdirSync(options.root, { recursive: true });
    mkdirSync(options.logDir, { recursive: true });
    const ids = Array.from({ length: options.size }, (_, i) => `n${i + 1}`);
    const ports = await listenablePorts(ids.length * 3);
    for (const id of ids) {
      const dataDir = join(options.root, id);
      cluster.nodes.set(id, {
        id,
        clientPort: ports.pop() as number,
        peerPort: ports.pop() as number,
        httpPort: ports.pop() as number,
        dataDir,
        faultsFile: join(options.root, `${id}.faults.json`),
        logFile: join(options.logDir, `${id}.log`),
        child: null,
        exited: Promise.resolve(),
        state: 'stopped',
        stopping: false,
        joinAddress: null,
        faults: { clockOffsetMs: 0, persistDelayMs: 0, persistStallMs: 0, persistStallId: 0, holdRestore: false, peerDial: {} },
        launches: 0,
      });
    }
    for (const from of cluster.nodes.values()) {
      for (const to of cluster.nodes.values()) {
        if (from === to) continue;
        from.faults.peerDial[to.id] = `127.0.0.1:${await options.proxy.addLink(from.id, to.id, to.peerPort)}`;
      }
      cluster.writeFaults(from.id);
    }
    cluster.initialCluster = ids.map((id) => `${id}=127.0.0.1:${cluster.node(id).peerPort}`).join(',');
    for (const id of ids) cluster.launch(id);
    return cluster;
  }

  get ids(): string[] {
    return [...this.nodes.keys()];
  }

  node(id: string): ChaosNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  clientAddress(id: string): string {
    return `127.0.0.1:${this.node(id).clientPort}`;
  }

  /** Ids of nodes whose process runs (paused ones included). */
  runningIds(): string[] {
    return this.ids.filter((id) => this.node(id).state !== 'stopped');
  }

  /** Starts a node's process; a node that was re-added joins through `joinAddress`. */
  launch(id: string): void {
    const node = this.node(id);
    if (node.state !== 'stopped') throw new Error(`${id} is already running`);
    mkdirSync(node.dataDir, { recursive: true });
    const membership = node.joinAddress === null ? ['--initial-cluster', this.initialCluster] : ['--join', node.joinAddress];
    const child = spawn(
      process.execPath,
      [
        BIN,
        'serve',
        '--id', id,
        '--data-dir', node.dataDir,
        '--client-addr', `127.0.0.1:${node.clientPort}`,
        '--peer-addr', `127.0.0.1:${node.peerPort}`,
        '--http-addr', `127.0.0.1:${node.httpPort}`,
        '--test-faults-file', node.faultsFile,
        ...membership,
        ...this.options.flags,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let log = this.logs.get(id);
    if (log === undefined) {
      log = createWriteStream(node.logFile, { flags: 'a' });
      this.logs.set(id, log);
    }
    node.launches++;
    log.write(`--- chaos: launch #${node.launches} of ${id} at ${(this.options.origin() / 1000).toFixed(3)}s (${membership.join(' ')}) ---\n`);
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    node.child = child;
    node.state = 'running';
    node.stopping = false;
    node.exited = new Promise<void>((resolve) =>
      child.once('exit', (code, signal) => {
        if (node.child === child) {
          node.child = null;
          node.state = 'stopped';
          if (!node.stopping) {
            this.unexpectedExits.push({ id, at: this.options.origin(), code, signal, logTail: '' });
            // The tail is read once the pipes have flushed into the file.
            setTimeout(() => {
              const entry = this.unexpectedExits.find((e) => e.id === id && e.logTail === '');
              if (entry !== undefined) Object.assign(entry, { logTail: tail(node.logFile, 4000) });
            }, 200);
          }
        }
        resolve();
      }),
    );
  }

  /** Kills a node (SIGKILL unless told otherwise) and waits for its exit. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = this.node(id);
    const child = node.child;
    if (child === null) return;
    node.stopping = true;
    this.dropClient(id);
    if (node.state === 'paused' && signal !== 'SIGKILL') child.kill('SIGCONT');
    child.kill(signal);
    await node.exited;
  }

  /** SIGTERM (a clean shutdown), then SIGKILL if it takes longer than `timeoutMs`. */
  async stopGracefully(id: string, timeoutMs: number): Promise<void> {
    const node = this.node(id);
    if (node.child === null) return;
    const exited = node.exited;
    const stopping = this.kill(id, 'SIGTERM');
    const timer = setTimeout(() => node.child?.kill('SIGKILL'), timeoutMs);
    await Promise.all([stopping, exited]);
    clearTimeout(timer);
  }

  pause(id: string): void {
    const node = this.node(id);
    if (node.child === null || node.state !== 'running') return;
    node.child.kill('SIGSTOP');
    node.state = 'paused';
  }

  resume(id: string): void {
    const node = this.node(id);
    if (node.child === null || node.state !== 'paused') return;
    node.child.kill('SIGCONT');
    node.state = 'running';
  }

  /** Changes a node's injected faults; the node picks the file up within ~50 ms. */
  setFaults(id: string, change: Partial<ChaosNode['faults']>): void {
    Object.assign(this.node(id).faults, change);
    this.writeFaults(id);
  }

  /** Wipes a stopped node's data dir (a removed member comes back as a new one). */
  wipe(id: string): void {
    const node = this.node(id);
    if (node.state !== 'stopped') throw new Error(`${id} must be stopped before its data is wiped`);
    rmSync(node.dataDir, { recursive: true, force: true });
  }

  client(id: string): ChaosClient {
    let client = this.clients.get(id);
    if (client === undefined) {
      client = new ChaosClient(this.clientAddress(id));
      this.clients.set(id, client);
    }
    return client;
  }

  /** Status of every running node that answers within `timeoutMs`. */
  async statuses(timeoutMs = 1000): Promise<Map<string, Reply>> {
    const out = new Map<string, Reply>();
    await Promise.all(
      this.ids
        .filter((id) => this.node(id).state === 'running')
        .map(async (id) => {
          try {
            out.set(id, await this.client(id).call('Status', {}, timeoutMs));
          } catch {
            // Down, partitioned from us it cannot be (we are on loopback), but maybe still starting.
          }
        }),
    );
    return out;
  }

  /** The leader with the highest term among the answers, or null. */
  async leader(timeoutMs = 1000): Promise<string | null> {
    let best: { id: string; term: number } | null = null;
    for (const [id, status] of await this.statuses(timeoutMs)) {
      const term = Number(status['term']);
      if (status['role'] === 'LEADER' && (best === null || term > best.term)) best = { id, term };
    }
    return best?.id ?? null;
  }

  async waitForLeader(timeoutMs: number): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const leader = await this.leader();
      if (leader !== null) return leader;
      await sleep(100);
    }
    throw new Error(`no leader within ${timeoutMs} ms`);
  }

  /** Kills every process and removes data dirs and faults files; logs stay. Safe to call twice. */
  async stop(): Promise<void> {
    for (const id of this.clients.keys()) this.dropClient(id);
    await Promise.all(this.ids.map((id) => this.kill(id)));
    await Promise.all(
      [...this.logs.values()].map((log) => new Promise<void>((resolve) => log.end(() => resolve()))),
    );
    this.logs.clear();
    rmSync(this.options.root, { recursive: true, force: true });
  }

  /** For process 'exit' handlers: kill everything now, synchronously. */
  killAllNow(): void {
    for (const node of this.nodes.values()) {
      node.stopping = true;
      node.child?.kill('SIGKILL');
    }
  }

  private dropClient(id: string): void {
    this.clients.get(id)?.close();
    this.clients.delete(id);
  }

  private writeFaults(id: string): void {
    const node = this.node(id);
    const tmp = `${node.faultsFile}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(node.faults)}\n`);
    // A rename, so the node never reads half a file.
    renameSync(tmp, node.faultsFile);
  }
}

/**
 * Ports for the nodes' listeners, below the OS's ephemeral range: a node
 * restarted after a kill must find its ports free, and an ephemeral port
 * could meanwhile be the source port of any outgoing connection, or a proxy
 * listener (those take ports from the ephemeral range).
 */
async function listenablePorts(count: number): Promise<number[]> {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    // Not Linux: assume the IANA range (49152..) or Linux's default; below 32768 is clear of both.
  }
  const base = Math.max(1024, Math.min(Number.isFinite(low) ? low : 32768, 32768) - 12_000);
  const out: number[] = [];
  while (out.length < count) {
    const port = base + Math.floor(Math.random() * 12_000);
    if (!out.includes(port) && (await canListen(port))) out.push(port);
  }
  return out;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function tail(path: string, chars: number): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.slice(-chars);
  } catch {
    return '';
  }
}
