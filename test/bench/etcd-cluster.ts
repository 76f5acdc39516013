/**
 * A throwaway etcd cluster for the comparison: `size` members of the etcd
 * binary found on PATH (Debian: `apt-get install etcd-server`), on loopback
 * ports that were free, with data in one temp dir, made by the constructor so
 * that the caller can register the cluster for cleanup before start().
 * stop() ends the members and removes the dir; stopNow() does the same
 * synchronously, for an exit handler.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { freePort } from '../support/cluster-harness.ts';
import { loadEtcdProtos } from './etcd-proto.ts';

/** The etcd binary on PATH, or null when etcd is not installed. */
export function findEtcd(): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'etcd');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** `etcd --version`'s first line's version, e.g. 3.4.23. */
export function etcdVersion(binary: string): string {
  const out = execFileSync(binary, ['--version'], { encoding: 'utf8' });
  return /etcd Version:\s*(\S+)/.exec(out)?.[1] ?? out.split('\n')[0]?.trim() ?? 'unknown';
}

export interface EtcdMember {
  readonly name: string;
  readonly clientAddr: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  output: string;
}

interface StatusReply {
  header?: { member_id?: string };
  leader?: string;
}

type StatusFn = (request: object, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: StatusReply) => void) => void;

export class EtcdCluster {
  readonly members: EtcdMember[] = [];
  private readonly root: string;
  private readonly clients = new Map<string, grpc.Client>();

  constructor(readonly binary: string) {
    this.root = mkdtempSync(join(tmpdir(), 'quorumkv-bench-etcd-'));
  }

  /** Launches the members and waits for them to elect a leader. */
  async start(size: number): Promise<void> {
    const ports: { client: number; peer: number }[] = [];
    for (let i = 0; i < size; i++) ports.push({ client: await freePort(), peer: await freePort() });
    const initialCluster = ports.map((p, i) => `e${i + 1}=http://127.0.0.1:${p.peer}`).join(',');
    ports.forEach((p, i) => this.launch(`e${i + 1}`, p.client, p.peer, initialCluster));
    await this.leader(30_000);
  }

  private launch(name: string, clientPort: number, peerPort: number, initialCluster: string): void {
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const dataDir = join(this.root, name);
    const child = spawn(
      this.binary,
      [
        '--name', name,
        '--data-dir', dataDir,
        '--listen-client-urls', clientUrl,
        '--advertise-client-urls', clientUrl,
        '--listen-peer-urls', peerUrl,
        '--initial-advertise-peer-urls', peerUrl,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', `quorumkv-bench-${process.pid}`,
        '--logger', 'zap',
        '--log-outputs', 'stderr',
        '--log-level', 'error',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const member: EtcdMember = { name, clientAddr: `127.0.0.1:${clientPort}`, peerUrl, dataDir, child, output: '' };
    const keep = (chunk: Buffer): void => {
      member.output = (member.output + chunk.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.members.push(member);
  }

  /** Waits until every member names the same leader; resolves with its name. */
  async leader(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      const exited = this.members.find((m) => m.child.exitCode !== null || m.child.signalCode !== null);
      if (exited !== undefined) throw new Error(`etcd member ${exited.name} exited (${exited.child.exitCode ?? exited.child.signalCode}):\n${exited.output}`);
      try {
        const statuses = await Promise.all(this.members.map((m) => this.status(m)));
        const leaders = new Set(statuses.map((s) => s.leader ?? '0'));
        const leaderId = statuses[0]?.leader ?? '0';
        const index = statuses.findIndex((s) => s.header?.member_id === leaderId);
        if (leaders.size === 1 && leaderId !== '0' && index >= 0) return this.members[index]!.name;
        last = JSON.stringify(statuses.map((s) => [s.header?.member_id, s.leader]));
      } catch (error) {
        last = (error as Error).message;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`etcd elected no leader within ${timeoutMs} ms (${last})\n${this.members.map((m) => `--- ${m.name} ---\n${m.output}`).join('\n')}`);
  }

  private status(member: EtcdMember): Promise<StatusReply> {
    let client = this.clients.get(member.name);
    if (client === undefined) {
      client = new (loadEtcdProtos().clients.maintenance)(member.clientAddr, grpc.credentials.createInsecure());
      this.clients.set(member.name, client);
    }
    const fn = (client as unknown as { Status: StatusFn }).Status;
    return new Promise((resolve, reject) =>
      fn.call(client, {}, { deadline: Date.now() + 1000 }, (error, reply) => (error ? reject(error) : resolve(reply ?? {}))),
    );
  }

  /** Stops every member (SIGTERM, then SIGKILL after 5 s) and removes the data. */
  async stop(): Promise<void> {
    this.closeClients();
    await Promise.all(
      this.members.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }),
    );
    rmSync(this.root, { recursive: true, force: true });
  }

  /** For an exit handler, where nothing asynchronous runs: kill and remove at once. */
  stopNow(): void {
    for (const { child } of this.members) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(this.root, { recursive: true, force: true });
  }

  private closeClients(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}
