/**
 * Calls a follower forwards to the leader (forward-client.ts, forward-receiver.ts)
 * over real peer transports on 127.0.0.1: batching per turn, answers and
 * statuses carried back whole, what the leader's handler sees, deadlines, a
 * leader that goes away, and a refused stream.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { loadProtos } from '../../../src/proto/loader.ts';
import type { ProtoMessage } from '../../../src/server/kv-commands.ts';
import { ForwardClient } from '../../../src/server/forward-client.ts';
import { ForwardReceiver } from '../../../src/server/forward-receiver.ts';
import { FORWARDED_HEADER, FORWARDED_USER_HEADER } from '../../../src/server/forwarder.ts';
import { DeadlineError, LeaderUnreachableError } from '../../../src/server/errors.ts';
import { statusError, toStatus } from '../../../src/server/grpc-status.ts';
import { FORWARD_BATCH_BYTES } from '../../../src/transport/forward-codec.ts';
import { PeerTransport } from '../../../src/transport/index.ts';

const kv = loadProtos().kv;
const SET = kv.Set.path;
const GET = kv.Get.path;

type Unary = (call: grpc.ServerUnaryCall<ProtoMessage, ProtoMessage>, callback: grpc.sendUnaryData<ProtoMessage>) => void;

interface Pair {
  readonly client: ForwardClient;
  readonly follower: PeerTransport;
  readonly leader: PeerTransport;
  /** Forwarded batches the leader received. */
  readonly batches: number[];
}

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const noSnapshots = {
  open: () => {
    throw new Error('no snapshots here');
  },
  receive: () => Promise.reject(new Error('no snapshots here')),
};

function transport(id: string, clusterId: string, onForward?: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => void, port = 0): PeerTransport {
  const t = new PeerTransport({
    nodeId: id,
    clusterId,
    listenAddress: `127.0.0.1:${port}`,
    onMessages: () => {},
    onUnreachable: () => {},
    onSnapshotStatus: () => {},
    snapshots: noSnapshots,
    ...(onForward === undefined ? {} : { onForward }),
  });
  cleanups.push(() => t.close());
  return t;
}

/** A follower f1 forwarding to a leader l1 whose KV handlers are `handlers`. */
async function pair(handlers: Partial<Record<string, Unary>>, leaderCluster = 'c1'): Promise<Pair> {
  const batches: number[] = [];
  const receiver = new ForwardReceiver([{ definition: kv, handlers: handlers as grpc.UntypedServiceImplementation }]);
  const leader = transport('l1', leaderCluster, (call) => {
    call.on('data', (bytes: Buffer) => batches.push(bytes.length));
    receiver.serve(call);
  });
  const leaderPort = await leader.start();
  const follower = transport('f1', 'c1');
  await follower.start();
  follower.setPeers(new Map([['l1', `127.0.0.1:${leaderPort}`]]));
  const client = new ForwardClient((peer) => follower.openForwardStream(peer));
  cleanups.push(() => client.close());
  return { client, follower, leader, batches };
}

const encodeSet = (key: string): Buffer => kv.Set.requestSerialize({ key, value: Buffer.from(`v-${key}`) });
const decodeSetResponse = (bytes: Buffer): ProtoMessage => kv.Set.responseDeserialize(bytes) as ProtoMessage;

describe('forwarding calls to the leader', () => {
  it('sends the calls of one turn as one batch, and each caller gets its own answer', async () => {
    const seen: string[] = [];
    const { client, batches } = await pair({
      Set: (call, callback) => {
        seen.push(call.request['key'] as string);
        callback(null, { previous_found: call.request['key'] === 'k7' });
      },
    });
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    const answers = await Promise.all(keys.map((key) => client.call('l1', SET, encodeSet(key), 5_000, null)));
    expect(batches).toHaveLength(1);
    expect(seen).toEqual(keys);
    expect(answers.map((bytes) => decodeSetResponse(bytes)['previous_found'] === true)).toEqual(keys.map((key) => key === 'k7'));
  });

  it('splits a turn\'s calls into messages the leader accepts, and the answers likewise, when they add up to more than one message may hold', async () => {
    const value = Buffer.alloc(1024 * 1024, 7);
    const { client, batches } = await pair({
      Set: (call, callback) => callback(null, { previous: call.request['value'], previous_found: true }),
    });
    // 80 MiB in one turn, above the peer server's 64 MiB message limit.
    const answers = await Promise.all(
      Array.from({ length: 80 }, (_, i) => client.call('l1', SET, kv.Set.requestSerialize({ key: `k${i}`, value }), 20_000, null)),
    );
    expect(answers.every((bytes) => decodeSetResponse(bytes)['previous_found'] === true)).toBe(true);
    expect(batches.length).toBeGreaterThan(1);
    expect(Math.max(...batches)).toBeLessThanOrEqual(FORWARD_BATCH_BYTES + 2 * 1024 * 1024);
  });

  it('splits answers given in one turn that add up to more than one message may hold', async () => {
    const value = Buffer.alloc(1024 * 1024, 9);
    const held: grpc.sendUnaryData<ProtoMessage>[] = [];
    const { client } = await pair({
      Set: (_call, callback) => {
        held.push(callback);
        // All 80 answers (80 MiB, above the 64 MiB limit) go out in the same turn.
        if (held.length === 80) for (const answer of held) answer(null, { previous: value, previous_found: true });
      },
    });
    const answers = await Promise.all(
      Array.from({ length: 80 }, (_, i) => client.call('l1', SET, encodeSet(`k${i}`), 20_000, null)),
    );
    expect(answers.map((bytes) => (decodeSetResponse(bytes)['previous'] as Buffer).length)).toEqual(Array.from({ length: 80 }, () => value.length));
  });

  it('shows the leader\'s handler a forwarded call: the header, the user, the authorization, the deadline', async () => {
    let seen: { forwarded: unknown; user: unknown; authorization: unknown; deadlineInMs: number } | null = null;
    const { client } = await pair({
      Set: (call, callback) => {
        const deadline = call.getDeadline() as number;
        seen = {
          forwarded: call.metadata.get(FORWARDED_HEADER)[0],
          user: call.metadata.get(FORWARDED_USER_HEADER)[0],
          authorization: call.metadata.get('authorization')[0],
          deadlineInMs: deadline - Date.now(),
        };
        callback(null, {});
      },
    });
    await client.call('l1', SET, encodeSet('a'), 3_000, { user: 'alice', authorization: 'Bearer t0ken' });
    expect(seen).toMatchObject({ forwarded: '1', user: 'alice', authorization: 'Bearer t0ken' });
    expect(seen!.deadlineInMs).toBeGreaterThan(0);
    expect(seen!.deadlineInMs).toBeLessThanOrEqual(3_000);
  });

  it('brings a failure back as the leader answered it: code, details and trailers', async () => {
    const { client } = await pair({
      Set: (_call, callback) => {
        const metadata = new grpc.Metadata();
        metadata.set('quorumkv-leader-id', 'n3');
        callback(statusError(grpc.status.UNAVAILABLE, 'not the leader any more', metadata));
      },
    });
    const error = (await client.call('l1', SET, encodeSet('a'), 5_000, null).catch((e: unknown) => e)) as grpc.StatusObject;
    expect(error.code).toBe(grpc.status.UNAVAILABLE);
    expect(error.details).toBe('not the leader any more');
    expect(error.metadata.get('quorumkv-leader-id')).toEqual(['n3']);
  });

  it('answers a method the leader does not serve with UNIMPLEMENTED, and a request it cannot decode with INVALID_ARGUMENT', async () => {
    const { client } = await pair({ Set: (_call, callback) => callback(null, {}) });
    const unknown = (await client.call('l1', GET, kv.Get.requestSerialize({ key: 'a' }), 5_000, null).catch((e: unknown) => e)) as grpc.StatusObject;
    expect(unknown.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(unknown.details).toContain(GET);
    const garbage = (await client.call('l1', SET, Buffer.from([0xff, 0xff, 0xff]), 5_000, null).catch((e: unknown) => e)) as grpc.StatusObject;
    expect(garbage.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('fails a call the leader does not answer in time with DEADLINE_EXCEEDED, and goes on serving the rest', async () => {
    const { client } = await pair({
      Set: (call, callback) => {
        if (call.request['key'] !== 'stuck') callback(null, {});
      },
    });
    await expect(client.call('l1', SET, encodeSet('stuck'), 200, null)).rejects.toBeInstanceOf(DeadlineError);
    await expect(client.call('l1', SET, encodeSet('fine'), 5_000, null)).resolves.toBeInstanceOf(Buffer);
  });

  it('fails the calls under way with UNAVAILABLE when the leader goes away, and reaches it again once it is back', async () => {
    const held: grpc.sendUnaryData<ProtoMessage>[] = [];
    const { client, leader, follower } = await pair({ Set: (_call, callback) => held.push(callback) });
    const pending = client.call('l1', SET, encodeSet('a'), 10_000, null).catch((e: unknown) => e);
    await waitFor(() => held.length === 1);
    const port = leader.port;
    await leader.close();
    const error = (await pending) as grpc.StatusObject;
    expect(error.code).toBe(grpc.status.UNAVAILABLE);
    expect(error.details).toContain('may or may not have taken effect');

    const receiver = new ForwardReceiver([{ definition: kv, handlers: { Set: ((_call, callback) => callback(null, {})) as Unary } }]);
    await transport('l1', 'c1', (call) => receiver.serve(call), port).start();
    follower.setPeers(new Map([['l1', `127.0.0.1:${port}`]]));
    await waitFor(async () => (await client.call('l1', SET, encodeSet('b'), 1_000, null).then(() => true, () => false)));
  });

  it('closes the stream to a former leader once nothing waits on it, when calls go to a new one', async () => {
    const { client, follower, leader } = await pair({ Set: (_call, callback) => callback(null, {}) });
    const streamsToL2: grpc.ServerDuplexStream<Buffer, Buffer>[] = [];
    const receiver = new ForwardReceiver([{ definition: kv, handlers: { Set: ((_call, callback) => callback(null, {})) as Unary } }]);
    const l2 = transport('l2', 'c1', (call) => {
      streamsToL2.push(call);
      receiver.serve(call);
    });
    follower.setPeers(new Map([['l1', `127.0.0.1:${leader.port}`], ['l2', `127.0.0.1:${await l2.start()}`]]));
    await client.call('l2', SET, encodeSet('a'), 5_000, null);
    // Leadership moves to l1 and back: l2's first stream is closed on the way, and a new one opened.
    await client.call('l1', SET, encodeSet('b'), 5_000, null);
    await client.call('l2', SET, encodeSet('c'), 5_000, null);
    await waitFor(() => streamsToL2[0]?.cancelled === true);
    expect(streamsToL2).toHaveLength(2);
    expect(streamsToL2[1]!.cancelled).toBe(false);
  });

  it('passes on the refusal of a leader of another cluster', async () => {
    const { client } = await pair({ Set: (_call, callback) => callback(null, {}) }, 'another-cluster');
    const error = (await client.call('l1', SET, encodeSet('a'), 5_000, null).catch((e: unknown) => e)) as grpc.StatusObject;
    expect(error.code).toBe(grpc.status.UNAVAILABLE);
    expect(error.details).toContain('cluster id mismatch');
  });

  it('says a call was not sent when the leader has no known address, or no connection could be made', async () => {
    const { client, follower, leader } = await pair({});
    const noAddress = await client.call('nobody', SET, encodeSet('a'), 5_000, null).catch((e: unknown) => e);
    expect(noAddress).toBeInstanceOf(LeaderUnreachableError);
    expect((noAddress as Error).message).toContain('the leader nobody cannot be reached (no address is known for it); the request was not sent');

    const port = leader.port;
    await leader.close();
    follower.setPeers(new Map([['l1', `127.0.0.1:${port}`]]));
    const refused = await client.call('l1', SET, encodeSet('a'), 5_000, null).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(LeaderUnreachableError);
    expect(toStatus(refused, null).code).toBe(grpc.status.UNAVAILABLE);
  });
});

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
