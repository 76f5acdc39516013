/**
 * Membership changes under load with real processes, and the leader's
 * decisions (TTL expiry, LRU eviction) reaching every replica identically.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TestCluster, bytes, sleep, text, waitFor } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('membership', () => {
  it('adds a 4th node (learner, catch up, promote) and removes one, under load', async () => {
    const c = await TestCluster.start({ size: 3 });
    cluster = c;
    const acked = new Map<string, string>();
    let running = true;
    const writer = (async () => {
      for (let i = 0; running; i++) {
        const id = c.runningIds()[i % c.runningIds().length] as string;
        try {
          await c.client(id).call('Set', { key: `m${i}`, value: bytes(String(i)) }, 2000);
          acked.set(`m${i}`, String(i));
        } catch {
          await sleep(20);
        }
      }
    })();

    const n4 = await c.newSpec('n4');
    const leader = await c.waitForLeader();
    const added = await c.client('n2').call('AddMember', { id: 'n4', peer_address: `127.0.0.1:${n4.peerPort}`, client_address: `127.0.0.1:${n4.clientPort}` });
    expect((added['members'] as Reply[]).find((m) => m['id'] === 'n4')?.['kind']).toBe('LEARNER');
    c.launch(n4, ['--join', `127.0.0.1:${c.spec(leader).clientPort}`]);
    await waitFor('n4 to catch up', async () => {
      const members = (await c.client(leader).call('Members'))['members'] as Reply[];
      return members.find((m) => m['id'] === 'n4')?.['lag_entries'] === 0;
    });
    await c.client('n3').call('PromoteMember', { id: 'n4' });
    const voters = ((await c.client(leader).call('Members'))['members'] as Reply[]).filter((m) => m['kind'] === 'VOTER').map((m) => m['id']);
    expect(voters.sort()).toEqual(['n1', 'n2', 'n3', 'n4']);

    // Remove the leader itself: it steps down and the others carry on.
    await c.client(leader).call('RemoveMember', { id: leader });
    await sleep(500);
    await c.kill(leader, 'SIGTERM');
    const remaining = ['n1', 'n2', 'n3', 'n4'].filter((id) => id !== leader);
    const newLeader = await c.waitForLeader(20_000, remaining);
    expect(remaining).toContain(newLeader);
    await sleep(500);
    running = false;
    await writer;
    await c.waitForConvergence(remaining);
    const members = ((await c.client(newLeader).call('Members'))['members'] as Reply[]).map((m) => m['id']);
    expect(members.sort()).toEqual(remaining.sort());
    expect(acked.size).toBeGreaterThan(20);
    for (const [key, value] of acked) expect(text((await c.client('n4').call('Get', { key }))['value'])).toBe(value);
  }, 120_000);
});

describe('leader decisions replicated as entries', () => {
  it('TTL expiry and LRU eviction leave every replica with the same state digest', async () => {
    const c = await TestCluster.start({ size: 3, flags: ['--max-memory', '64kb', '--eviction', 'lru'] });
    cluster = c;
    const leader = await c.waitForLeader();
    const client = c.client(leader);
    for (let i = 0; i < 50; i++) await client.call('Set', { key: `ttl${i}`, value: bytes('short-lived'), ttl_ms: 300 });
    for (let i = 0; i < 400; i++) await client.call('Set', { key: `big${i}`, value: Buffer.alloc(300, i % 256) });
    await sleep(1500);
    const statuses = await c.waitForConvergence();
    const keys = statuses.map((s) => s['keys'] as number);
    expect(new Set(keys).size).toBe(1);
    expect(keys[0]).toBeLessThan(400);
    expect(statuses.every((s) => (s['memory_used_bytes'] as number) <= 64 * 1024)).toBe(true);
    expect(await client.call('Get', { key: 'ttl0' })).toMatchObject({ found: false });
    // The most recent writes survive eviction.
    expect(await client.call('Get', { key: 'big399' })).toMatchObject({ found: true });
  }, 90_000);
});

