/**
 * Every KV and Cluster method against a scripted server: what goes on the
 * wire (through the real .proto encoding) and what comes back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { QuorumClient, text } from '../../../src/client/index.ts';
import { ServerPool, type Request, type Scripts } from './scripted-server.ts';

const pool = new ServerPool();
const clients: QuorumClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  pool.closeAll();
});

async function setup(scripts: Scripts, options: { consistency?: 'serializable' } = {}) {
  const server = await pool.start(scripts);
  const client = new QuorumClient({ endpoints: [server.address], ...options });
  clients.push(client);
  return { server, client };
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const noSession = (r: Request | undefined): Request => {
  const { client_id: _id, sequence: _seq, ...rest } = r ?? {};
  return rest;
};

describe('strings and keys', () => {
  it('get: found, missing, binary, serializable', async () => {
    const values: Record<string, Buffer> = { k: Buffer.from([0, 255, 1]) };
    const { server, client } = await setup({ kv: { Get: (r) => ({ found: r['key'] in values, value: values[r['key'] as string] ?? Buffer.alloc(0) }) } });
    await expect(client.get('k')).resolves.toEqual(new Uint8Array([0, 255, 1]));
    await expect(client.get('nope')).resolves.toBeNull();
    await expect(client.getString('nope')).resolves.toBeNull();
    await client.get('k', { consistency: 'serializable' });
    expect(server.received('Get').map((r) => r['consistency'])).toEqual(['LINEARIZABLE', 'LINEARIZABLE', 'LINEARIZABLE', 'SERIALIZABLE']);
  });

  it('a client-wide serializable default', async () => {
    const { server, client } = await setup({ kv: { Size: () => ({ keys: 0 }) } }, { consistency: 'serializable' });
    await client.size();
    await client.size({ consistency: 'linearizable' });
    expect(server.received('Size').map((r) => r['consistency'])).toEqual(['SERIALIZABLE', 'LINEARIZABLE']);
  });

  it('set: options on the wire, string values UTF-8 encoded, previous value back', async () => {
    const { server, client } = await setup({ kv: { Set: () => ({ applied: false, previous_found: true, previous: Buffer.from('old') }) } });
    const result = await client.set('k', 'héllo', { ttlMs: 1500, condition: 'ifAbsent' });
    expect(result).toEqual({ applied: false, previousFound: true, previous: bytes('old') });
    await client.set('k', new Uint8Array([1, 2]), { condition: 'ifPresent', keepTtl: true });
    const [first, second] = server.received('Set');
    expect(noSession(first)).toEqual({ key: 'k', value: Buffer.from('héllo'), ttl_ms: 1500, condition: 'IF_ABSENT', keep_ttl: false });
    expect(noSession(second)).toEqual({ key: 'k', value: Buffer.from([1, 2]), ttl_ms: 0, condition: 'IF_PRESENT', keep_ttl: true });
  });

  it('set reports previous as null when the key was missing', async () => {
    const { client } = await setup({ kv: { Set: () => ({ applied: true, previous_found: false, previous: Buffer.alloc(0) }) } });
    await expect(client.set('k', 'v')).resolves.toEqual({ applied: true, previousFound: false, previous: null });
  });

  it('del, exists, expire, persist, ttl, type, size, clear', async () => {
    const { server, client } = await setup({
      kv: {
        Delete: (r) => ({ deleted: (r['keys'] as string[]).length }),
        Exists: () => ({ count: 2 }),
        Expire: (r) => ({ applied: r['ttl_ms'] > 0 }),
        Ttl: () => ({ ttl_ms: -2 }),
        Type: () => ({ type: 'HASH' }),
        Size: () => ({ keys: 7 }),
        Clear: () => ({ deleted: 7 }),
      },
    });
    await expect(client.del(['a', 'b'])).resolves.toBe(2);
    await expect(client.del('a')).resolves.toBe(1);
    await expect(client.exists(['a', 'a'])).resolves.toBe(2);
    await expect(client.expire('a', 100)).resolves.toBe(true);
    await expect(client.persist('a')).resolves.toBe(false);
    await expect(client.ttl('a')).resolves.toBe(-2);
    await expect(client.type('a')).resolves.toBe('hash');
    await expect(client.size()).resolves.toBe(7);
    await expect(client.clear()).resolves.toBe(7);
    expect(server.received('Expire').map((r) => r['ttl_ms'])).toEqual([100, 0]);
    expect(noSession(server.received('Exists')[0])).toEqual({ keys: ['a', 'a'], consistency: 'LINEARIZABLE' });
  });

  it('keys pages and scan follows cursors to the end', async () => {
    const pages: Record<string, { keys: string[]; next_cursor: string }> = {
      '': { keys: ['a', 'b'], next_cursor: 'c1' },
      c1: { keys: ['c'], next_cursor: 'c2' },
      c2: { keys: [], next_cursor: '' },
    };
    const { server, client } = await setup({ kv: { Keys: (r) => pages[r['cursor'] as string] } });
    await expect(client.keys({ pattern: 'a*', limit: 2 })).resolves.toEqual({ keys: ['a', 'b'], nextCursor: 'c1' });
    const all: string[] = [];
    for await (const key of client.scan({ pattern: '*', pageSize: 2 })) all.push(key);
    expect(all).toEqual(['a', 'b', 'c']);
    expect(server.received('Keys').map((r) => [r['pattern'], r['limit'], r['cursor']])).toEqual([
      ['a*', 2, ''],
      ['*', 2, ''],
      ['*', 2, 'c1'],
      ['*', 2, 'c2'],
    ]);
  });
});

describe('lists and hashes', () => {
  it('push, pop, index, set, range, len', async () => {
    const { server, client } = await setup({
      kv: {
        LPush: (r) => ({ length: (r['values'] as unknown[]).length }),
        RPush: () => ({ length: 9 }),
        LPop: () => ({ values: [Buffer.from('x')] }),
        RPop: () => ({ values: [] }),
        LIndex: (r) => ({ found: r['index'] === -1, value: Buffer.from('last') }),
        LSet: () => ({}),
        LRange: () => ({ values: [Buffer.from('a'), Buffer.from('b')] }),
        LLen: () => ({ length: 2 }),
      },
    });
    await expect(client.lpush('l', ['a', 'b', 'c'])).resolves.toBe(3);
    await expect(client.rpush('l', 'z')).resolves.toBe(9);
    await expect(client.lpop('l')).resolves.toEqual([bytes('x')]);
    await expect(client.rpop('l', 3)).resolves.toEqual([]);
    await expect(client.lindex('l', -1)).resolves.toEqual(bytes('last'));
    await expect(client.lindex('l', 5)).resolves.toBeNull();
    await expect(client.lset('l', -2, 'q')).resolves.toBeUndefined();
    await expect(client.lrange('l', 0, -1)).resolves.toEqual([bytes('a'), bytes('b')]);
    await expect(client.llen('l')).resolves.toBe(2);
    expect(noSession(server.received('LPop')[0])).toEqual({ key: 'l', count: 0 });
    expect(noSession(server.received('RPop')[0])).toEqual({ key: 'l', count: 3 });
    expect(noSession(server.received('LSet')[0])).toEqual({ key: 'l', index: -2, value: Buffer.from('q') });
    expect(noSession(server.received('LRange')[0])).toEqual({ key: 'l', start: 0, stop: -1, consistency: 'LINEARIZABLE' });
  });

  it('hset from a record or a map, hget, hdel, hgetall as a Map, hlen', async () => {
    const { server, client } = await setup({
      kv: {
        HSet: (r) => ({ added: Object.keys(r['fields'] as object).length }),
        HGet: (r) => ({ found: r['field'] === 'f', value: Buffer.from('v') }),
        HDel: () => ({ deleted: 1 }),
        HGetAll: () => ({ fields: { f: Buffer.from('v'), g: Buffer.from([0xff]) } }),
        HLen: () => ({ length: 2 }),
      },
    });
    await expect(client.hset('h', { f: 'v', g: new Uint8Array([0xff]) })).resolves.toBe(2);
    await expect(client.hset('h', new Map([['f', 'w']]))).resolves.toBe(1);
    await expect(client.hget('h', 'f')).resolves.toEqual(bytes('v'));
    await expect(client.hget('h', 'nope')).resolves.toBeNull();
    await expect(client.hdel('h', ['f', 'x'])).resolves.toBe(1);
    const all = await client.hgetall('h');
    expect([...all].map(([f, v]) => [f, [...v]])).toEqual([
      ['f', [0x76]],
      ['g', [0xff]],
    ]);
    await expect(client.hlen('h')).resolves.toBe(2);
    expect(noSession(server.received('HSet')[1])).toEqual({ key: 'h', fields: { f: Buffer.from('w') } });
    expect(noSession(server.received('HDel')[0])).toEqual({ key: 'h', fields: ['f', 'x'] });
  });

  it('hset and hgetall keep fields named like Object.prototype members (__proto__, constructor)', async () => {
    const stored = new Map<string, Buffer>();
    const { client } = await setup({
      kv: {
        HSet: (r) => {
          const fields = Object.entries(r['fields'] as Record<string, Buffer>);
          for (const [f, v] of fields) stored.set(f, v);
          return { added: fields.length };
        },
        HGetAll: () => ({ fields: Object.fromEntries(stored) }),
      },
    });
    await expect(client.hset('h', new Map([['__proto__', 'p'], ['constructor', 'c']]))).resolves.toBe(2);
    await expect(client.hset('h', Object.fromEntries([['__proto__', 'q']]))).resolves.toBe(1);
    const all = await client.hgetall('h');
    expect([...all].map(([f, v]) => [f, text(v)])).toEqual([
      ['__proto__', 'q'],
      ['constructor', 'c'],
    ]);
  });
});

describe('txn', () => {
  it('encodes compares and branches; decodes tagged results', async () => {
    const { server, client } = await setup({
      kv: {
        Txn: () => ({
          succeeded: true,
          responses: [
            { response: 'get', get: { found: true, value: Buffer.from('1') } },
            { response: 'set', set: { applied: true, previous_found: true, previous: Buffer.from('1') } },
            { response: 'delete', delete: { deleted: 1 } },
            { response: 'hgetall', hgetall: { fields: { f: Buffer.from('v') } } },
          ],
        }),
      },
    });
    const result = await client.txn({
      compares: [
        { key: 'a', value: '1' },
        { key: 'b', op: '!=', type: 'list' },
        { key: 'c', op: '>=', length: 2 },
        { key: 'd', exists: false },
      ],
      success: [
        { op: 'get', key: 'a' },
        { op: 'set', key: 'a', value: '2', ttlMs: 10 },
        { op: 'del', keys: ['b'] },
        { op: 'hgetall', key: 'h' },
      ],
      failure: [{ op: 'lpush', key: 'l', values: ['x'] }],
    });
    expect(result).toEqual({
      succeeded: true,
      results: [
        { op: 'get', result: bytes('1') },
        { op: 'set', result: { applied: true, previousFound: true, previous: bytes('1') } },
        { op: 'del', result: 1 },
        { op: 'hgetall', result: new Map([['f', bytes('v')]]) },
      ],
    });
    const sent = server.received('Txn')[0];
    expect(sent?.['client_id']).toBe(client.clientId);
    expect(sent?.['sequence']).toBe(1);
    expect(sent?.['compares']).toMatchObject([
      { key: 'a', op: 'EQUAL', value: Buffer.from('1'), target: 'value' },
      { key: 'b', op: 'NOT_EQUAL', type: 'LIST', target: 'type' },
      { key: 'c', op: 'GREATER_OR_EQUAL', length: 2, target: 'length' },
      { key: 'd', op: 'EQUAL', exists: false, target: 'exists' },
    ]);
    expect(sent?.['success'].map((op: Request) => op['request'])).toEqual(['get', 'set', 'delete', 'hgetall']);
    expect(sent?.['success'][1]['set']).toMatchObject({ key: 'a', value: Buffer.from('2'), ttl_ms: 10 });
    expect(sent?.['failure'][0]['lpush']).toMatchObject({ key: 'l', values: [Buffer.from('x')] });
  });

  it('a read-only txn carries consistency and no session', async () => {
    const { server, client } = await setup({ kv: { Txn: () => ({ succeeded: false, responses: [{ response: 'llen', llen: { length: 0 } }] }) } });
    const result = await client.txn({ compares: [{ key: 'a', exists: true }], success: [{ op: 'get', key: 'a' }], failure: [{ op: 'llen', key: 'l' }] }, { consistency: 'serializable' });
    expect(result).toEqual({ succeeded: false, results: [{ op: 'llen', result: 0 }] });
    expect(server.received('Txn')[0]).toMatchObject({ consistency: 'SERIALIZABLE', client_id: '', sequence: 0 });
  });
});

describe('cluster', () => {
  const wireStatus = {
    id: 'n2',
    cluster_id: 'c-1',
    role: 'PRE_CANDIDATE',
    term: 4,
    leader_id: '',
    commit_index: 10,
    applied_index: 9,
    log_first_index: 1,
    log_last_index: 11,
    snapshot_index: 0,
    keys: 3,
    memory_used_bytes: 1024,
    memory_limit_bytes: 0,
    state_digest: 'ab12',
    client_address: '127.0.0.1:7002',
    leader_client_address: '',
  };

  it('status and members in camelCase', async () => {
    const { client } = await setup({
      cluster: {
        Status: () => wireStatus,
        Members: () => ({
          members: [{ id: 'n1', peer_address: 'p', client_address: 'c', kind: 'LEARNER', leader: false, match_index: 0, lag_entries: 0 }],
          leader_id: 'n3',
          answered_by: 'n2',
        }),
      },
    });
    await expect(client.status()).resolves.toMatchObject({ id: 'n2', role: 'pre-candidate', appliedIndex: 9, stateDigest: 'ab12', clientAddress: '127.0.0.1:7002' });
    await expect(client.members()).resolves.toEqual({
      members: [{ id: 'n1', peerAddress: 'p', clientAddress: 'c', kind: 'learner', leader: false, matchIndex: 0, lagEntries: 0 }],
      leaderId: 'n3',
      answeredBy: 'n2',
    });
  });

  it('status of a given endpoint, membership changes, transfer, snapshot', async () => {
    const { server, client } = await setup({
      cluster: {
        Status: () => wireStatus,
        AddMember: () => ({ index: 20, members: [] }),
        RemoveMember: () => ({ index: 21, members: [] }),
        TransferLeadership: () => ({ leader_id: 'n3', term: 5 }),
        Snapshot: () => ({ index: 30, term: 5, size_bytes: 4096 }),
      },
    });
    await expect(client.status({ endpoint: server.address })).resolves.toMatchObject({ id: 'n2' });
    await expect(client.addMember({ id: 'n4', peerAddress: 'h:7104', clientAddress: 'h:7004' })).resolves.toEqual({ index: 20, members: [] });
    await expect(client.removeMember('n4')).resolves.toEqual({ index: 21, members: [] });
    await expect(client.transferLeadership('n3')).resolves.toEqual({ leaderId: 'n3', term: 5 });
    await expect(client.snapshot()).resolves.toEqual({ index: 30, term: 5, sizeBytes: 4096 });
    expect(server.received('AddMember')[0]).toEqual({ id: 'n4', peer_address: 'h:7104', client_address: 'h:7004' });
  });

  it('backup streams the chunks in order', async () => {
    const file = Buffer.from('SQLite format 3\0 and the rest of the file');
    const { client } = await setup({
      cluster: {
        Backup: (call) => {
          for (let offset = 0; offset < file.length; offset += 16) {
            call.write({ offset, data: file.subarray(offset, offset + 16), index: 30, term: 5, size_bytes: file.length });
          }
          call.end();
        },
      },
    });
    const chunks = [];
    for await (const chunk of client.backup()) chunks.push(chunk);
    expect(chunks.map((c) => c.offset)).toEqual([0, 16, 32]);
    expect(text(Buffer.concat(chunks.map((c) => c.data)))).toBe(file.toString());
    expect(chunks[0]).toMatchObject({ index: 30, term: 5, sizeBytes: file.length });
  });
});
