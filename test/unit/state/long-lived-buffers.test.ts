/**
 * Long-lived buffers (value slabs, pooled log entries) are SharedArrayBuffers
 * up to an allowance per major GC, so V8 does not start a major GC for them;
 * past the allowance, plain ArrayBuffers, so their garbage stays bounded.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LongLivedBuffers, MIN_ALLOWANCE_BYTES, longLivedBuffers } from '../../../src/state/long-lived-buffers.ts';
import { encodeEntry, longLivedCopy } from '../../../src/state/index.ts';
import { KEY_TYPE_CODES, NO_EXPIRY, PackedKeyRowsBuilder, forEachPackedKeyRow } from '../../../src/storage/packed-key-rows.ts';

const MB = 1 << 20;
const isShared = (bytes: Uint8Array): boolean => bytes.buffer instanceof SharedArrayBuffer;

describe('LongLivedBuffers', () => {
  it('hands out shared buffers up to the allowance, then plain ones until a major GC starts a new one', () => {
    const buffers = new LongLivedBuffers(4 * MB);
    const first = Array.from({ length: 16 }, () => buffers.allocate(256 << 10));
    expect(first.every(isShared)).toBe(true);
    expect(first.every((b) => b.length === 256 << 10 && b.every((x) => x === 0))).toBe(true);
    expect(isShared(buffers.allocate(256 << 10))).toBe(false);
    expect(buffers.stats()).toEqual({ sharedBytesSinceMajorGc: 4 * MB, allowanceBytes: 4 * MB });

    // The allowance follows the heap the major GC left: half of it, at least the minimum.
    buffers.majorGcDone(20 * MB);
    expect(buffers.stats()).toEqual({ sharedBytesSinceMajorGc: 0, allowanceBytes: 10 * MB });
    expect(Array.from({ length: 40 }, () => buffers.allocate(256 << 10)).every(isShared)).toBe(true);
    expect(isShared(buffers.allocate(1))).toBe(false);
    buffers.majorGcDone(MB);
    expect(buffers.stats().allowanceBytes).toBe(4 * MB);
  });

  it('pooled log entries are views of shared buffers', () => {
    // A fresh module instance per test file: nothing has used this process's allowance yet.
    expect(longLivedBuffers().stats().allowanceBytes).toBeGreaterThanOrEqual(MIN_ALLOWANCE_BYTES);
    const entry = encodeEntry({ timeMs: 1, session: null, command: { op: 'set', key: 'k', value: new Uint8Array(100) } });
    expect(isShared(entry)).toBe(true);
  });

  it('long-lived copies: small ones share a pooled shared buffer, large ones have their own', () => {
    const small = [longLivedCopy(new Uint8Array([1, 2, 3])), longLivedCopy(new Uint8Array([4, 5]))];
    const large = longLivedCopy(new Uint8Array(100_000).fill(9));
    expect(small.map((b) => Array.from(b))).toEqual([[1, 2, 3], [4, 5]]);
    expect(small[0]?.buffer).toBe(small[1]?.buffer);
    expect(small.every(isShared) && isShared(large)).toBe(true);
    expect(large.buffer.byteLength).toBe(100_000);
    expect(large.every((x) => x === 9)).toBe(true);
  });

  it('snapshot batches for the writer thread share their keys and values (posted without a transfer)', () => {
    const builder = new PackedKeyRowsBuilder();
    for (let i = 0; i < 5000; i++) {
      if (builder.full) builder.take();
      builder.add(`key:${i}`, KEY_TYPE_CODES.string, new Uint8Array(300).fill(i & 0xff), NO_EXPIRY);
    }
    const batch = builder.take();
    expect(isShared(batch.keys) && isShared(batch.values)).toBe(true);
    const rows: string[] = [];
    forEachPackedKeyRow(batch, (key, _bytes, _type, value) => rows.push(`${key}=${value[0]}`));
    expect(rows.at(-1)).toBe(`key:4999=${4999 & 0xff}`);
  });

  it('spares a process the major GCs that plain ArrayBuffers of the same bytes start', () => {
    // A child with a fresh, small heap: 160 MB of 256 KiB buffers, each kept for 400 allocations
    // (long enough to be promoted, as slabs and pooled entries are); it prints the major GCs seen.
    const majorGcs = (mode: 'shared' | 'plain'): number => {
      const run = spawnSync(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'long-lived-buffers-child.ts'), mode], { encoding: 'utf8', timeout: 60_000 });
      expect(run.status, run.stderr).toBe(0);
      return Number(run.stdout.trim());
    };
    expect(majorGcs('plain')).toBeGreaterThan(0);
    expect(majorGcs('shared')).toBe(0);
  });
});
