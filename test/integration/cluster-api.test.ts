/**
 * A real three-node cluster (child processes, gRPC on loopback, SQLite in temp
 * dirs): every RPC answers the same through the leader and through a
 * follower, bad input is refused without changing anything, and Watch,
 * Snapshot, Backup, /metrics and /healthz work.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GrpcError, TestCluster, bytes, sleep, text } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';

let cluster: TestCluster;
let leader: string;
let follower: string;

beforeAll(async () => {
  cluster = await TestCluster.start({ size: 3 });
  leader = await cluster.waitForLeader();
  follower = cluster.specs.map((s) => s.id).find((id) => id !== leader) as string;
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

async function refused(promise: Promise<unknown>): Promise<GrpcError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof GrpcError) return error;
    throw error;
  }
  throw new Error('expected the call to be refused');
}

describe.each([
  ['the leader', () => leader],
  ['a follower', () => follower],
])('every KV RPC through %s', (_, node) => {
  it('strings: Set, Get, Exists, Expire, Ttl, Type, Delete', async () => {
    const c = cluster.client(node());
    const key = `s-${node()}`;
    expect(await c.call('Set', { key, value: bytes('v1') })).toMatchObject({ applied: true, previous_found: false });
    const second = await c.call('Set', { key, value: bytes('v2'), condition: 'IF_ABSENT' });
    expect(second['applied']).toBe(false);
    expect(text(second['previous'])).toBe('v1');
    expect(text((await c.call('Get', { key }))['value'])).toBe('v1');
    expect(text((await c.call('Get', { key, consistency: 'SERIALIZABLE' }))['value'])).toBe('v1');
    expect(await c.call('Exists', { keys: [key, 'nope'] })).toEqual({ count: 1 });
    expect(await c.call('Ttl', { key })).toEqual({ ttl_ms: -1 });
    expect(await c.call('Expire', { key, ttl_ms: 60_000 })).toEqual({ applied: true });
    expect((await c.call('Ttl', { key }))['ttl_ms']).toBeGreaterThan(50_000);
    expect(await c.call('Type', { key })).toEqual({ type: 'STRING' });
    expect(await c.call('Delete', { keys: [key, 'nope'] })).toEqual({ deleted: 1 });
    expect(await c.call('Get', { key })).toMatchObject({ found: false });
    expect(await c.call('Ttl', { key })).toEqual({ ttl_ms: -2 });
  });

  it('lists: LPush, RPush, LRange, LIndex, LSet, LLen, LPop, RPop', async () => {
    const c = cluster.client(node());
    const key = `l-${node()}`;
    expect(await c.call('LPush', { key, values: [bytes('a'), bytes('b'), bytes('c')] })).toEqual({ length: 3 });
    expect(await c.call('RPush', { key, values: [bytes('z')] })).toEqual({ length: 4 });
    const range = await c.call('LRange', { key, start: 0, stop: -1 });
    expect((range['values'] as Uint8Array[]).map(text)).toEqual(['c', 'b', 'a', 'z']);
    expect(text((await c.call('LIndex', { key, index: -1 }))['value'])).toBe('z');
    await c.call('LSet', { key, index: 0, value: bytes('C') });
    expect(await c.call('LLen', { key })).toEqual({ length: 4 });
    expect(((await c.call('LPop', { key, count: 2 }))['values'] as Uint8Array[]).map(text)).toEqual(['C', 'b']);
    expect(((await c.call('RPop', { key }))['values'] as Uint8Array[]).map(text)).toEqual(['z']);
    expect(await c.call('Type', { key })).toEqual({ type: 'LIST' });
  });

  it('hashes: HSet, HGet, HGetAll, HLen, HDel', async () => {
    const c = cluster.client(node());
    const key = `h-${node()}`;
    expect(await c.call('HSet', { key, fields: { a: bytes('1'), b: bytes('2') } })).toEqual({ added: 2 });
    expect(text((await c.call('HGet', { key, field: 'b' }))['value'])).toBe('2');
    const all = (await c.call('HGetAll', { key }))['fields'] as Record<string, Uint8Array>;
    expect(Object.fromEntries(Object.entries(all).map(([k, v]) => [k, text(v)]))).toEqual({ a: '1', b: '2' });
    expect(await c.call('HLen', { key })).toEqual({ length: 2 });
    expect(await c.call('HDel', { key, fields: ['a', 'b'] })).toEqual({ deleted: 2 });
    expect(await c.call('Type', { key })).toEqual({ type: 'NONE' });
  });

  it('Keys, Size and Txn', async () => {
    const c = cluster.client(node());
    const prefix = `txn-${node()}`;
    await c.call('Set', { key: `${prefix}-a`, value: bytes('1') });
    const txn = await c.call('Txn', {
      compares: [{ key: `${prefix}-a`, op: 'EQUAL', value: bytes('1') }],
      success: [{ set: { key: `${prefix}-b`, value: bytes('2') } }, { get: { key: `${prefix}-a` } }],
      failure: [{ delete: { keys: [`${prefix}-a`] } }],
    });
    expect(txn['succeeded']).toBe(true);
    const responses = txn['responses'] as Reply[];
    expect(responses[0]?.['set']).toMatchObject({ applied: true });
    expect(text((responses[1]?.['get'] as Reply)['value'])).toBe('1');
    const keys = await c.call('Keys', { pattern: `${prefix}-*` });
    expect((keys['keys'] as string[]).sort()).toEqual([`${prefix}-a`, `${prefix}-b`]);
    expect((await c.call('Size'))['keys']).toBeGreaterThanOrEqual(2);
    const failed = await c.call('Txn', {
      compares: [{ key: `${prefix}-a`, op: 'EQUAL', exists: false }],
      success: [],
      failure: [{ get: { key: `${prefix}-b` } }],
    });
    expect(failed['succeeded']).toBe(false);
  });
});

describe('bad input is refused, names the problem and the limit, and changes nothing', () => {
  const cases: [string, string, object, string, RegExp][] = [
    ['an empty key', 'Set', { key: '', value: bytes('v') }, 'INVALID_ARGUMENT', /key must not be empty/],
    ['an oversized key', 'Set', { key: 'k'.repeat(1025), value: bytes('v') }, 'INVALID_ARGUMENT', /1025 bytes; the limit is 1024/],
    ['an oversized value', 'Set', { key: 'k', value: Buffer.alloc(1024 * 1024 + 1) }, 'INVALID_ARGUMENT', /the limit is 1048576/],
    ['a TTL beyond 100 years', 'Set', { key: 'k', value: bytes('v'), ttl_ms: 2 ** 52 }, 'INVALID_ARGUMENT', /ttl_ms/],
    ['ttl_ms with keep_ttl', 'Set', { key: 'k', value: bytes('v'), ttl_ms: 5, keep_ttl: true }, 'INVALID_ARGUMENT', /not both/],
    ['an unknown enum value', 'Set', { key: 'k', value: bytes('v'), condition: 7 }, 'INVALID_ARGUMENT', /condition/],
    ['a Delete with no keys', 'Delete', { keys: [] }, 'INVALID_ARGUMENT', /at least one key/],
    ['a sequence without a client id', 'Set', { key: 'k', value: bytes('v'), sequence: 3 }, 'INVALID_ARGUMENT', /without a client_id/],
    ['a request larger than the message limit', 'Set', { key: 'k', value: Buffer.alloc(5 * 1024 * 1024) }, 'RESOURCE_EXHAUSTED', /larger than max|exceeds|message/i],
  ];

  it.each(cases)('%s', async (_, method, request, code, message) => {
    const c = cluster.client(follower);
    const before = await cluster.waitForConvergence();
    const error = await refused(c.call(method, request));
    expect(GrpcStatusName(error.code)).toBe(code);
    expect(error.details).toMatch(message);
    const after = await cluster.waitForConvergence();
    expect(after.map((s) => s['state_digest'])).toEqual(before.map((s) => s['state_digest']));
  });

  it('a command on a key of another type is FAILED_PRECONDITION (WRONGTYPE) and changes nothing', async () => {
    const c = cluster.client(leader);
    await c.call('Set', { key: 'typed', value: bytes('s') });
    const error = await refused(c.call('LPush', { key: 'typed', values: [bytes('x')] }));
    expect(GrpcStatusName(error.code)).toBe('FAILED_PRECONDITION');
    expect(error.details).toMatch(/WRONGTYPE.*string/);
    expect(text((await c.call('Get', { key: 'typed' }))['value'])).toBe('s');
  });

  it('LSet outside the list is OUT_OF_RANGE', async () => {
    const c = cluster.client(follower);
    await c.call('RPush', { key: 'short', values: [bytes('x')] });
    const error = await refused(c.call('LSet', { key: 'short', index: 5, value: bytes('y') }));
    expect(GrpcStatusName(error.code)).toBe('OUT_OF_RANGE');
  });
});

describe('Watch', () => {
  it('streams changes for a prefix from an index, through a follower', async () => {
    const c = cluster.client(follower);
    const start = await c.call('Set', { key: 'w/0', value: bytes('zero') });
    expect(start).toMatchObject({ applied: true });
    const status = await cluster.client(follower).call('Status');
    const stream = c.watch({ key: 'w/', prefix: true, from_index: status['applied_index'] });
    const events: Reply[] = [];
    stream.on('data', (event: Reply) => events.push(event));
    stream.on('error', () => {});
    await c.call('Set', { key: 'w/1', value: bytes('one') });
    await c.call('Delete', { keys: ['w/1'] });
    await c.call('Set', { key: 'other', value: bytes('x') });
    await c.call('RPush', { key: 'w/list', values: [bytes('a')] });
    for (let i = 0; i < 50 && events.length < 4; i++) await sleep(50);
    stream.cancel();
    expect(events.map((e) => [e['type'], e['key']])).toEqual([
      ['PUT', 'w/0'],
      ['PUT', 'w/1'],
      ['DELETE', 'w/1'],
      ['PUT', 'w/list'],
    ]);
    expect(text(events[1]?.['value'])).toBe('one');
    expect(events[3]?.['value_type']).toBe('LIST');
    const indexes = events.map((e) => e['index'] as number);
    expect([...indexes].sort((a, b) => a - b)).toEqual(indexes);
  });

  it('resumes on another node from the last index + 1 with no gap and no duplicate, across a leadership change', async () => {
    const received: Reply[] = [];
    const collect = (id: string, fromIndex: number) => {
      const stream = cluster.client(id).watch({ key: 'r/', prefix: true, from_index: fromIndex });
      stream.on('data', (event: Reply) => received.push(event));
      stream.on('error', () => {});
      return stream;
    };
    const from = ((await cluster.client(leader).call('Status'))['applied_index'] as number) + 1;
    const first = collect(follower, from);
    for (let i = 0; i < 5; i++) await cluster.client(leader).call('Set', { key: `r/${i}`, value: bytes(String(i)) });
    for (let i = 0; i < 50 && received.length < 5; i++) await sleep(50);
    first.cancel();
    const last = received[received.length - 1]?.['index'] as number;
    const other = cluster.specs.map((s) => s.id).find((id) => id !== leader && id !== follower) as string;
    await cluster.client(leader).call('TransferLeadership', { id: other });
    leader = await cluster.waitForLeader();
    for (let i = 5; i < 10; i++) await cluster.client(other).call('Set', { key: `r/${i}`, value: bytes(String(i)) });
    const second = collect(other, last + 1);
    for (let i = 0; i < 50 && received.length < 10; i++) await sleep(50);
    second.cancel();
    expect(received.map((e) => e['key'])).toEqual(Array.from({ length: 10 }, (_, i) => `r/${i}`));
    follower = cluster.specs.map((s) => s.id).find((id) => id !== leader) as string;
  });

  it('refuses a watch from an index this node no longer holds', async () => {
    const c = cluster.client(follower);
    const stream = c.watch({ key: 'x', from_index: 1 });
    const error = await new Promise<Error & { code?: number }>((resolve) => stream.on('error', resolve));
    expect(GrpcStatusName(error.code ?? -1)).toBe('OUT_OF_RANGE');
  });
});

describe('Cluster service and the HTTP port', () => {
  it('Status and Members describe the cluster from any node', async () => {
    const status = await cluster.client(follower).call('Status');
    expect(status).toMatchObject({ id: follower, role: 'FOLLOWER', leader_id: leader });
    expect(status['state_digest']).toMatch(/^[0-9a-f]{16}$/);
    const members = await cluster.client(follower).call('Members');
    expect((members['members'] as Reply[]).map((m) => [m['id'], m['kind'], m['leader']])).toEqual(
      cluster.specs.map((s) => [s.id, 'VOTER', s.id === leader]),
    );
    expect((members['members'] as Reply[]).every((m) => typeof m['client_address'] === 'string' && m['client_address'] !== '')).toBe(true);
  });

  it('Snapshot takes one now, and Backup streams it as a SQLite file', async () => {
    const c = cluster.client(follower);
    const snapshot = await c.call('Snapshot');
    expect(snapshot['index']).toBeGreaterThan(1);
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = c.backup();
      stream.on('data', (chunk: Reply) => chunks.push(Buffer.from(chunk['data'] as Uint8Array)));
      stream.on('end', () => resolve());
      stream.on('error', reject);
    });
    const file = Buffer.concat(chunks);
    expect(file.length).toBe(snapshot['size_bytes']);
    expect(file.subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
  });

  it('serves /metrics, /healthz, /readyz and a status page', async () => {
    const spec = cluster.spec(leader);
    const metrics = await (await fetch(`http://127.0.0.1:${spec.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^quorumkv_raft_is_leader 1$/m);
    expect(metrics).toMatch(/^quorumkv_fsync_duration_seconds_count \d+$/m);
    const health = await fetch(`http://127.0.0.1:${spec.httpPort}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ live: true, ready: true, id: leader, role: 'LEADER' });
    expect((await fetch(`http://127.0.0.1:${spec.httpPort}/readyz`)).status).toBe(200);
    const page = await (await fetch(`http://127.0.0.1:${spec.httpPort}/`)).text();
    expect(page).toContain(`quorumkv node ${leader}`);
  });
});

function GrpcStatusName(code: number): string {
  const names: Record<number, string> = { 3: 'INVALID_ARGUMENT', 4: 'DEADLINE_EXCEEDED', 8: 'RESOURCE_EXHAUSTED', 9: 'FAILED_PRECONDITION', 11: 'OUT_OF_RANGE', 14: 'UNAVAILABLE' };
  return names[code] ?? String(code);
}
