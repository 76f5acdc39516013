/**
 * RaftNode's Ready loop with real SQLite storage, driven by hand as a
 * follower: committed entries are applied while the same Ready's new entries
 * are still being synced, and the acknowledgement of those entries still
 * waits for the sync.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { bootstrapState } from '../../../src/raft/index.ts';
import type { Entry, Message } from '../../../src/raft/index.ts';
import { Metrics } from '../../../src/server/metrics.ts';
import { RaftNode } from '../../../src/server/raft-node.ts';
import { encodeEntry } from '../../../src/state/index.ts';
import { NodeStorage } from '../../../src/storage/index.ts';
import type { PersistBatch } from '../../../src/storage/index.ts';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

const setEntry = (index: number, key: string): Entry => ({
  index,
  term: 2,
  type: 'normal',
  data: encodeEntry({ timeMs: 1_700_000_000_000, session: null, command: { op: 'set', key, value: new TextEncoder().encode('v') } }),
});

function append(prevIndex: number, entries: Entry[], commit: number): Message {
  return { type: 'append', from: 'n1', to: 'n2', term: 2, prevIndex, prevTerm: prevIndex <= 1 ? 1 : 2, entries, commit };
}

async function follower(): Promise<{ node: RaftNode; sent: Message[]; holdNextSync: () => () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'qkv-raftnode-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const storage = NodeStorage.open(dir, { clusterId: 'c1', nodeId: 'n2', create: true });
  const snapshot = bootstrapState(['n1', 'n2', 'n3']).snapshot!;
  await storage.bootstrap({ ...snapshot, logTimeMs: 0 });
  // Held syncs: the test decides when a Ready's fsync "returns".
  let held: Promise<void> | null = null;
  const persistAsync = storage.persistAsync.bind(storage);
  storage.persistAsync = async (batch: PersistBatch) => {
    const gate = held;
    await persistAsync(batch);
    if (gate !== null) await gate;
  };
  const node = RaftNode.open({
    id: 'n2',
    storage,
    stateConfig: {},
    logger: pino({ level: 'silent' }),
    tickMs: 60_000,
    electionTicks: 10,
    maxInflightAppends: 16,
    snapshotEntries: 1_000_000,
    snapshotBytes: 1 << 30,
    snapshotKeepEntries: 1000,
    now: () => Date.now(),
    // Gauges are read only when /metrics is rendered, which this test never does.
    metrics: new Metrics(() => {
      throw new Error('no gauges here');
    }),
  });
  await node.restored;
  const sent: Message[] = [];
  node.setSender({ send: (messages) => sent.push(...messages), flush() {} });
  cleanups.push(() => {
    node.stop();
    storage.close();
  });
  const holdNextSync = (): (() => void) => {
    let release = (): void => {};
    held = new Promise<void>((resolve) => {
      release = () => {
        held = null;
        resolve();
      };
    });
    return release;
  };
  return { node, sent, holdNextSync };
}

const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));
const acked = (sent: Message[]): number[] => sent.flatMap((m) => (m.type === 'appendResp' && !m.reject ? [m.index] : []));

describe('RaftNode applying committed entries', () => {
  it('applies entries the leader committed while this Ready\'s new entries are still being synced', async () => {
    const { node, sent, holdNextSync } = await follower();
    node.step([append(1, [setEntry(2, 'a'), setEntry(3, 'b')], 1)]);
    await settle();
    expect(acked(sent)).toContain(3);
    expect(node.state.lastAppliedIndex).toBe(1);

    // Entry 4 arrives with the news that 2 and 3 are committed; its own sync is held.
    const release = holdNextSync();
    node.step([append(3, [setEntry(4, 'c')], 3)]);
    await settle();
    expect(node.state.lastAppliedIndex).toBe(3);
    expect(node.state.read({ op: 'get', key: 'b' }, Date.now())).toMatchObject({ kind: 'value', found: true });
    // Entry 4 is not acknowledged before it is durable here.
    expect(acked(sent)).not.toContain(4);

    release();
    await settle();
    expect(acked(sent)).toContain(4);
  });
});
