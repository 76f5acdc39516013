/**
 * SnapshotFileUpdater (src/storage/snapshot-update.ts) driven directly, as
 * the writer thread drives it: what it leaves for the final fsync.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WRITE_BACK_STEP_BYTES } from '../../../src/storage/durable-fs.ts';
import { KEY_TYPE_CODES, NO_EXPIRY, PackedKeyRowsBuilder } from '../../../src/storage/packed-key-rows.ts';
import type { PackedKeyRows } from '../../../src/storage/packed-key-rows.ts';
import { SnapshotFileReader, SnapshotFileWriter } from '../../../src/storage/snapshot-file.ts';
import { SnapshotFileUpdater } from '../../../src/storage/snapshot-update.ts';
import { CLUSTER, NODE, useScratch } from './helpers.ts';

const scratch = useScratch();
const identity = { clusterId: CLUSTER, nodeId: NODE };
const confState = { voters: [NODE], learners: [] };
const PAGE_BYTES = 16384;

function batch(keys: readonly string[], valueOf: (key: string) => Uint8Array | null): PackedKeyRows {
  const builder = new PackedKeyRowsBuilder();
  for (const key of keys) {
    const value = valueOf(key);
    if (value !== null) builder.add(key, KEY_TYPE_CODES.string, value, NO_EXPIRY);
  }
  return builder.take();
}

describe('an incremental snapshot update', () => {
  it('syncs the pages it rewrites in steps as it goes, not all at the final fsync', () => {
    const dir = scratch.dir();
    const keys = Array.from({ length: 1000 }, (_, i) => `key:${i}`);
    const basePath = join(dir, 'base.sqlite');
    const base = SnapshotFileWriter.create(basePath, { index: 10, term: 1, logTimeMs: 0, confState }, identity);
    base.addKeys(batch(keys, () => Buffer.alloc(100, 1)));
    base.finish([], { stateDigest: 'digest at 10', keyCount: keys.length });

    // 400 keys changed: 300 rewritten, 100 deleted. Each deleted and each added row may dirty a page.
    const changed = keys.slice(0, 400);
    const path = join(dir, 'next.sqlite');
    const updater = SnapshotFileUpdater.open({
      path,
      basePath,
      header: { index: 20, term: 1, logTimeMs: 0, confState },
      identity,
      baseIndex: 10,
      baseDigest: 'digest at 10',
      changedKeys: changed.length,
      limits: { maxChangedFraction: 1, maxReplacedFraction: 1 },
    });
    updater.findChanged(batch(changed, () => new Uint8Array(0)));
    updater.deleteChanged();
    const rewritten = changed.slice(0, 300);
    updater.addKeys(batch(rewritten, () => Buffer.alloc(100, 2)));
    updater.finish([], { stateDigest: 'digest at 20', keyCount: 900 });
    expect(updater.writeBackSteps).toBeGreaterThanOrEqual(Math.floor(((400 + 300) * PAGE_BYTES) / WRITE_BACK_STEP_BYTES));

    const reader = scratch.track(SnapshotFileReader.open(path, { clusterId: CLUSTER, index: 20 }));
    const rows = new Map([...reader.keys()].map((row) => [row.key, row.value[0]]));
    expect(rows.size).toBe(900);
    expect(rows.get('key:0')).toBe(2);
    expect(rows.has('key:399')).toBe(false);
    expect(rows.get('key:400')).toBe(1);
  });
});
