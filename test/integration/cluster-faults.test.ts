/**
 * Real processes under real failures: SIGKILL of the leader under load,
 * restarts that catch up from the log or by InstallSnapshot, clean shutdown,
 * a locked or damaged data dir.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { GrpcError, TestCluster, bytes, metric, sleep, text } from '../support/cluster-harness.ts';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** Writers that set distinct keys in a loop; remembers every acknowledged write. */
function startWriters(c: TestCluster, count: number): { acked: Map<string, string>; stop: () => Promise<void> } {
  const acked = new Map<string, string>();
  let running = true;
  const loops = Array.from({ length: count }, async (_, w) => {
    for (let i = 0; running; i++) {
      const ids = c.runningIds();
      const id = ids[(w + i) % ids.length];
      if (id === undefined) {
        await sleep(20);
        continue;
      }
      const key = `w${w}-${i}`;
      try {
        await c.client(id).call('Set', { key, value: bytes(`v${i}`) }, 2000);
        acked.set(key, `v${i}`);
      } catch {
        // Not acknowledged: it may or may not be there, and either is fine.
        await sleep(20);
      }
    }
  });
  return {
    acked,
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
}

describe('failures', () => {
  it('kill -9 of the leader mid-load loses no acknowledged write', async () => {
    cluster = await TestCluster.start({ size: 3 });
    const leader = await cluster.waitForLeader();
    const writers = startWriters(cluster, 6);
    await sleep(1000);
    await cluster.kill(leader);
    await sleep(2500);
    await writers.stop();
    const newLeader = await cluster.waitForLeader();
    expect(newLeader).not.toBe(leader);
    cluster.launch(cluster.spec(leader));
    await cluster.waitForConvergence(cluster.specs.map((s) => s.id));
    expect(writers.acked.size).toBeGreaterThan(50);
    const reader = cluster.client(leader);
    for (const [key, value] of writers.acked) {
      const got = await reader.call('Get', { key });
      expect(text(got['value']), `acknowledged write ${key}`).toBe(value);
    }
  }, 90_000);

  it('a restarted node catches up from its log; one that fell past the snapshot gets InstallSnapshot', async () => {
    cluster = await TestCluster.start({ size: 3, flags: ['--snapshot-entries', '50', '--snapshot-keep-entries', '10'] });
    const leader = await cluster.waitForLeader();
    const [behind, short] = cluster.specs.map((s) => s.id).filter((id) => id !== leader) as [string, string];
    // `short` misses a few entries (within the log); `behind` misses many (past the snapshot).
    await cluster.kill(behind);
    for (let i = 0; i < 200; i++) await cluster.client(leader).call('Set', { key: `k${i}`, value: bytes(String(i)) });
    await cluster.kill(short);
    for (let i = 200; i < 205; i++) await cluster.client(leader).call('Set', { key: `k${i}`, value: bytes(String(i)) }).catch(() => undefined);
    cluster.launch(cluster.spec(short));
    await cluster.waitForLeader();
    cluster.launch(cluster.spec(behind));
    await cluster.waitForConvergence(cluster.specs.map((s) => s.id));
    expect(await metric(cluster, behind, 'quorumkv_snapshots_installed_total')).toBeGreaterThanOrEqual(1);
    expect(await metric(cluster, short, 'quorumkv_snapshots_installed_total')).toBe(0);
    const got = await cluster.client(behind).call('Get', { key: 'k150', consistency: 'SERIALIZABLE' });
    expect(text(got['value'])).toBe('150');
  }, 90_000);

  it('snapshots after the first rewrite only the changed keys, and a node restarts from such a file', async () => {
    cluster = await TestCluster.start({ size: 3, flags: ['--snapshot-entries', '100', '--snapshot-keep-entries', '10'] });
    const leader = await cluster.waitForLeader();
    const c = cluster;
    const setAll = async (keys: number[], value: string): Promise<void> => {
      for (let i = 0; i < keys.length; i += 25) {
        await Promise.all(keys.slice(i, i + 25).map((k) => c.client(leader).call('Set', { key: `k${k}`, value: bytes(`${value} ${k}`) })));
      }
    };
    // New keys: the first snapshots are written whole (most of their keys are new since the previous one).
    await setAll(Array.from({ length: 600 }, (_, k) => k), 'first');
    const ids = cluster.specs.map((s) => s.id);
    const incremental = (): Promise<number[]> => Promise.all(ids.map((id) => metric(c, id, 'quorumkv_snapshots_incremental_total')));
    const before = await incremental();
    const taken = await Promise.all(ids.map((id) => metric(c, id, 'quorumkv_snapshots_taken_total')));
    expect(taken.every((n, i) => n > (before[i] as number)), `taken ${taken.join(', ')}, incremental ${before.join(', ')}`).toBe(true);
    // Then rounds over 50 of the 600 keys: a snapshot's changes are under a fifth of its keys.
    for (let round = 0; ; round++) {
      await setAll(Array.from({ length: 50 }, (_, k) => k * 7), `round ${round}`);
      const counts = await incremental();
      if (counts.every((n, i) => n >= (before[i] as number) + 2)) break;
      expect(round, `incremental snapshots per node: ${counts.join(', ')}`).toBeLessThan(20);
    }
    const follower = ids.find((id) => id !== leader) as string;
    await cluster.kill(follower);
    cluster.launch(cluster.spec(follower));
    await cluster.waitForConvergence(ids);
    const got = await cluster.client(follower).call('Get', { key: 'k7', consistency: 'SERIALIZABLE' });
    expect(text(got['value'])).toMatch(/^round \d+ 7$/);
    expect(text((await cluster.client(follower).call('Get', { key: 'k599', consistency: 'SERIALIZABLE' }))['value'])).toBe('first 599');
  }, 90_000);

  it('a node snapshots once --snapshot-bytes of entries were applied, before --snapshot-entries', async () => {
    cluster = await TestCluster.start({ size: 1, flags: ['--snapshot-entries', '1000000', '--snapshot-bytes', '8kb'] });
    const leader = await cluster.waitForLeader();
    expect(await metric(cluster, leader, 'quorumkv_snapshots_taken_total')).toBe(0);
    for (let i = 0; i < 12; i++) await cluster.client(leader).call('Set', { key: `k${i}`, value: bytes('v'.repeat(1024)) });
    // The snapshot is written in the background: wait for it.
    for (let tries = 0; (await metric(cluster, leader, 'quorumkv_snapshots_taken_total')) < 1; tries++) {
      expect(tries, 'no snapshot after 12 KiB of applied entries').toBeLessThan(100);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }, 60_000);

  it('SIGTERM stops a node cleanly (exit 0), and it restarts with its data', async () => {
    cluster = await TestCluster.start({ size: 3 });
    const leader = await cluster.waitForLeader();
    await cluster.client(leader).call('Set', { key: 'kept', value: bytes('yes') });
    const victim = cluster.specs.map((s) => s.id).find((id) => id !== leader) as string;
    await cluster.waitForConvergence();
    expect(await cluster.kill(victim, 'SIGTERM')).toEqual({ code: 0, signal: null });
    cluster.launch(cluster.spec(victim));
    await cluster.waitForLeader();
    const got = await cluster.client(victim).call('Get', { key: 'kept', consistency: 'SERIALIZABLE' });
    expect(text(got['value'])).toBe('yes');
  }, 60_000);

  it('a leadership transfer to a member that is down fails once it is aborted, not at the call deadline', async () => {
    cluster = await TestCluster.start({ size: 3 });
    const leader = await cluster.waitForLeader();
    const victim = cluster.specs.map((s) => s.id).find((id) => id !== leader) as string;
    await cluster.kill(victim);
    const failed = await cluster
      .client(leader)
      .call('TransferLeadership', { id: victim }, 30_000)
      .then(() => null, (error: unknown) => error);
    expect(failed).toBeInstanceOf(GrpcError);
    expect(statusName((failed as GrpcError).code)).toBe('UNAVAILABLE');
    // Aborted after an election timeout (1-2 s): a DEADLINE_EXCEEDED after the 30 s would not be this message.
    expect((failed as GrpcError).details).toContain(`the leadership transfer to ${victim} did not complete within an election timeout`);
    expect((await cluster.client(leader).call('Status'))['role']).toBe('LEADER');
  }, 60_000);

  it('a second node on the same data dir is refused with one clear line', async () => {
    cluster = await TestCluster.start({ size: 1 });
    const spec = cluster.spec('n1');
    const second = cluster.launch({ ...spec, id: 'n1', clientPort: spec.clientPort + 0, dataDir: spec.dataDir });
    const exit = await second.exited;
    expect(exit.code).not.toBe(0);
    expect(second.output()).toMatch(/^quorumkv: cannot start node n1: .*(lock|in use)/im);
  }, 60_000);

  it('a damaged data dir makes the node refuse to start, naming the file', async () => {
    cluster = await TestCluster.start({ size: 1 });
    const leader = await cluster.waitForLeader();
    for (let i = 0; i < 20; i++) await cluster.client(leader).call('Set', { key: `k${i}`, value: bytes('v') });
    await cluster.kill('n1', 'SIGTERM');
    const dataDir = cluster.spec('n1').dataDir;
    // One log entry's bytes changed behind the node's back (as a bad disk would): its checksum no longer matches.
    const db = new Database(join(dataDir, 'node.db'));
    db.prepare("UPDATE log SET data = x'00ff' WHERE idx = (SELECT max(idx) FROM log)").run();
    db.close();
    const restarted = cluster.launch(cluster.spec('n1'));
    const exit = await restarted.exited;
    expect(exit.code).not.toBe(0);
    expect(restarted.output()).toMatch(/quorumkv: cannot start node n1: .*node\.db.*checksum/i);
    expect(readdirSync(dataDir)).toContain('node.db');
  }, 60_000);

  it('a damaged snapshot file makes the node stop, naming the file and the table', async () => {
    cluster = await TestCluster.start({ size: 1, flags: ['--snapshot-entries', '10'] });
    const leader = await cluster.waitForLeader();
    for (let i = 0; i < 30; i++) await cluster.client(leader).call('Set', { key: `k${i}`, value: bytes(`value ${i}`) });
    for (let tries = 0; (await metric(cluster, leader, 'quorumkv_snapshots_taken_total')) < 1; tries++) {
      expect(tries, 'no snapshot after 30 entries').toBeLessThan(100);
      await sleep(100);
    }
    await cluster.kill('n1', 'SIGTERM');
    const snapshotDir = join(cluster.spec('n1').dataDir, 'snapshots');
    // A key's value changed in place (same length, so the file size still matches its record): only the row checksums can tell.
    let damaged = 0;
    for (const name of readdirSync(snapshotDir)) {
      const db = new Database(join(snapshotDir, name));
      damaged += db.prepare("UPDATE keys SET value = CAST(upper(CAST(value AS TEXT)) AS BLOB) WHERE key = 'k7'").run().changes;
      db.close();
    }
    expect(damaged).toBeGreaterThan(0);
    const restarted = cluster.launch(cluster.spec('n1'));
    const exit = await restarted.exited;
    expect(exit.code).not.toBe(0);
    // The restore runs after the node is up (it takes part in Raft meanwhile): its failure stops the node.
    expect(restarted.output()).toMatch(/quorumkv: node n1 failed: restoring the state from snapshot .*snapshot-\d+-\d+-[0-9a-f]+\.sqlite: table keys fails its checksum/i);
  }, 60_000);

  it('a node asked for a write with no quorum answers UNAVAILABLE or DEADLINE_EXCEEDED, never a false success', async () => {
    cluster = await TestCluster.start({ size: 3 });
    const leader = await cluster.waitForLeader();
    const others = cluster.specs.map((s) => s.id).filter((id) => id !== leader);
    for (const id of others) await cluster.kill(id);
    try {
      await cluster.client(leader).call('Set', { key: 'lonely', value: bytes('x') }, 3000);
      throw new Error('a write without a quorum was acknowledged');
    } catch (error) {
      expect(error).toBeInstanceOf(GrpcError);
      expect(['UNAVAILABLE', 'DEADLINE_EXCEEDED']).toContain(statusName((error as GrpcError).code));
    }
  }, 60_000);
});

function statusName(code: number): string {
  return ({ 4: 'DEADLINE_EXCEEDED', 14: 'UNAVAILABLE' } as Record<number, string>)[code] ?? String(code);
}
