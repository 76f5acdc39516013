/**
 * The peer port with real processes: a removed member restarted with its old
 * data cannot disrupt the cluster (issue 7), an unknown id cannot ask for
 * votes, a follower that missed an AddMember follows the new member once it
 * leads, and a removed id wiped and added back with --join is a member again.
 */
import { rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message } from '../../src/raft/index.ts';
import { encodeBatch } from '../../src/transport/codec.ts';
import { passBuffer, SEND_PATH } from '../../src/transport/service.ts';
import { TestCluster, bytes, sleep, text, waitFor } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';

/** --election-ms's default: followers campaign after 1-2 s without a leader. */
const ELECTION_MS = 1000;

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** Writes one key at a time through the given nodes until stopped; counts what was acknowledged and what failed. */
function startWriter(c: TestCluster, through: () => readonly string[]) {
  const acked = new Map<string, string>();
  let failures = 0;
  let running = true;
  const done = (async () => {
    for (let i = 0; running; i++) {
      const ids = through();
      const id = ids[i % ids.length] as string;
      try {
        await c.client(id).call('Set', { key: `w${i}`, value: bytes(String(i)) }, 3000);
        acked.set(`w${i}`, String(i));
      } catch {
        failures++;
        await sleep(20);
      }
      await sleep(10);
    }
  })();
  return {
    acked,
    failures: () => failures,
    stop: async () => {
      running = false;
      await done;
    },
  };
}

async function status(c: TestCluster, id: string): Promise<Reply> {
  return c.client(id).call('Status', {}, 2000);
}


async function members(c: TestCluster, via: string): Promise<Reply[]> {
  return ((await c.client(via).call('Members'))['members'] as Reply[] | undefined) ?? [];
}

/** Sends one batch to a node's peer port as `from`, the way a peer would; resolves with the refusal, or null when taken. */
function sendAsPeer(peerPort: number, clusterId: string, from: string, to: string, messages: Message[]): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(`127.0.0.1:${peerPort}`, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set('quorumkv-cluster-id', clusterId);
  metadata.set('quorumkv-from', from);
  metadata.set('quorumkv-to', to);
  return new Promise<grpc.ServiceError | null>((resolve) => {
    const call = client.makeClientStreamRequest<Buffer, Buffer>(SEND_PATH, passBuffer, passBuffer, metadata, { deadline: Date.now() + 5000 }, (err) => resolve(err));
    call.write(encodeBatch(clusterId, from, to, messages));
    call.end();
  }).finally(() => client.close());
}

describe('peer admission', () => {
  it('a removed member restarted with its old data cannot disrupt; wiped and re-added with --join it is a member again', async () => {
    // Frequent snapshots that keep few entries: the removal soon leaves the members' logs.
    const c = await TestCluster.start({ size: 3, flags: ['--snapshot-entries', '20', '--snapshot-keep-entries', '5'] });
    cluster = c;
    const leader = await c.waitForLeader();
    const victim = ['n1', 'n2', 'n3'].find((id) => id !== leader) as string;
    const survivors = ['n1', 'n2', 'n3'].filter((id) => id !== victim);
    const writer = startWriter(c, () => survivors);

    // Down first, then removed: its data dir never learns of the removal and still lists the old three members.
    await waitFor('writes to flow', async () => writer.acked.size >= 10);
    const victimTermBefore = Number((await status(c, victim))['term']);
    await c.kill(victim, 'SIGTERM');
    await c.client(leader).call('RemoveMember', { id: victim });
    const removalCommitted = Number((await status(c, leader))['commit_index']);
    expect((await members(c, leader)).map((m) => m['id']).sort()).toEqual(survivors.sort());
    // The surviving follower restarts once the removal is compacted away: only membership-history.json
    // still says the victim was removed (its snapshot lists the current members only).
    const restarted = survivors.find((id) => id !== leader) as string;
    await waitFor('the removal to be compacted', async () => Number((await status(c, restarted))['log_first_index']) > removalCommitted);
    await c.kill(restarted, 'SIGTERM');
    c.launch(c.spec(restarted));
    // With one of two voters down for a moment the leader may have stepped down (CheckQuorum): ask again.
    const leaderNow = await c.waitForLeader(20_000, survivors);
    const before = await Promise.all(survivors.map((id) => status(c, id)));
    const termBefore = Number(before[0]?.['term']);
    expect(Number(before[1]?.['term'])).toBe(termBefore);

    c.launch(c.spec(victim));
    const ackedAtRestart = writer.acked.size;
    const failuresAtRestart = writer.failures();
    // Several election timeouts: time enough for a member that believes itself a voter to campaign more than once.
    await sleep(6 * ELECTION_MS);

    for (const id of survivors) {
      const s = await status(c, id);
      expect(s['leader_id'], `${id}'s leader`).toBe(leaderNow);
      expect(Number(s['term']), `${id}'s term`).toBe(termBefore);
    }
    expect(writer.acked.size).toBeGreaterThan(ackedAtRestart + 20);
    expect(writer.failures()).toBe(failuresAtRestart);

    // The removed node was told, said so once, and stopped: no pre-candidacy left behind, no term bumped.
    const removedStatus = await status(c, victim);
    expect(removedStatus['role']).toBe('FOLLOWER');
    expect(removedStatus['leader_id']).toBe('');
    expect(Number(removedStatus['term'])).toBe(victimTermBefore);
    const victimLog = c.processes.get(victim)?.output() ?? '';
    const told = victimLog.match(new RegExp(`this node \\(${victim}\\) was removed from the cluster at index (\\d+): it stops campaigning`, 'g')) ?? [];
    expect(told, victimLog).toHaveLength(1);
    expect(victimLog).toMatch(new RegExp(`PERMISSION_DENIED: ${victim} was removed from the cluster at index \\d+`));
    const refusedBy = survivors.filter((id) => c.processes.get(id)?.output().includes(`${victim} was removed from the cluster at index`));
    expect(refusedBy.length).toBeGreaterThan(0);
    // (Told once, the victim stops talking, so it may not have reached both.) The restarted member
    // refuses it as removed too, from its history alone: the removal left its log and its snapshot.
    const asVictim = await sendAsPeer(c.spec(restarted).peerPort, String(before[0]?.['cluster_id']), victim, restarted, [
      { type: 'preVote', from: victim, to: restarted, term: victimTermBefore + 1, lastLogIndex: 1_000_000, lastLogTerm: victimTermBefore, leaderTransfer: false },
    ]);
    expect(asVictim?.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(asVictim?.details).toMatch(new RegExp(`^${victim} was removed from the cluster at index \\d+; to bring it back`));
    expect(Number(asVictim?.metadata.get('quorumkv-removed-at')[0])).toBeLessThanOrEqual(removalCommitted);

    // Wiped and added back as a new member, it is taken again: it catches up, becomes a voter and can even lead.
    await c.kill(victim, 'SIGTERM');
    rmSync(c.spec(victim).dataDir, { recursive: true, force: true });
    const spec = c.spec(victim);
    await c.client(leaderNow).call('AddMember', { id: victim, peer_address: `127.0.0.1:${spec.peerPort}`, client_address: `127.0.0.1:${spec.clientPort}` });
    c.launch(spec, ['--join', `127.0.0.1:${c.spec(leaderNow).clientPort}`]);
    await waitFor('the re-added member to catch up', async () => (await members(c, leaderNow)).find((m) => m['id'] === victim)?.['lag_entries'] === 0);
    await c.client(leaderNow).call('PromoteMember', { id: victim });
    await c.client(leaderNow).call('TransferLeadership', { id: victim });
    await waitFor('the re-added member to lead', async () => (await status(c, victim))['role'] === 'LEADER');
    await writer.stop();
    await c.client(victim).call('Set', { key: 'after', value: bytes('re-added') });
    await c.waitForConvergence(['n1', 'n2', 'n3']);
    for (const [key, value] of [...writer.acked].slice(-20)) expect(text((await c.client(victim).call('Get', { key }))['value'])).toBe(value);
  }, 120_000);

  it('refuses votes and pre-votes from an id that is not a member, without a term change; takes its leader traffic', async () => {
    const c = await TestCluster.start({ size: 3 });
    cluster = c;
    const leader = await c.waitForLeader();
    const follower = ['n1', 'n2', 'n3'].find((id) => id !== leader) as string;
    const before = await status(c, follower);
    const clusterId = String(before['cluster_id']);
    const term = Number(before['term']);
    const lastIndex = Number(before['log_last_index']) + 1000;
    for (const type of ['preVote', 'vote'] as const) {
      for (const to of [leader, follower]) {
        const refusal = await sendAsPeer(c.spec(to).peerPort, clusterId, 'n9', to, [
          { type, from: 'n9', to, term: term + 5, lastLogIndex: lastIndex, lastLogTerm: term + 4, leaderTransfer: true },
        ]);
        expect(refusal?.code, `${type} to ${to}`).toBe(grpc.status.PERMISSION_DENIED);
        expect(refusal?.details).toMatch(new RegExp(`^n9 is not a member: only members of the current configuration may send ${type} messages`));
      }
    }
    // Leader traffic from an id never seen is taken (it may be a newer member that now leads); a stale one changes nothing.
    const heartbeat = await sendAsPeer(c.spec(follower).peerPort, clusterId, 'n9', follower, [{ type: 'heartbeat', from: 'n9', to: follower, term: 1, commit: 0, readRound: 0 }]);
    expect(heartbeat).toBeNull();
    await sleep(3 * ELECTION_MS);
    for (const id of ['n1', 'n2', 'n3']) {
      const s = await status(c, id);
      expect(Number(s['term']), `${id}'s term`).toBe(term);
      expect(s['leader_id']).toBe(leader);
    }
  }, 60_000);

  it('a follower that missed an AddMember follows the new member once it leads', async () => {
    const c = await TestCluster.start({ size: 3 });
    cluster = c;
    const leader = await c.waitForLeader();
    const lagging = ['n1', 'n2', 'n3'].find((id) => id !== leader) as string;
    await c.kill(lagging, 'SIGTERM');
    const n4 = await c.newSpec('n4');
    await c.client(leader).call('AddMember', { id: 'n4', peer_address: `127.0.0.1:${n4.peerPort}`, client_address: `127.0.0.1:${n4.clientPort}` });
    // --initial-cluster too, for the addresses only: a joining node starts from a snapshot, so it learns a
    // member's address only from that member's streams, and the lagging node, which has never heard of
    // n4, would not stream to it before n4 reaches it.
    const addresses = [...['n1', 'n2', 'n3'].map((id) => `${id}=127.0.0.1:${c.spec(id).peerPort}`), `n4=127.0.0.1:${n4.peerPort}`].join(',');
    c.launch(n4, ['--join', `127.0.0.1:${c.spec(leader).clientPort}`, '--initial-cluster', addresses]);
    await waitFor('n4 to catch up', async () => (await members(c, leader)).find((m) => m['id'] === 'n4')?.['lag_entries'] === 0);
    await c.client(leader).call('PromoteMember', { id: 'n4' });
    await c.client(leader).call('TransferLeadership', { id: 'n4' });
    await waitFor('n4 to lead', async () => (await status(c, 'n4'))['role'] === 'LEADER');
    for (let i = 0; i < 20; i++) await c.client('n4').call('Set', { key: `k${i}`, value: bytes(String(i)) });

    // Restarted with a log that ends before n4 was added, it has never heard of its leader.
    c.launch(c.spec(lagging));
    const ids = ['n1', 'n2', 'n3', 'n4'];
    await c.waitForConvergence(ids);
    expect((await status(c, lagging))['leader_id']).toBe('n4');
    expect(text((await c.client(lagging).call('Get', { key: 'k19', consistency: 'SERIALIZABLE' }))['value'])).toBe('19');
    expect(c.processes.get(lagging)?.output()).not.toContain('PERMISSION_DENIED');
    expect(c.processes.get('n4')?.output()).not.toContain('PERMISSION_DENIED');
  }, 120_000);
});
