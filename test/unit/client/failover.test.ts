/**
 * Failover, leader hints and retries, against scripted servers: which
 * endpoint each attempt reaches, which failures are retried, and that a
 * retried write keeps its (client_id, sequence).
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { QuorumClient, QuorumError } from '../../../src/client/index.ts';
import { deadAddress, notLeader, ServerPool, status, type Request } from './scripted-server.ts';

const pool = new ServerPool();
const clients: QuorumClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  pool.closeAll();
});

function client(endpoints: string[], options: Partial<ConstructorParameters<typeof QuorumClient>[0]> = {}): QuorumClient {
  const c = new QuorumClient({ endpoints, retry: { initialBackoffMs: 5, maxBackoffMs: 20 }, ...options });
  clients.push(c);
  return c;
}

const ok = { found: true, value: Buffer.from('v') };
const setOk = { applied: true, previous_found: false, previous: Buffer.alloc(0) };

describe('leader hints', () => {
  it('goes to the hinted leader next, then starts there', async () => {
    const leader = await pool.start({ kv: { Set: () => setOk, Get: () => ok } });
    const follower = await pool.start({ kv: { Set: () => Promise.reject(notLeader(leader.address)) } });
    const c = client([follower.address]);

    await expect(c.set('k', 'v')).resolves.toMatchObject({ applied: true });
    expect(follower.received('Set')).toHaveLength(1);
    expect(leader.received('Set')).toHaveLength(1);
    expect(c.endpoint).toBe(leader.address);

    await c.get('k');
    expect(leader.received('Get')).toHaveLength(1);
    expect(follower.received('Get')).toHaveLength(0);
  });

  it('keeps the session across the hop to the leader', async () => {
    const leader = await pool.start({ kv: { Delete: () => ({ deleted: 1 }) } });
    const follower = await pool.start({ kv: { Delete: () => Promise.reject(notLeader(leader.address)) } });
    const c = client([follower.address]);
    await c.del('k');
    const [first] = follower.received('Delete');
    const [second] = leader.received('Delete');
    expect(first?.['client_id']).toBe(c.clientId);
    expect(second).toMatchObject({ client_id: first?.['client_id'], sequence: first?.['sequence'] });
  });

  it('exposes the hint on the error when retries run out', async () => {
    const only = await pool.start({ kv: { Get: () => Promise.reject(notLeader('127.0.0.1:1', 'n9')) } });
    const c = client([only.address], { retry: { maxAttempts: 1 } });
    const error = await c.get('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuorumError);
    expect(error).toMatchObject({ code: 'UNAVAILABLE', leader: { id: 'n9', address: '127.0.0.1:1' }, attempts: 1 });
  });
});

describe('endpoint failover', () => {
  it('skips a dead endpoint and starts at the live one afterwards', async () => {
    const live = await pool.start({ kv: { Get: () => ok, Size: () => ({ keys: 3 }) } });
    const c = client([await deadAddress(), live.address]);
    await expect(c.getString('k')).resolves.toBe('v');
    expect(c.endpoint).toBe(live.address);
    await expect(c.size()).resolves.toBe(3);
    expect(live.received('Size')).toHaveLength(1);
  });

  it('retries a read answered UNAVAILABLE on the next endpoint', async () => {
    const a = await pool.start({ kv: { LLen: () => Promise.reject(status(grpc.status.UNAVAILABLE, 'no leader yet')) } });
    const b = await pool.start({ kv: { LLen: () => ({ length: 4 }) } });
    await expect(client([a.address, b.address]).llen('l')).resolves.toBe(4);
  });

  it('backs off and comes back to the same node once every endpoint failed', async () => {
    let calls = 0;
    const only = await pool.start({
      kv: { Exists: () => (++calls < 3 ? Promise.reject(status(grpc.status.UNAVAILABLE, 'electing')) : { count: 2 }) },
    });
    await expect(client([only.address]).exists(['a', 'b'])).resolves.toBe(2);
    expect(calls).toBe(3);
  });

  it('gives up after maxAttempts with the last error', async () => {
    const down = await pool.start({ kv: { Get: () => Promise.reject(status(grpc.status.UNAVAILABLE, 'no quorum')) } });
    const c = client([down.address], { retry: { maxAttempts: 4, initialBackoffMs: 1, maxBackoffMs: 2 } });
    await expect(c.get('k')).rejects.toMatchObject({ code: 'UNAVAILABLE', details: 'no quorum', attempts: 4 });
    expect(down.received('Get')).toHaveLength(4);
  });

  it('gives up at the overall deadline', async () => {
    const down = await pool.start({ kv: { Get: () => Promise.reject(status(grpc.status.UNAVAILABLE, 'no quorum')) } });
    const c = client([down.address], { timeoutMs: 300, retry: { maxAttempts: 1000, initialBackoffMs: 50, maxBackoffMs: 50 } });
    const started = Date.now();
    const error = await c.get('k').catch((e: unknown) => e);
    // The last attempt may be the one the deadline cut short.
    expect(['UNAVAILABLE', 'DEADLINE_EXCEEDED']).toContain((error as QuorumError).code);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(down.received('Get').length).toBeLessThan(20);
  });

  it('reaches a node again soon after it restarts', async () => {
    const first = await pool.start({ kv: { Size: () => ({ keys: 1 }) } });
    const c = client([first.address], { retry: { initialBackoffMs: 50, maxBackoffMs: 200 } });
    await expect(c.size()).resolves.toBe(1);
    first.close();
    const port = Number(first.address.split(':')[1]);
    setTimeout(() => void pool.start({ kv: { Size: () => ({ keys: 2 }) } }, port), 700);
    await expect(c.size()).resolves.toBe(2);
  });

  it('moves on from a node that does not answer within the attempt deadline', async () => {
    const hung = await pool.start({ kv: { Get: () => new Promise(() => undefined) } });
    const live = await pool.start({ kv: { Get: () => ok } });
    const c = client([hung.address, live.address], { timeoutMs: 5_000, attemptTimeoutMs: 150 });
    await expect(c.getString('k')).resolves.toBe('v');
  });
});

describe('exactly-once writes', () => {
  it('retries a write after DEADLINE_EXCEEDED with the same client_id and sequence', async () => {
    let calls = 0;
    const node = await pool.start({
      kv: {
        LPush: () => (++calls === 1 ? Promise.reject(status(grpc.status.DEADLINE_EXCEEDED, 'not committed within 5000 ms')) : { length: 1 }),
      },
    });
    const c = client([node.address]);
    await expect(c.lpush('l', 'a')).resolves.toBe(1);
    const [first, retry] = node.received('LPush');
    expect(first).toMatchObject({ client_id: c.clientId, sequence: 1 });
    expect(retry).toMatchObject({ client_id: c.clientId, sequence: 1 });

    await c.lpush('l', 'b');
    expect(node.received('LPush')[2]).toMatchObject({ client_id: c.clientId, sequence: 2 });
  });

  it('retries a write whose attempt timed out on the client, with the same session', async () => {
    let calls = 0;
    const node = await pool.start({ kv: { Set: () => (++calls === 1 ? new Promise(() => undefined) : setOk) } });
    const c = client([node.address], { attemptTimeoutMs: 150 });
    await expect(c.set('k', 'v')).resolves.toMatchObject({ applied: true });
    const sent = node.received('Set');
    expect(sent).toHaveLength(2);
    expect(sent[1]).toMatchObject({ client_id: sent[0]?.['client_id'], sequence: sent[0]?.['sequence'] });
  });

  it('retries a write cut off by its node shutting down, elsewhere, with the same session', async () => {
    const next = await pool.start({ kv: { RPush: () => ({ length: 2 }) } });
    const dying = await pool.start({ kv: { RPush: () => (setTimeout(() => dying.close(), 10), new Promise(() => undefined)) } });
    const c = client([dying.address, next.address]);
    await expect(c.rpush('l', ['a', 'b'])).resolves.toBe(2);
    const [cut] = dying.received('RPush');
    expect(next.received('RPush')[0]).toMatchObject({ client_id: cut?.['client_id'], sequence: cut?.['sequence'] });
  });

  it('numbers writes 1, 2, 3 in one session when they run one at a time', async () => {
    const node = await pool.start({ kv: { Set: () => setOk, Delete: () => ({ deleted: 0 }), HSet: () => ({ added: 1 }) } });
    const c = client([node.address], { clientId: 'fixed-id' });
    await c.set('a', '1');
    await c.del('a');
    await c.hset('h', { f: 'v' });
    const writes = node.requests.map((r) => [r.request['client_id'], r.request['sequence']]);
    expect(writes).toEqual([
      ['fixed-id', 1],
      ['fixed-id', 2],
      ['fixed-id', 3],
    ]);
  });

  it('gives concurrent writes distinct sessions (the server allows one write in flight per session)', async () => {
    const node = await pool.start({ kv: { Set: () => new Promise((resolve) => setTimeout(() => resolve(setOk), 20)) } });
    const c = client([node.address]);
    await Promise.all([c.set('a', '1'), c.set('b', '2'), c.set('c', '3')]);
    const ids = node.received('Set').map((r: Request) => r['client_id'] as string);
    expect(new Set(ids).size).toBe(3);
    expect(ids).toContain(c.clientId);
    // A later write reuses an idle session rather than opening a fourth.
    await c.set('d', '4');
    expect(ids).toContain(node.received('Set')[3]?.['client_id']);
  });

  it('sends no session with reads', async () => {
    const node = await pool.start({ kv: { Get: () => ok } });
    await client([node.address]).get('k');
    expect(node.received('Get')[0]).toEqual({ key: 'k', consistency: 'LINEARIZABLE' });
  });
});

describe('answers that are never retried', () => {
  it.each([
    [grpc.status.INVALID_ARGUMENT, 'INVALID_ARGUMENT', 'value is 2 MiB; the limit is 1 MiB'],
    [grpc.status.FAILED_PRECONDITION, 'FAILED_PRECONDITION', 'WRONGTYPE: key l holds a list'],
    [grpc.status.OUT_OF_RANGE, 'OUT_OF_RANGE', 'index 9 is outside the list (length 2)'],
    [grpc.status.RESOURCE_EXHAUSTED, 'RESOURCE_EXHAUSTED', 'memory budget of 1048576 bytes is full'],
  ])('%s: one attempt, QuorumError with the server message', async (code, name, details) => {
    const node = await pool.start({ kv: { Set: () => Promise.reject(status(code, details)) } });
    const other = await pool.start({ kv: { Set: () => setOk } });
    const error = await client([node.address, other.address])
      .set('k', 'v')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(QuorumError);
    expect(error).toMatchObject({ code: name, details, message: `${name}: ${details}`, endpoint: node.address, attempts: 1 });
    expect((error as QuorumError).grpcCode).toBe(code);
    expect(node.received('Set')).toHaveLength(1);
    expect(other.received('Set')).toHaveLength(0);
  });

  it('does not retry an admin change on DEADLINE_EXCEEDED (it carries no session)', async () => {
    const node = await pool.start({ cluster: { AddMember: () => Promise.reject(status(grpc.status.DEADLINE_EXCEEDED, 'not committed')) } });
    const c = client([node.address]);
    await expect(c.addMember({ id: 'n4', peerAddress: 'h:7104', clientAddress: 'h:7004' })).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
    expect(node.received('AddMember')).toHaveLength(1);
  });

  it('retries an admin change answered UNAVAILABLE, at the hinted leader', async () => {
    const members = [{ id: 'n1', peer_address: 'a:1', client_address: 'a:2', kind: 'VOTER', leader: true, match_index: 9, lag_entries: 0 }];
    const leader = await pool.start({ cluster: { PromoteMember: () => ({ index: 12, members }) } });
    const follower = await pool.start({ cluster: { PromoteMember: () => Promise.reject(notLeader(leader.address)) } });
    const change = await client([follower.address]).promoteMember('n4');
    expect(change).toEqual({
      index: 12,
      members: [{ id: 'n1', peerAddress: 'a:1', clientAddress: 'a:2', kind: 'voter', leader: true, matchIndex: 9, lagEntries: 0 }],
    });
  });

  it('checks arguments locally before sending anything', async () => {
    const node = await pool.start({ kv: { Set: () => setOk } });
    const c = client([node.address]);
    await expect(c.set('k', 'v', { ttlMs: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: 'ttlMs must be an integer from 0 to 9007199254740991 (got -1)' });
    await expect(c.set('k', 'v', { ttlMs: 10, keepTtl: true })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(c.del([])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: 'del needs at least one key' });
    expect(node.requests).toHaveLength(0);
  });

  it('stops retrying when the signal fires', async () => {
    const down = await pool.start({ kv: { Get: () => Promise.reject(status(grpc.status.UNAVAILABLE, 'no quorum')) } });
    const c = client([down.address], { retry: { initialBackoffMs: 200, maxBackoffMs: 200 } });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    await expect(c.get('k', { signal: controller.signal })).rejects.toMatchObject({ code: 'CANCELLED' });
  });
});
