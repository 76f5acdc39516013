/**
 * Both ways of restoring the state from a real snapshot file (on a worker
 * thread at start-up, in place for an installed snapshot) give back exactly
 * the state that was written: same digest, same keys, values, expiries,
 * sessions; and refuse a damaged file.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { restoreHere, restoreInWorker } from '../../../src/server/state-restore.ts';
import type { Result, StateMachine } from '../../../src/state/index.ts';
import { CorruptDataError, NodeStorage } from '../../../src/storage/index.ts';
import type { StoredSnapshot } from '../../../src/storage/index.ts';
import { b, Harness } from '../state/helpers.ts';

const CONF = { voters: ['n1'], learners: [] };
const opened: NodeStorage[] = [];
const dirs: string[] = [];

afterEach(() => {
  for (const storage of opened.splice(0)) storage.close();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** A state with every kind of key (and more keys than one batch), and a snapshot of it in a fresh data dir. */
async function snapshotOf(): Promise<{ h: Harness; sessionResult: Result; storage: NodeStorage; file: StoredSnapshot }> {
  const h = new Harness();
  for (let i = 0; i < 5000; i++) h.ok({ op: 'set', key: `k${i}`, value: b(`value ${i} `.repeat(i % 40)) }, 'set');
  h.ok({ op: 'set', key: 'ключ 🔑', value: b('not ASCII') }, 'set');
  h.ok({ op: 'set', key: '', value: new Uint8Array(0) }, 'set');
  h.ok({ op: 'rpush', key: 'list', values: [b('1'), b('2'), new Uint8Array(300).fill(3)] }, 'count');
  h.ok({ op: 'hset', key: 'hash', fields: [['f', b('1')], ['g', new Uint8Array(200).fill(4)]] }, 'count');
  h.ok({ op: 'set', key: 'ttl', value: b('t'), ttlMs: 5000 }, 'set');
  const sessionResult = h.apply({ op: 'set', key: 'session-write', value: b('s') }, { clientId: 'client-1', sequence: 4 });
  const dir = fs.mkdtempSync(join(tmpdir(), 'qkv-restore-'));
  dirs.push(dir);
  const storage = NodeStorage.open(dir, { clusterId: 'test-cluster', nodeId: 'n1', create: true });
  opened.push(storage);
  const entries = Array.from({ length: h.index }, (_, i) => ({ index: i + 1, term: 1, type: 'noop' as const, data: new Uint8Array(0) }));
  storage.persist({ hardState: { term: 1, vote: 'n1', commit: h.index }, entries });
  const view = h.sm.exportRows();
  const file = await storage.writeSnapshot(
    { index: view.lastAppliedIndex, term: 1, logTimeMs: view.logTimeMs, confState: CONF },
    { keys: view.keyRows, sessions: view.sessionRows, stateDigest: view.digest },
  );
  return { h, sessionResult, storage, file };
}

function expectSameState(restored: StateMachine, h: Harness, sessionResult: Result): void {
  expect(restored.digest()).toBe(h.sm.digest());
  expect([restored.lastAppliedIndex, restored.logTimeMs, restored.stats().storedKeys, restored.sessionCount()]).toEqual([
    h.sm.lastAppliedIndex,
    h.sm.logTimeMs,
    h.sm.stats().storedKeys,
    1,
  ]);
  const again = new Harness({}, restored);
  for (const key of ['k0', 'k39', 'k4999', 'ключ 🔑', '', 'ttl']) expect(again.get(key), key).toBe(h.get(key));
  expect(again.list('list')).toEqual(h.list('list'));
  expect(again.hash('hash')).toEqual(h.hash('hash'));
  // The session answers a retried write with its first result.
  expect(again.apply({ op: 'set', key: 'session-write', value: b('other') }, { clientId: 'client-1', sequence: 4 })).toEqual(sessionResult);
  expect(again.get('session-write')).toBe('s');
}

describe('restoring the state from a snapshot file', () => {
  it('on a worker thread and in place: the same state as was written', async () => {
    const { h, sessionResult, storage, file } = await snapshotOf();
    expectSameState(await restoreInWorker(storage, file, {}), h, sessionResult);
    expectSameState(restoreHere(storage, file, {}), h, sessionResult);
  });

  it('a damaged row: both refuse with the same CorruptDataError', async () => {
    const { storage, file } = await snapshotOf();
    const db = new Database(file.path);
    db.prepare("UPDATE keys SET value = CAST(upper(CAST(value AS TEXT)) AS BLOB) WHERE key = 'k7'").run();
    db.close();
    const inWorker = await restoreInWorker(storage, file, {}).catch((error: unknown) => error);
    expect(inWorker).toBeInstanceOf(CorruptDataError);
    expect((inWorker as Error).message).toMatch(/table keys fails its checksum/);
    expect(() => restoreHere(storage, file, {})).toThrow((inWorker as Error).message);
  });
});
