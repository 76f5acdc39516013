/**
 * String values live in slabs (value-slabs.ts): written ones are copied into
 * the current slab, restored ones stay views of their batch's buffer; a full
 * slab whose values are half gone is let go, its survivors copied.
 */
import { describe, expect, it } from 'vitest';
import { StateMachine } from '../../../src/state/index.ts';
import type { KeyRow } from '../../../src/state/index.ts';
import { KEY_TYPE_CODES, NO_EXPIRY, PackedKeyRowsBuilder } from '../../../src/storage/packed-key-rows.ts';
import type { PackedKeyRows } from '../../../src/storage/packed-key-rows.ts';
import { forEachPackedKeyRow } from '../../../src/storage/index.ts';
import { MAX_SLAB_VALUE_BYTES, ON_HEAP_BYTES, SLAB_BYTES, YOUNG_VALUES } from '../../../src/state/value-slabs.ts';
import { b, Harness, s } from './helpers.ts';

const PER_BATCH = 10;

/** Text padded to 100 bytes: values this size go to slabs (smaller ones stay on V8's heap). */
function long(text: string): Uint8Array {
  return b(text.padEnd(100, '.'));
}

function text(value: Uint8Array): string | null {
  return s(value)?.replace(/\.+$/, '') ?? null;
}

function rowsOf(batch: number): KeyRow[] {
  return Array.from({ length: PER_BATCH }, (_, i) => ({ key: `b${batch}:${i}`, type: 'string' as const, value: long(`value ${batch}.${i}`), expiresAtMs: null }));
}

function packed(rows: readonly KeyRow[]): PackedKeyRows {
  const builder = new PackedKeyRowsBuilder();
  for (const row of rows) builder.add(row.key, KEY_TYPE_CODES[row.type], row.value, row.expiresAtMs ?? NO_EXPIRY);
  return builder.take();
}

/** A state restored as a node restores it: from packed batches, values as views. */
function restoredFromBatches(batches: readonly PackedKeyRows[], extra: readonly KeyRow[] = []): Harness {
  const restore = StateMachine.restore({ lastAppliedIndex: 10, logTimeMs: 1_000_000 });
  for (const batch of batches) forEachPackedKeyRow(batch, restore.key);
  for (const row of extra) restore.key(row.key, row.key.length, row.type, row.value, row.expiresAtMs);
  return new Harness({}, restore.finish());
}

/** The same rows restored with every value a copy of its own: the reference. */
function restoredFromCopies(rows: readonly KeyRow[]): Harness {
  const copies = rows.map((row) => ({ ...row, value: row.value.slice() }));
  return new Harness({}, StateMachine.fromRows({ lastAppliedIndex: 10, logTimeMs: 1_000_000, keyRows: copies, sessionRows: [] }));
}

function storedValue(h: Harness, key: string): Uint8Array {
  const r = h.read({ op: 'get', key });
  if (r.kind !== 'value' || r.value === null) throw new Error(`no value for ${key}`);
  return r.value;
}

describe('restored values: views of their batch buffer', () => {
  it('share it until half are gone; then the rest get buffers of their own and the batch is let go', () => {
    const first = packed(rowsOf(1));
    const second = packed(rowsOf(2));
    const h = restoredFromBatches([first, second], [{ key: 'list', type: 'list', value: new Uint8Array([1, 1, 0x61]), expiresAtMs: null }]);
    const reference = restoredFromCopies([...rowsOf(1), ...rowsOf(2), { key: 'list', type: 'list', value: new Uint8Array([1, 1, 0x61]), expiresAtMs: null }]);
    expect(h.sm.digest()).toBe(reference.sm.digest());
    expect(h.sm.stats().valueSlabBytes).toBe(first.values.buffer.byteLength + second.values.buffer.byteLength);
    expect(storedValue(h, 'b1:9').buffer).toBe(first.values.buffer);

    // Four overwrites and a delete: five of ten are gone, which is half.
    const changes = [
      ...[0, 1, 2, 3].map((i) => ({ op: 'set' as const, key: `b1:${i}`, value: b(`new ${i}`) })),
      { op: 'delete' as const, keys: ['b1:4'] },
    ];
    for (const [n, command] of changes.entries()) {
      h.apply(command);
      reference.apply(command);
      // Before the fifth, the batch is still shared.
      if (n < changes.length - 1) expect(storedValue(h, 'b1:9').buffer).toBe(first.values.buffer);
    }
    // The survivors of the first batch moved to a slab of their own kind (the writes are young still).
    expect(h.sm.stats().valueSlabBytes).toBe(second.values.buffer.byteLength + SLAB_BYTES);
    const current = storedValue(h, 'b1:5').buffer;
    for (let i = 5; i < PER_BATCH; i++) {
      const value = storedValue(h, `b1:${i}`);
      expect(text(value)).toBe(`value 1.${i}`);
      expect(value.buffer).toBe(current);
    }
    expect(storedValue(h, 'b2:0').buffer).toBe(second.values.buffer);
    expect(h.sm.digest()).toBe(reference.sm.digest());
  });

  it('count a value a rolled-back Txn puts back as young: the next promotion copies it out of the batch', () => {
    const batch = packed(rowsOf(1));
    const h = restoredFromBatches([batch]);
    const failing = {
      op: 'txn' as const,
      compares: [],
      success: [{ op: 'delete' as const, keys: ['b1:0'] }, { op: 'lpush' as const, key: 'b1:1', values: [b('x')] }], // WRONGTYPE: rolls back
      failure: [],
    };
    expect(h.apply(failing).kind).toBe('error');
    expect(storedValue(h, 'b1:0').buffer).toBe(batch.values.buffer);
    for (let i = 1; i <= 5; i++) h.apply({ op: 'set', key: `b1:${i}`, value: long('other') });
    // The batch is let go; b1:0 still holds a view of it until the young values are promoted.
    expect(h.sm.stats().valueSlabBytes).toBe(SLAB_BYTES);
    for (let i = 0; i < YOUNG_VALUES; i++) h.apply({ op: 'set', key: 'hot', value: long(`filler ${i}`) });
    expect(storedValue(h, 'b1:0').buffer).not.toBe(batch.values.buffer);
    expect(text(storedValue(h, 'b1:0'))).toBe('value 1.0');
  });

  it('are let go by Clear', () => {
    const h = restoredFromBatches([packed(rowsOf(1))]);
    expect(h.sm.stats().valueSlabBytes).toBeGreaterThan(0);
    h.apply({ op: 'clear' });
    expect(h.sm.stats().valueSlabBytes).toBe(0);
  });

  it('answer and digest as copies would, through random writes, deletes, expiries and Txns', () => {
    const rows = [1, 2, 3, 4].flatMap(rowsOf);
    const h = restoredFromBatches([1, 2, 3, 4].map((n) => packed(rowsOf(n))));
    const reference = restoredFromCopies(rows);
    let seed = 7;
    const random = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
    const key = (): string => `b${1 + random(4)}:${random(PER_BATCH)}`;
    for (let step = 0; step < 400; step++) {
      const pick = random(5);
      const command =
        pick === 0
          ? { op: 'set' as const, key: key(), value: b(`step ${step}`) }
          : pick === 1
            ? { op: 'delete' as const, keys: [key()] }
            : pick === 2
              ? { op: 'expire' as const, key: key(), ttlMs: random(3) }
              : pick === 3
                ? { op: 'txn' as const, compares: [], success: [{ op: 'delete' as const, keys: [key()] }, { op: 'set' as const, key: key(), value: b('t') }], failure: [] }
                : { op: 'get' as const, key: key() };
      expect(h.apply(command)).toEqual(reference.apply(command));
      if (step % 50 === 0) {
        h.advance(1);
        reference.advance(1);
      }
      expect(h.sm.digest()).toBe(reference.sm.digest());
    }
    for (const row of rows) expect(h.read({ op: 'get', key: row.key })).toEqual(reference.read({ op: 'get', key: row.key }));
  });
});

describe('written values: copies in the current slab', () => {
  it('stay views of their log entry for YOUNG_VALUES writes, then share a slab; a value handed out never changes', () => {
    // (Values of 64 bytes or less stay on V8's heap: see the last test.)
    const h = new Harness();
    for (let i = 0; i < 3; i++) h.apply({ op: 'set', key: `k${i}`, value: long(`first ${i}`) });
    const young = [0, 1, 2].map((i) => storedValue(h, `k${i}`));
    expect(h.sm.stats().valueSlabBytes).toBe(0);
    // Ten hot keys written over and over: at the promotion only their last values are copied.
    for (let i = 0; i < YOUNG_VALUES; i++) h.apply({ op: 'set', key: `hot${i % 10}`, value: long(`filler ${i}`) });
    const promoted = [0, 1, 2].map((i) => storedValue(h, `k${i}`));
    expect(new Set(promoted.map((v) => v.buffer)).size).toBe(1);
    expect(promoted[0]?.buffer).not.toBe(young[0]?.buffer);
    expect(h.sm.stats().valueSlabBytes).toBe(SLAB_BYTES);
    for (let round = 0; round < 100; round++) h.apply({ op: 'set', key: 'k0', value: long(`round ${round}`) });
    h.apply({ op: 'delete', keys: ['k1'] });
    expect(young.map(text)).toEqual(['first 0', 'first 1', 'first 2']);
    expect(promoted.map(text)).toEqual(['first 0', 'first 1', 'first 2']);
    const now = ['k0', 'k1', 'k2', `hot${(YOUNG_VALUES - 1) % 10}`].map((key) => h.get(key)?.replace(/\.+$/, '') ?? null);
    expect(now).toEqual(['round 99', null, 'first 2', `filler ${YOUNG_VALUES - 1}`]);
  });

  it('let go of full slabs once half their values are gone: memory stays within twice the live bytes, plus the current slab', () => {
    const h = new Harness();
    const reference = new Harness();
    const valueBytes = 1024;
    const keys = 1000; // about four slabs
    let seed = 11;
    const random = (n: number): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
    const live = new Set<string>();
    let peak = 0;
    for (let step = 0; step < 10_000; step++) {
      const key = `k${random(keys)}`;
      const command = random(10) === 0 ? { op: 'delete' as const, keys: [key] } : { op: 'set' as const, key, value: new Uint8Array(valueBytes).fill(step & 0xff) };
      const result = h.apply(command);
      if (result.kind !== reference.apply(command).kind) throw new Error(`step ${step}: ${command.op} answered differently`);
      if (command.op === 'set') live.add(key);
      else live.delete(key);
      const slabBytes = h.sm.stats().valueSlabBytes;
      peak = Math.max(peak, slabBytes);
      if (slabBytes > 2 * live.size * valueBytes + 2 * SLAB_BYTES) throw new Error(`step ${step}: ${slabBytes} bytes of slabs for ${live.size} values`);
    }
    // Without letting go, every write would still be held: 9,000 values of 1 KiB.
    expect(peak).toBeLessThan(4 * keys * valueBytes);
    expect(h.sm.digest()).toBe(reference.sm.digest());
    for (let i = 0; i < keys; i++) expect(h.read({ op: 'get', key: `k${i}` })).toEqual(reference.read({ op: 'get', key: `k${i}` }));
  });

  it('keep values too small or too large for a slab as they are', () => {
    const h = new Harness();
    h.apply({ op: 'set', key: 'big', value: new Uint8Array(MAX_SLAB_VALUE_BYTES + 1).fill(1) });
    for (let i = 0; i < YOUNG_VALUES; i++) h.apply({ op: 'set', key: `small${i}`, value: new Uint8Array(ON_HEAP_BYTES).fill(2) });
    expect(h.sm.stats().valueSlabBytes).toBe(0);
    expect(storedValue(h, 'big').length).toBe(MAX_SLAB_VALUE_BYTES + 1);
  });
});
