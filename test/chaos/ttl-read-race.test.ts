/**
 * Regression for a bug the chaos suite found (seed 22: `npm run chaos --
 * --duration 120 --seed 22 --nodes 5 --ttl-eviction`): a linearizable read
 * judged a TTL key expired by the leader's wall clock, while a
 * compare-and-set stamped a moment earlier was still on its way to commit;
 * that entry then applied at its own, earlier time, found the key alive and
 * replaced it. Clients saw the key gone, then a write that needed it present.
 *
 * The race, made likely: links slowed by the proxy so that commits and
 * ReadIndex rounds take a few hundred ms; a Get sent shortly before the key
 * expires (its ReadIndex round ends after the expiry), then a compare-and-set
 * sent just before the expiry (stamped before it, applied after the Get).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../support/cluster-harness.ts';
import { checkOperations } from '../support/linearizability.ts';
import type { Operation } from '../support/linearizability.ts';
import type { KvRegisterInput, KvRegisterOutput } from '../support/models.ts';
import { ChaosCluster } from './cluster.ts';
import { volatileRegisterModel } from './models.ts';
import { FaultProxy } from './proxy.ts';

const TTL_MS = 700;
const ATTEMPTS = 12;

let root = '';
let proxy: FaultProxy | null = null;
let cluster: ChaosCluster | null = null;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'quorumkv-ttl-race-'));
  proxy = new FaultProxy(() => 0.5);
  const origin = performance.now();
  cluster = await ChaosCluster.start({ size: 3, root: join(root, 'data'), logDir: join(root, 'logs'), proxy, flags: ['--log-level', 'warn'], origin: () => performance.now() - origin });
  await cluster.waitForLeader(60_000);
  for (const link of proxy.allLinks()) proxy.set(link.from, link.to, { delayMs: 80 });
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
  await proxy?.close();
  rmSync(root, { recursive: true, force: true });
});

const until = async (t: number) => {
  const wait = t - performance.now();
  if (wait > 0) await sleep(wait);
};

describe('TTL expiry seen by a linearizable read', () => {
  it('never shows a key gone that a write stamped before its expiry then finds alive', async () => {
    const c = cluster as ChaosCluster;
    const ops: Operation<KvRegisterInput, KvRegisterOutput>[] = [];
    const anomalies: string[] = [];
    for (let i = 0; i < ATTEMPTS; i++) {
      const leader = await c.waitForLeader(20_000);
      const client = c.client(leader);
      const key = `race/${i}`;
      const sent = performance.now();
      await client.call('Set', { key, value: Buffer.from('old'), ttl_ms: TTL_MS }, 10_000);
      ops.push({ clientId: 0, input: { kind: 'put', key, value: 'old' }, output: { status: 'ok' }, call: sent, return: performance.now() });
      // The leader stamped the Set on arrival: the key expires about TTL_MS after it was sent.
      const expiry = sent + TTL_MS;
      await until(expiry - 60 - (i % 6) * 25);
      const getCall = performance.now();
      const get = client.call('Get', { key }, 10_000).then((reply) => ({ reply, at: performance.now() }));
      await until(expiry - 15);
      const casCall = performance.now();
      const cas = client
        .call('Txn', { compares: [{ key, op: 'EQUAL', value: Buffer.from('old') }], success: [{ set: { key, value: Buffer.from('new') } }], failure: [] }, 10_000)
        .then((reply) => ({ reply, at: performance.now() }));
      const [got, swapped] = await Promise.all([get, cas]);
      const value = got.reply['found'] === true ? Buffer.from(got.reply['value'] as Uint8Array).toString() : null;
      const applied = swapped.reply['succeeded'] === true;
      ops.push({ clientId: 1, input: { kind: 'get', key }, output: { status: 'ok', value }, call: getCall, return: got.at });
      ops.push({ clientId: 2, input: { kind: 'cas', key, expected: 'old', value: 'new' }, output: { status: 'ok', applied }, call: casCall, return: swapped.at });
      if (value === null && applied && got.at < swapped.at) anomalies.push(`${key}: Get answered absent, then the compare-and-set found the value`);
    }
    expect(anomalies).toEqual([]);
    const verdict = checkOperations(volatileRegisterModel, ops);
    expect(verdict.verdict === 'illegal' ? verdict.explanation : verdict.verdict).toBe('ok');
  }, 180_000);
});
