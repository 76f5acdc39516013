/**
 * A restarting node takes part in Raft while its state is restored from its
 * snapshot. The restore is held for as long as each test needs with the
 * TEST ONLY fault file (holdRestore), so nothing here depends on timing.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { GrpcError, TestCluster, bytes, eventually, metric, text, waitFor } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';

let cluster: TestCluster | null = null;

afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

/** No automatic snapshots: each test takes the ones it needs. */
const FLAGS = ['--snapshot-entries', '1000000', '--snapshot-bytes', '1024gb'];

/** The fault file of `id` (in its data dir's parent, which the cluster removes), written with `holdRestore`. */
function holdRestore(c: TestCluster, id: string, hold: boolean): string {
  const path = join(c.spec(id).dataDir, '..', `${id}.faults.json`);
  // Atomically, as the chaos suite does: the node never reads half a file.
  writeFileSync(`${path}.tmp`, JSON.stringify({ holdRestore: hold }));
  renameSync(`${path}.tmp`, path);
  return path;
}

/** Restarts `id` with its restore held until holdRestore(c, id, false). */
function launchHeld(c: TestCluster, id: string): void {
  const faultsFile = holdRestore(c, id, true);
  c.launch(c.spec(id), ['--initial-cluster', c.initialCluster, '--test-faults-file', faultsFile]);
}

async function status(c: TestCluster, id: string): Promise<Reply> {
  return c.client(id).call('Status', {}, 1000);
}

async function failure(call: Promise<unknown>): Promise<string> {
  try {
    const reply = await call;
    throw new Error(`expected a failure, got ${JSON.stringify(reply)}`);
  } catch (error) {
    if (!(error instanceof GrpcError)) throw error;
    return grpc.status[error.code];
  }
}

/** A leader among `among` (all agreeing); if it is not `wanted`, leadership is handed to `wanted`. */
async function makeLeader(c: TestCluster, wanted: string, among: readonly string[]): Promise<void> {
  const leader = await c.waitForLeader(30_000, among);
  if (leader === wanted) return;
  await c.client(leader).call('TransferLeadership', { id: wanted }, 10_000);
  await waitFor(`${wanted} leads`, async () => (await c.waitForLeader(30_000, among)) === wanted);
}

/** A 3-node cluster with `keys` keys, a snapshot on every node, then every node stopped; resolves with the last log index. */
async function snapshottedAndStopped(keys: number): Promise<{ c: TestCluster; lastIndex: number }> {
  const c = await TestCluster.start({ size: 3, flags: FLAGS });
  cluster = c;
  const leader = await c.waitForLeader();
  for (let i = 0; i < keys; i++) await c.client(leader).call('Set', { key: `k${i}`, value: bytes(`before ${i}`) });
  const ids = c.specs.map((s) => s.id);
  await c.waitForConvergence(ids);
  for (const id of ids) await c.client(id).call('Snapshot', {}, 10_000);
  const lastIndex = Number((await status(c, leader))['log_last_index']);
  for (const id of ids) await c.kill(id, 'SIGTERM');
  return { c, lastIndex };
}

describe('restart while the state is restored', () => {
  it('a restoring node votes and acknowledges: with one other node it elects a leader and commits writes, then applies them all after its restore', async () => {
    const { c } = await snapshottedAndStopped(30);
    launchHeld(c, 'n1');
    c.launch(c.spec('n2'));
    // n3 stays down: every commit below needs n1's acknowledgement, while n1 has no state.
    await makeLeader(c, 'n2', ['n1', 'n2']);
    for (let i = 0; i < 20; i++) await c.client('n2').call('Set', { key: `after${i}`, value: bytes(`after ${i}`) });
    const leaderStatus = await status(c, 'n2');
    const restoring = await status(c, 'n1');
    expect(restoring['applied_index']).toBe(0);
    expect(restoring['state_digest']).toBe('');
    expect(await metric(c, 'n1', 'quorumkv_state_restoring')).toBe(1);
    expect(Number(restoring['log_last_index'])).toBeGreaterThanOrEqual(Number(leaderStatus['commit_index']));
    // Its serializable reads wait for the state rather than answer from an empty one.
    expect(await failure(c.client('n1').call('Get', { key: 'k1', consistency: 'SERIALIZABLE' }, 500))).toBe('DEADLINE_EXCEEDED');
    expect((await status(c, 'n1'))['applied_index']).toBe(0);

    holdRestore(c, 'n1', false);
    const [restored, leader] = await c.waitForConvergence(['n1', 'n2']);
    expect(restored?.['state_digest']).toBe(leader?.['state_digest']);
    expect(Number(restored?.['applied_index'])).toBeGreaterThanOrEqual(Number(leaderStatus['commit_index']));
    expect(Number(restored?.['keys'])).toBe(50);
    expect(await metric(c, 'n1', 'quorumkv_state_restoring')).toBe(0);
    expect(text((await c.client('n1').call('Get', { key: 'after19', consistency: 'SERIALIZABLE' }))['value'])).toBe('after 19');
    expect(text((await c.client('n1').call('Get', { key: 'k29', consistency: 'SERIALIZABLE' }))['value'])).toBe('before 29');
  }, 120_000);

  it('a leader still restoring answers no Get and no write until its state is restored, then answers from it', async () => {
    const { c } = await snapshottedAndStopped(30);
    launchHeld(c, 'n1');
    c.launch(c.spec('n2'));
    await makeLeader(c, 'n1', ['n1', 'n2']);
    expect((await status(c, 'n1'))['applied_index']).toBe(0);
    expect(await failure(c.client('n1').call('Get', { key: 'k7', consistency: 'LINEARIZABLE' }, 1000))).toBe('DEADLINE_EXCEEDED');
    expect(await failure(c.client('n1').call('Set', { key: 'k7', value: bytes('too early') }, 1000))).toBe('DEADLINE_EXCEEDED');
    // Through the follower too: it forwards to the restoring leader.
    expect(await failure(c.client('n2').call('Get', { key: 'k7', consistency: 'LINEARIZABLE' }, 1000))).toBe('DEADLINE_EXCEEDED');

    const pendingGet = c.client('n1').call('Get', { key: 'k7', consistency: 'LINEARIZABLE' }, 20_000);
    const pendingSet = c.client('n2').call('Set', { key: 'k8', value: bytes('after') }, 20_000);
    holdRestore(c, 'n1', false);
    expect(text((await pendingGet)['value'])).toBe('before 7');
    await pendingSet;
    expect(text((await c.client('n1').call('Get', { key: 'k8', consistency: 'LINEARIZABLE' }))['value'])).toBe('after');
    expect(Number((await status(c, 'n1'))['keys'])).toBe(30);
    await c.waitForConvergence(['n1', 'n2']);
  }, 120_000);

  it('a snapshot the leader sends while the node restores is refused, and installed once the restore is done', async () => {
    const { c: cl, lastIndex } = await snapshottedAndStopped(10);
    // n2 and n3 go on without n1, snapshot and compact their logs past n1's last entry.
    cl.launch(cl.spec('n2'), ['--initial-cluster', cl.initialCluster, '--snapshot-keep-entries', '0']);
    cl.launch(cl.spec('n3'), ['--initial-cluster', cl.initialCluster, '--snapshot-keep-entries', '0']);
    const leader = await cl.waitForLeader(30_000, ['n2', 'n3']);
    for (let i = 0; i < 20; i++) await cl.client(leader).call('Set', { key: `later${i}`, value: bytes(`later ${i}`) });
    for (const id of ['n2', 'n3']) await cl.client(id).call('Snapshot', {}, 10_000);
    await waitFor('the leader compacted its log', async () => Number((await status(cl, leader))['log_first_index']) > lastIndex + 1);

    launchHeld(cl, 'n1');
    // n1's log ends before the leader's first entry: only a snapshot catches it up, and n1 refuses it while restoring.
    await eventually('the leader tried to send n1 a snapshot', 30_000, async () => (cl.processes.get(leader)?.output().includes('still restoring') ? true : undefined));
    expect((await status(cl, 'n1'))['applied_index']).toBe(0);
    expect(await metric(cl, 'n1', 'quorumkv_snapshots_installed_total')).toBe(0);

    holdRestore(cl, 'n1', false);
    const [restored, other] = await cl.waitForConvergence(['n1', 'n2', 'n3'], 30_000);
    expect(restored?.['state_digest']).toBe(other?.['state_digest']);
    expect(await metric(cl, 'n1', 'quorumkv_snapshots_installed_total')).toBe(1);
    expect(text((await cl.client('n1').call('Get', { key: 'later19', consistency: 'SERIALIZABLE' }))['value'])).toBe('later 19');
  }, 120_000);
});
