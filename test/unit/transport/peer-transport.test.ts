/**
 * PeerTransport with real gRPC servers on 127.0.0.1 (ports picked by the OS):
 * ordering and batching, reconnecting to a restarted peer, unreachable
 * reports, streamed snapshots, refusals, and membership changes.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message, NodeId, SnapshotMeta } from '../../../src/raft/index.ts';
import type { InstallSnapshot } from '../../../src/raft/messages.ts';
import { encodeBatch } from '../../../src/transport/codec.ts';
import { PeerTransport } from '../../../src/transport/index.ts';
import type { PeerTransportOptions, SnapshotStore, TransportLogger, TransportTuning } from '../../../src/transport/index.ts';
import { passBuffer, SEND_PATH } from '../../../src/transport/service.ts';
import { freePort } from '../../support/cluster-harness.ts';

interface LogLine {
  readonly level: string;
  readonly fields: object;
  readonly message: string;
}

interface Node {
  readonly id: NodeId;
  readonly transport: PeerTransport;
  readonly port: number;
  /** Every onMessages call, as it came. */
  readonly batches: Message[][];
  readonly unreachable: NodeId[];
  /** Every onReachable call: a stream to that peer was accepted. */
  readonly reachable: NodeId[];
  readonly snapshotStatus: [NodeId, boolean][];
  readonly log: LogLine[];
  readonly events: string[];
  readonly store: FakeSnapshotStore;
  /** Every onRemoved call: the peer that refused us, the removal index, the reason. */
  readonly removed: [NodeId, number, string][];
}

/** Snapshot files held in memory: `files` by index for open(), what was received for receive(). */
class FakeSnapshotStore implements SnapshotStore {
  readonly files = new Map<number, Uint8Array[]>();
  readonly received: { meta: SnapshotMeta; from: NodeId; chunks: Uint8Array[] }[] = [];
  opened = 0;
  failReceive: Error | null = null;
  receiveDelayMs = 0;

  constructor(private readonly events: string[]) {}

  async *open(meta: SnapshotMeta): AsyncIterable<Uint8Array> {
    this.opened++;
    const chunks = this.files.get(meta.index);
    if (chunks === undefined) throw new Error(`no snapshot at ${meta.index}`);
    for (const chunk of chunks) {
      await new Promise((resolve) => setImmediate(resolve));
      yield chunk;
    }
  }

  async receive(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>, from: NodeId): Promise<void> {
    const got: Uint8Array[] = [];
    for await (const chunk of chunks) got.push(Uint8Array.from(chunk));
    if (this.receiveDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.receiveDelayMs));
    if (this.failReceive !== null) throw this.failReceive;
    this.received.push({ meta, from, chunks: got });
    this.events.push(`stored ${meta.index}`);
  }
}

const FAST: Partial<TransportTuning> = { reconnectInitialMs: 20, reconnectMaxMs: 200 };

const open: PeerTransport[] = [];

afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((t) => t.close()));
});

async function startNode(
  id: NodeId,
  options: {
    clusterId?: string;
    port?: number;
    tuning?: Partial<TransportTuning>;
    clientAddr?: string;
    peerInfo?: [NodeId, string][];
    admit?: PeerTransportOptions['admit'];
    retainEntries?: PeerTransportOptions['retainEntries'];
  } = {},
): Promise<Node> {
  const removed: [NodeId, number, string][] = [];
  const batches: Message[][] = [];
  const unreachable: NodeId[] = [];
  const reachable: NodeId[] = [];
  const snapshotStatus: [NodeId, boolean][] = [];
  const log: LogLine[] = [];
  const events: string[] = [];
  const store = new FakeSnapshotStore(events);
  const line = (level: string) => (fields: object, message: string) => log.push({ level, fields, message });
  const logger: TransportLogger = { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
  const transport = new PeerTransport({
    nodeId: id,
    clusterId: options.clusterId ?? 'cluster-1',
    listenAddress: `127.0.0.1:${options.port ?? 0}`,
    logger,
    onMessages: (messages) => {
      batches.push(messages);
      for (const m of messages) if (m.type === 'snapshot') events.push(`delivered ${m.snapshot.index}`);
    },
    snapshots: store,
    onUnreachable: (peer) => unreachable.push(peer),
    onReachable: (peer) => reachable.push(peer),
    onSnapshotStatus: (peer, ok) => snapshotStatus.push([peer, ok]),
    tuning: { ...FAST, ...options.tuning },
    ...(options.clientAddr === undefined ? {} : { advertisedClientAddr: options.clientAddr, advertisedPeerAddr: `${options.clientAddr}-peer` }),
    onPeerInfo: (peer, info) => options.peerInfo?.push([peer, `${info.clientAddr} ${info.peerAddr}`]),
    onRemoved: (peer, index, reason) => removed.push([peer, index, reason]),
    ...(options.admit === undefined ? {} : { admit: options.admit }),
    ...(options.retainEntries === undefined ? {} : { retainEntries: options.retainEntries }),
  });
  open.push(transport);
  const port = await transport.start();
  return { id, transport, port, batches, unreachable, reachable, snapshotStatus, log, events, store, removed };
}

function connect(...nodes: Node[]): void {
  const peers = new Map(nodes.map((n) => [n.id, `127.0.0.1:${n.port}`]));
  for (const n of nodes) n.transport.setPeers(peers);
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function heartbeat(from: NodeId, to: NodeId, readRound: number): Message {
  return { type: 'heartbeat', from, to, term: 1, commit: 0, readRound };
}

function rounds(node: Node): number[] {
  return node.batches.flat().flatMap((m) => (m.type === 'heartbeat' ? [m.readRound] : []));
}

function snapshotMessage(from: NodeId, to: NodeId, index: number): InstallSnapshot {
  return { type: 'snapshot', from, to, term: 2, snapshot: { index, term: 2, confState: { voters: [from, to], learners: [] } } };
}

describe('PeerTransport', () => {
  it('reports the port it bound', async () => {
    const a = await startNode('a');
    expect(a.port).toBeGreaterThan(0);
    expect(a.transport.port).toBe(a.port);
  });

  it('delivers messages in order, one batch per peer per event-loop turn', async () => {
    const [a, b, c] = await Promise.all([startNode('a'), startNode('b'), startNode('c')]);
    connect(a, b, c);
    // Two send() calls in one turn, to two peers: one batch each.
    a.transport.send(Array.from({ length: 50 }, (_, i) => heartbeat('a', 'b', i)));
    a.transport.send([heartbeat('a', 'c', 0), ...Array.from({ length: 50 }, (_, i) => heartbeat('a', 'b', 50 + i))]);
    await waitFor('b to get 100 messages', () => rounds(b).length === 100);
    await waitFor('c to get its message', () => rounds(c).length === 1);
    expect(b.batches).toHaveLength(1);
    expect(rounds(b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(b.batches[0]?.every((m) => m.from === 'a' && m.to === 'b')).toBe(true);
    expect(a.transport.getStats()).toMatchObject({ batchesSent: 2, messagesSent: 101, messagesDropped: 0 });

    // Later turns: still in order, on the same stream.
    for (let turn = 0; turn < 20; turn++) {
      a.transport.send([heartbeat('a', 'b', 100 + 2 * turn), heartbeat('a', 'b', 101 + 2 * turn)]);
      if (turn % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor('b to get 140 messages', () => rounds(b).length === 140);
    expect(rounds(b)).toEqual(Array.from({ length: 140 }, (_, i) => i));
    expect(b.batches.length).toBeLessThan(1 + 20);
    expect(b.unreachable).toEqual([]);
  });

  it('announces the sender\'s client and peer addresses to the peers it streams to', async () => {
    const seen: [NodeId, string][] = [];
    const [a, b] = await Promise.all([startNode('a', { clientAddr: '10.0.0.1:7001' }), startNode('b', { peerInfo: seen })]);
    connect(a, b);
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('b to get the message', () => rounds(b).length === 1);
    expect(seen).toEqual([['a', '10.0.0.1:7001 10.0.0.1:7001-peer']]);
  });

  it('carries every message type with its fields', async () => {
    const [a, b] = await Promise.all([startNode('a'), startNode('b')]);
    connect(a, b);
    const data = new Uint8Array(256 * 1024).map((_, i) => i % 251);
    const messages: Message[] = [
      { type: 'preVote', from: 'a', to: 'b', term: 9, lastLogIndex: 2 ** 50, lastLogTerm: 8, leaderTransfer: true },
      { type: 'voteResp', from: 'a', to: 'b', term: 9, reject: true },
      { type: 'append', from: 'a', to: 'b', term: 9, prevIndex: 4, prevTerm: 8, commit: 3, entries: [{ index: 5, term: 9, type: 'normal', data }] },
      { type: 'appendResp', from: 'a', to: 'b', term: 9, reject: false, index: 5, hintIndex: 0, hintTerm: 0 },
      { type: 'timeoutNow', from: 'a', to: 'b', term: 9, commit: 4 },
    ];
    a.transport.send(messages);
    await waitFor('b to get them', () => b.batches.flat().length === messages.length);
    const got = b.batches.flat();
    expect(got.map((m) => m.type)).toEqual(messages.map((m) => m.type));
    expect(got[0]).toEqual(messages[0]);
    const append = got[2];
    if (append?.type !== 'append') throw new Error('not an append');
    expect(Buffer.from(append.entries[0]?.data ?? []).equals(Buffer.from(data))).toBe(true);
  });

  it('decodes batches that carry entries from what retainEntries gives for them, and no others', async () => {
    const retained: Uint8Array[] = [];
    const a = await startNode('a');
    const b = await startNode('b', { retainEntries: (bytes) => (retained.push(new Uint8Array(bytes)), retained.at(-1) as Uint8Array) });
    connect(a, b);
    const data = new Uint8Array([7, 8, 9]);
    a.transport.send([{ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 0, readRound: 0 }]);
    await waitFor('the heartbeat', () => b.batches.flat().length === 1);
    expect(retained).toEqual([]);
    a.transport.send([{ type: 'append', from: 'a', to: 'b', term: 2, prevIndex: 0, prevTerm: 0, commit: 0, entries: [{ index: 1, term: 2, type: 'normal', data }] }]);
    await waitFor('the append', () => b.batches.flat().length === 2);
    const append = b.batches.flat()[1];
    if (append?.type !== 'append') throw new Error('not an append');
    expect(retained.length).toBe(1);
    expect(append.entries[0]?.data.buffer).toBe(retained[0]?.buffer);
    expect(Array.from(append.entries[0]?.data ?? [])).toEqual([7, 8, 9]);
  });

  it('reports a down peer unreachable and drops its messages', async () => {
    const a = await startNode('a');
    const port = await freePort();
    a.transport.setPeers(new Map([['b', `127.0.0.1:${port}`]]));
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('an unreachable report', () => a.unreachable.includes('b'));
    // While backing off, sends are dropped at once and reported again.
    const before = a.unreachable.length;
    a.transport.send([heartbeat('a', 'b', 2)]);
    await waitFor('another unreachable report', () => a.unreachable.length > before);
    expect(a.transport.getStats().messagesDropped).toBeGreaterThanOrEqual(2);
    expect(a.log.filter((l) => l.message === 'peer unreachable')).toHaveLength(1);
  });

  it('reaches a peer restarted on the same port again', async () => {
    const [a, b] = await Promise.all([startNode('a'), startNode('b')]);
    connect(a, b);
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('the first message', () => rounds(b).length === 1);

    await b.transport.close();
    await waitFor('b reported unreachable', () => a.unreachable.includes('b'));

    const b2 = await startNode('b', { port: b.port });
    expect(b2.port).toBe(b.port);
    // Heartbeats as the core would send them, until the new incarnation hears one.
    let round = 2;
    const deadline = Date.now() + 5000;
    while (rounds(b2).length === 0) {
      if (Date.now() > deadline) throw new Error('the restarted peer never heard from a');
      a.transport.send([heartbeat('a', 'b', round++)]);
      await sleep(20);
    }
    // Once through, nothing more is lost and order holds.
    const first = rounds(b2)[0] ?? 0;
    a.transport.send([heartbeat('a', 'b', round), heartbeat('a', 'b', round + 1)]);
    await waitFor('the next ones', () => rounds(b2).includes(round + 1));
    const got = rounds(b2);
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => first + i));
    expect(a.log.some((l) => l.message === 'peer reachable again')).toBe(true);
  });

  it('reports a peer reachable each time a stream to it is accepted: at first, and again after it comes back', async () => {
    const [a, b] = await Promise.all([startNode('a'), startNode('b')]);
    connect(a, b);
    expect(a.reachable).toEqual([]);
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('a first reachable report', () => a.reachable.length === 1);
    expect(a.reachable).toEqual(['b']);

    await b.transport.close();
    await waitFor('b reported unreachable', () => a.unreachable.includes('b'));
    expect(a.reachable).toEqual(['b']);
    // a reopens its stream on its own after the backoff; the new b accepting it is the report.
    await startNode('b', { port: b.port });
    await waitFor('a second reachable report', () => a.reachable.length === 2);
    expect(a.reachable).toEqual(['b', 'b']);
  });

  it('streams a 5 MiB snapshot in chunks and delivers the message only once it is stored', async () => {
    const [a, b] = await Promise.all([startNode('a'), startNode('b')]);
    connect(a, b);
    const file = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < file.length; i += 4096) file[i] = (i / 4096) % 256;
    // The store's own chunking (uneven) is re-sliced by the transport to at most 1 MiB.
    a.store.files.set(500, [file.subarray(0, 2_500_000), file.subarray(2_500_000, 2_500_001), file.subarray(2_500_001)]);
    b.store.receiveDelayMs = 50;
    a.transport.send([snapshotMessage('a', 'b', 500), heartbeat('a', 'b', 1)]);
    await waitFor('the snapshot status', () => a.snapshotStatus.length === 1, 10_000);
    expect(a.snapshotStatus).toEqual([['b', true]]);
    expect(b.events).toEqual(['stored 500', 'delivered 500']);
    const received = b.store.received[0];
    expect(received?.from).toBe('a');
    expect(received?.meta).toEqual({ index: 500, term: 2, confState: { voters: ['a', 'b'], learners: [] } });
    expect(Buffer.concat(received?.chunks ?? []).equals(file)).toBe(true);
    expect(received?.chunks.every((c) => c.length <= 1024 * 1024)).toBe(true);
    expect(received?.chunks.length).toBeGreaterThanOrEqual(6);
    const delivered = b.batches.flat().find((m) => m.type === 'snapshot');
    expect(delivered).toEqual(snapshotMessage('a', 'b', 500));
    // The heartbeat sent beside it went on the message stream, not behind the file.
    expect(rounds(b)).toEqual([1]);
    expect(b.transport.getStats().snapshotsReceived).toBe(1);
  });

  it('sends one snapshot per peer at a time', async () => {
    const [a, b] = await Promise.all([startNode('a'), startNode('b')]);
    connect(a, b);
    a.store.files.set(7, [Buffer.alloc(300_000, 1)]);
    b.store.receiveDelayMs = 100;
    a.transport.send([snapshotMessage('a', 'b', 7)]);
    a.transport.send([snapshotMessage('a', 'b', 7)]);
    await waitFor('the snapshot status', () => a.snapshotStatus.length === 1);
    await sleep(100);
    expect(a.store.opened).toBe(1);
    expect(a.snapshotStatus).toEqual([['b', true]]);
    // Once done, the next one goes.
    a.transport.send([snapshotMessage('a', 'b', 7)]);
    await waitFor('the second status', () => a.snapshotStatus.length === 2);
    expect(a.store.opened).toBe(2);
  });

  it('reports a snapshot the receiver could not store as failed, and does not deliver it', async () => {
    const [a, b] = await Promise.all([startNode('a'), startNode('b')]);
    connect(a, b);
    a.store.files.set(9, [Buffer.alloc(2 * 1024 * 1024, 7)]);
    b.store.failReceive = new Error('disk full');
    a.transport.send([snapshotMessage('a', 'b', 9)]);
    await waitFor('the snapshot status', () => a.snapshotStatus.length === 1);
    expect(a.snapshotStatus).toEqual([['b', false]]);
    expect(b.events).toEqual([]);
    expect(a.log.some((l) => l.message === 'peer did not take the snapshot' && JSON.stringify(l.fields).includes('disk full'))).toBe(true);
  });

  it('reports a snapshot the sender could not read as failed', async () => {
    const [a, b] = await Promise.all([startNode('a'), startNode('b')]);
    connect(a, b);
    a.transport.send([snapshotMessage('a', 'b', 404)]);
    await waitFor('the snapshot status', () => a.snapshotStatus.length === 1);
    expect(a.snapshotStatus).toEqual([['b', false]]);
    await sleep(50);
    expect(b.store.received).toEqual([]);
    expect(b.events).toEqual([]);
  });

  it('refuses a peer of another cluster, naming both cluster ids', async () => {
    const [a, b] = await Promise.all([startNode('a', { clusterId: 'cluster-1' }), startNode('b', { clusterId: 'cluster-2' })]);
    connect(a, b);
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('the refusal', () => a.log.some((l) => l.message === 'peer refused the Raft stream'));
    const refusal = a.log.find((l) => l.message === 'peer refused the Raft stream');
    expect(refusal?.level).toBe('error');
    expect(JSON.stringify(refusal?.fields)).toMatch(/FAILED_PRECONDITION.*cluster-2.*cluster-1/);
    expect(a.unreachable).toContain('b');
    expect(b.batches).toEqual([]);
    expect(b.transport.getStats().refused).toBeGreaterThanOrEqual(1);
  });

  it('refuses a foreign batch even without the stream metadata, and malformed batches', async () => {
    const b = await startNode('b', { clusterId: 'cluster-2' });
    const client = new grpc.Client(`127.0.0.1:${b.port}`, grpc.credentials.createInsecure());
    try {
      const sendRaw = (batch: Buffer): Promise<grpc.ServiceError | null> =>
        new Promise((resolve) => {
          const call = client.makeClientStreamRequest<Buffer, Buffer>(SEND_PATH, passBuffer, passBuffer, (err) => resolve(err));
          call.write(batch);
          call.end();
        });
      const foreign = await sendRaw(encodeBatch('cluster-1', 'a', 'b', [heartbeat('a', 'b', 1)]));
      expect(foreign?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(foreign?.details).toContain("'cluster-1'");
      expect(foreign?.details).toContain("'cluster-2'");
      const misdirected = await sendRaw(encodeBatch('cluster-2', 'a', 'c', [heartbeat('a', 'c', 1)]));
      expect(misdirected?.code).toBe(grpc.status.FAILED_PRECONDITION);
      expect(misdirected?.details).toMatch(/addressed member 'c'.*this is member 'b'/);
      const malformed = await sendRaw(Buffer.from([0x22, 0x05, 0x01]));
      expect(malformed?.code).toBe(grpc.status.INVALID_ARGUMENT);
      const fine = await sendRaw(encodeBatch('cluster-2', 'a', 'b', [heartbeat('a', 'b', 1)]));
      expect(fine).toBeNull();
      expect(rounds(b)).toEqual([1]);
    } finally {
      client.close();
    }
  });

  it('refuses a sender its admit check refuses with PERMISSION_DENIED, and tells a removed sender when it was removed', async () => {
    const admit: PeerTransportOptions['admit'] = (from) => (from === 'a' ? { reason: 'a was removed from the cluster at index 77', removedAtIndex: 77 } : null);
    const [a, b] = await Promise.all([startNode('a'), startNode('b', { admit })]);
    connect(a, b);
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('the removal report', () => a.removed.length > 0);
    expect(a.removed[0]).toEqual(['b', 77, 'a was removed from the cluster at index 77']);
    const refusal = a.log.find((l) => l.message === 'peer refused the Raft stream');
    expect(refusal?.level).toBe('error');
    expect(JSON.stringify(refusal?.fields)).toContain('PERMISSION_DENIED: a was removed from the cluster at index 77');
    // The sender keeps reconnecting; the receiver says so once, then quietly.
    await waitFor('a few reconnects', () => b.transport.getStats().refused >= 3);
    expect(b.log.filter((l) => l.message === 'refused peer traffic' && l.level === 'warn')).toHaveLength(1);
    expect(b.batches).toEqual([]);
    a.store.files.set(5, [new Uint8Array([1, 2, 3])]);
    a.transport.send([snapshotMessage('a', 'b', 5)]);
    await waitFor('the snapshot status', () => a.snapshotStatus.length === 1);
    expect(a.snapshotStatus).toEqual([['b', false]]);
    expect(b.store.received).toEqual([]);
  });

  it('checks every batch: a refusal after the stream opened ends it with PERMISSION_DENIED, no removal index', async () => {
    const admit: PeerTransportOptions['admit'] = (from, messages) =>
      messages.some((m) => m.type === 'vote') ? { reason: `${from} is not a member: only members of the current configuration may send vote messages`, removedAtIndex: null } : null;
    const [a, b] = await Promise.all([startNode('a'), startNode('b', { admit })]);
    connect(a, b);
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('the heartbeat', () => rounds(b).length === 1);
    a.transport.send([{ type: 'vote', from: 'a', to: 'b', term: 2, lastLogIndex: 0, lastLogTerm: 0, leaderTransfer: false }]);
    await waitFor('the refusal', () => a.log.some((l) => l.message === 'peer refused the Raft stream'));
    expect(JSON.stringify(a.log.find((l) => l.message === 'peer refused the Raft stream')?.fields)).toContain('PERMISSION_DENIED: a is not a member');
    expect(a.removed).toEqual([]);
    expect(b.batches.flat().map((m) => m.type)).toEqual(['heartbeat']);
    // The stream is opened again and heartbeats flow.
    await waitFor('the next heartbeat', () => {
      a.transport.send([heartbeat('a', 'b', 2)]);
      return rounds(b).includes(2);
    });
  });

  it('stops talking to a peer removed by setPeers', async () => {
    const [a, b, c] = await Promise.all([startNode('a'), startNode('b'), startNode('c')]);
    connect(a, b, c);
    a.transport.send([heartbeat('a', 'b', 1), heartbeat('a', 'c', 1)]);
    await waitFor('both peers', () => rounds(b).length === 1 && rounds(c).length === 1);

    a.transport.setPeers(new Map([['c', `127.0.0.1:${c.port}`]]));
    a.transport.send([heartbeat('a', 'b', 2), heartbeat('a', 'c', 2)]);
    await waitFor('c', () => rounds(c).length === 2);
    await sleep(100);
    expect(rounds(b)).toEqual([1]);
    expect(a.unreachable).toEqual(['b']);

    // Added back (at its address), it is talked to again.
    a.transport.setPeers(new Map([['b', `127.0.0.1:${b.port}`], ['c', `127.0.0.1:${c.port}`]]));
    a.transport.send([heartbeat('a', 'b', 3)]);
    await waitFor('b again', () => rounds(b).length === 2);
  });

  it('follows a peer to a new address', async () => {
    const [a, b] = await Promise.all([startNode('a'), startNode('b')]);
    connect(a, b);
    a.transport.send([heartbeat('a', 'b', 1)]);
    await waitFor('b', () => rounds(b).length === 1);
    const b2 = await startNode('b');
    a.transport.setPeers(new Map([['b', `127.0.0.1:${b2.port}`]]));
    a.transport.send([heartbeat('a', 'b', 2)]);
    await waitFor('b at its new address', () => rounds(b2).length === 1);
    expect(rounds(b)).toEqual([1]);
  });

  it('is quiet after close: send drops, callbacks stop, close is idempotent', async () => {
    const [a, b] = await Promise.all([startNode('a'), startNode('b')]);
    connect(a, b);
    a.store.files.set(3, [Buffer.alloc(1024 * 1024)]);
    b.store.receiveDelayMs = 200;
    a.transport.send([snapshotMessage('a', 'b', 3)]);
    await sleep(20);
    await Promise.all([a.transport.close(), a.transport.close()]);
    a.transport.send([heartbeat('a', 'b', 1)]);
    await sleep(50);
    expect(a.snapshotStatus).toEqual([]);
    expect(rounds(b)).toEqual([]);
    await expect(a.transport.start()).rejects.toThrow(/is closed/);
  });

  it('refuses to start on an address in use, saying which', async () => {
    const a = await startNode('a');
    const clash = new PeerTransport({
      nodeId: 'x',
      clusterId: 'cluster-1',
      listenAddress: `127.0.0.1:${a.port}`,
      onMessages: () => {},
      snapshots: a.store,
      onUnreachable: () => {},
      onSnapshotStatus: () => {},
    });
    open.push(clash);
    // grpc-js also prints the bind failure to stderr through its own global logger; keep test output clean.
    grpc.setLogVerbosity(grpc.logVerbosity.NONE);
    try {
      await expect(clash.start()).rejects.toThrow(`127.0.0.1:${a.port}`);
    } finally {
      grpc.setLogVerbosity(grpc.logVerbosity.ERROR);
    }
  });
});
