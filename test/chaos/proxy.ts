/**
 * A fault-injecting TCP proxy for Raft traffic, one listener per ordered pair
 * of nodes. Node A dials B at the port of link A->B (the node's test-only
 * faults file says so, see src/server/fault-injection.ts), and the proxy
 * forwards to B's real peer port. Each link has its own faults, so A->B can
 * fail while B->A works. A link's connection carries A's Raft stream to B and
 * B's HTTP/2 replies (headers, window updates, pings) back to A; faults apply
 * to both directions of it.
 *
 * What a fault does to a byte stream, since TCP cannot lose a single message:
 * - blackhole: bytes in both directions vanish, connections stay open (a
 *   partition as a router sees it: the sender finds out only through its
 *   keepalive). On heal the connections are reset, since dropped bytes leave
 *   their HTTP/2 framing broken, and the nodes reconnect.
 * - reset: connections are reset and new ones refused (the peer looks down).
 * - delay (+ jitter): chunks are held back, in order.
 * - cut probability: each chunk may reset its connection, losing whatever
 *   was in flight: Raft sees lost messages and a reconnect.
 */
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';

export type LinkMode = 'up' | 'blackhole' | 'reset';

export interface LinkFaults {
  readonly mode: LinkMode;
  readonly delayMs: number;
  readonly jitterMs: number;
  /** Probability that a chunk resets its connection. */
  readonly cutProbability: number;
}

export const HEALTHY: LinkFaults = { mode: 'up', delayMs: 0, jitterMs: 0, cutProbability: 0 };

export interface LinkStats {
  connections: number;
  bytes: number;
  resets: number;
}

interface Connection {
  readonly client: Socket;
  upstream: Socket | null;
  blackholed: boolean;
  readonly timers: Set<NodeJS.Timeout>;
}

/** Past this many bytes held back by a delay, the sending side is paused. */
const MAX_DELAYED_BYTES = 4 * 1024 * 1024;

export class Link {
  faults: LinkFaults = HEALTHY;
  readonly stats: LinkStats = { connections: 0, bytes: 0, resets: 0 };
  readonly connections = new Set<Connection>();

  constructor(
    readonly from: string,
    readonly to: string,
    readonly server: Server,
    readonly port: number,
    readonly targetPort: number,
  ) {}
}

export class FaultProxy {
  private readonly links = new Map<string, Link>();
  private closed = false;

  /** `random` in [0, 1): the run's seeded source, for cuts and jitter. */
  constructor(private readonly random: () => number) {}

  /** Listens for the link from -> to on a free loopback port; resolves with that port. */
  async addLink(from: string, to: string, targetPort: number): Promise<number> {
    const key = linkKey(from, to);
    const existing = this.links.get(key);
    if (existing !== undefined) return existing.port;
    const server = createServer({ noDelay: true });
    let link: Link | null = null;
    server.on('connection', (socket) => {
      if (link === null || this.closed) socket.destroy();
      else this.accept(link, socket);
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : 0);
      });
    });
    link = new Link(from, to, server, port, targetPort);
    this.links.set(key, link);
    return port;
  }

  link(from: string, to: string): Link {
    const link = this.links.get(linkKey(from, to));
    if (link === undefined) throw new Error(`no proxy link ${from}->${to}`);
    return link;
  }

  allLinks(): Link[] {
    return [...this.links.values()];
  }

  /** Changes some of a link's faults; the others stay as they are. */
  set(from: string, to: string, change: Partial<LinkFaults>): void {
    const link = this.link(from, to);
    const before = link.faults;
    link.faults = { ...before, ...change };
    const mode = link.faults.mode;
    if (mode === before.mode) return;
    for (const conn of [...link.connections]) {
      if (mode === 'reset' || (mode === 'up' && conn.blackholed)) this.reset(link, conn);
      else if (mode === 'blackhole') this.blackhole(conn);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      [...this.links.values()].map(
        (link) =>
          new Promise<void>((resolve) => {
            for (const conn of [...link.connections]) this.reset(link, conn);
            link.server.close(() => resolve());
          }),
      ),
    );
    this.links.clear();
  }

  private accept(link: Link, client: Socket): void {
    client.on('error', () => {});
    if (link.faults.mode === 'reset') {
      link.stats.resets++;
      client.resetAndDestroy();
      return;
    }
    link.stats.connections++;
    const conn: Connection = { client, upstream: null, blackholed: false, timers: new Set() };
    link.connections.add(conn);
    client.on('close', () => this.drop(link, conn));
    if (link.faults.mode === 'blackhole') {
      this.blackhole(conn);
      return;
    }
    const upstream = connect({ host: '127.0.0.1', port: link.targetPort, noDelay: true });
    upstream.on('error', () => {});
    upstream.on('close', () => this.drop(link, conn));
    conn.upstream = upstream;
    this.pump(link, conn, client, upstream);
    this.pump(link, conn, upstream, client);
  }

  /** Forwards src to dst, applying the link's faults as they are when each chunk arrives. */
  private pump(link: Link, conn: Connection, src: Socket, dst: Socket): void {
    const queue: { at: number; chunk: Buffer }[] = [];
    let queuedBytes = 0;
    let lastAt = 0;
    let timer: NodeJS.Timeout | null = null;
    let waitingForDrain = false;
    const write = (chunk: Buffer) => {
      link.stats.bytes += chunk.length;
      if (!dst.write(chunk) && !waitingForDrain) {
        waitingForDrain = true;
        src.pause();
        dst.once('drain', () => {
          waitingForDrain = false;
          src.resume();
        });
      }
    };
    const release = () => {
      if (timer !== null) conn.timers.delete(timer);
      timer = null;
      const now = performance.now();
      while (queue.length > 0 && (queue[0] as { at: number }).at <= now) {
        const { chunk } = queue.shift() as { chunk: Buffer };
        queuedBytes -= chunk.length;
        if (!conn.blackholed && !dst.destroyed) write(chunk);
      }
      if (queuedBytes < MAX_DELAYED_BYTES && !waitingForDrain && src.isPaused()) src.resume();
      schedule();
    };
    const schedule = () => {
      if (timer !== null || queue.length === 0) return;
      const wait = Math.max(0, (queue[0] as { at: number }).at - performance.now());
      timer = setTimeout(release, wait);
      conn.timers.add(timer);
    };
    src.on('data', (chunk: Buffer) => {
      if (conn.blackholed) return;
      const { delayMs, jitterMs, cutProbability } = link.faults;
      if (cutProbability > 0 && this.random() < cutProbability) {
        this.reset(link, conn);
        return;
      }
      const delay = delayMs + jitterMs * this.random();
      if (delay <= 0 && queue.length === 0) {
        write(chunk);
        return;
      }
      // Never before an earlier chunk: a stream keeps its order whatever the jitter.
      lastAt = Math.max(lastAt, performance.now() + delay);
      queue.push({ at: lastAt, chunk });
      queuedBytes += chunk.length;
      if (queuedBytes >= MAX_DELAYED_BYTES) src.pause();
      schedule();
    });
  }

  private blackhole(conn: Connection): void {
    conn.blackholed = true;
    for (const timer of conn.timers) clearTimeout(timer);
    conn.timers.clear();
    // Keep reading, so the sender's writes succeed into the void.
    conn.client.resume();
    conn.upstream?.resume();
  }

  private reset(link: Link, conn: Connection): void {
    link.stats.resets++;
    if (!conn.client.destroyed) conn.client.resetAndDestroy();
    if (conn.upstream !== null && !conn.upstream.destroyed) conn.upstream.resetAndDestroy();
    this.drop(link, conn);
  }

  private drop(link: Link, conn: Connection): void {
    if (!link.connections.delete(conn)) return;
    for (const timer of conn.timers) clearTimeout(timer);
    conn.timers.clear();
    conn.client.destroy();
    conn.upstream?.destroy();
  }
}

function linkKey(from: string, to: string): string {
  return `${from}->${to}`;
}
