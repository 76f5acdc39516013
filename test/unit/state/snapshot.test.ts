import { describe, expect, it } from 'vitest';
import { CodecError, StateMachine } from '../../../src/state/index.ts';
import type { KeyRow, SnapshotView } from '../../../src/state/index.ts';
import { b, Harness } from './helpers.ts';

function filled(n: number): Harness {
  const h = new Harness();
  for (let i = 0; i < n; i++) h.ok({ op: 'set', key: `k${i}`, value: b(`v${i}`) }, 'set');
  h.ok({ op: 'rpush', key: 'list', values: [b('1'), b('2')] }, 'count');
  h.ok({ op: 'hset', key: 'hash', fields: [['f', b('1')], ['g', b('2')]] }, 'count');
  h.ok({ op: 'set', key: 'ttl', value: b('t'), ttlMs: 5000 }, 'set');
  return h;
}

describe('snapshot export', () => {
  it('exports rows in the documented shapes with the index and log time', () => {
    const h = filled(1);
    h.apply({ op: 'size' }, { clientId: 'c', sequence: 3 });
    const view = h.sm.exportRows();
    const rows = [...view.keyRows].sort((x, y) => (x.key < y.key ? -1 : 1));
    expect(rows.map((r) => [r.key, r.type, Array.from(r.value), r.expiresAtMs])).toEqual([
      ['hash', 'hash', [2, 1, 0x66, 1, 0x31, 1, 0x67, 1, 0x32], null],
      ['k0', 'string', Array.from(b('v0')), null],
      ['list', 'list', [2, 1, 0x31, 1, 0x32], null],
      ['ttl', 'string', Array.from(b('t')), h.timeMs + 5000],
    ]);
    expect(view.sessionRows).toEqual([{ clientId: 'c', sequence: 3, result: expect.any(Uint8Array), lastSeenMs: h.timeMs }]);
    expect([view.lastAppliedIndex, view.logTimeMs, view.keyCount, view.digest]).toEqual([h.index, h.timeMs, 4, h.sm.digest()]);
  });

  it('keeps the point-in-time state through deletes, re-creates, in-place changes and a Clear mid-iteration', () => {
    const h = filled(50);
    const expected = h.sm.digest();
    const view = h.sm.exportRows();
    const rows: KeyRow[] = [];
    const it = view.keyRows[Symbol.iterator]();
    for (let step = 0; ; step++) {
      const next = it.next();
      if (next.done === true) break;
      rows.push(next.value);
      if (step === 3) {
        h.ok({ op: 'delete', keys: ['k10', 'k11'] }, 'count');
        h.ok({ op: 'set', key: 'k10', value: b('again') }, 'set');
        h.ok({ op: 'lpush', key: 'list', values: [b('0')] }, 'count');
        h.ok({ op: 'hdel', key: 'hash', fields: ['f'] }, 'count');
        h.ok({ op: 'expire', key: 'ttl', ttlMs: 0 }, 'applied');
        h.ok({ op: 'set', key: 'brand-new', value: b('x') }, 'set');
      }
      if (step === 20) h.ok({ op: 'clear' }, 'count');
    }
    expect(rows).toHaveLength(view.keyCount);
    expect(StateMachine.fromRows({ ...view, keyRows: rows }).digest()).toBe(expected);
    expect(rows.find((r) => r.key === 'brand-new')).toBeUndefined();
  });

  it('closes an unfinished export when a new one opens, and on close()', () => {
    const h = filled(5);
    const first = h.sm.exportRows();
    first.keyRows.next();
    const second = h.sm.exportRows();
    expect(() => first.keyRows.next()).toThrow(/snapshot was closed/);
    second.close();
    expect(() => second.keyRows.next()).toThrow(/snapshot was closed/);
    h.ok({ op: 'set', key: 'k0', value: b('changed') }, 'set'); // no copy-on-write runs now
    expect([...h.sm.exportRows().keyRows]).toHaveLength(8);
  });

  it('restores with the snapshot index and log time, and refuses rows that cannot be state', () => {
    const h = filled(3);
    const view = h.sm.exportRows();
    const rows = [...view.keyRows];
    const sm = StateMachine.fromRows({ ...view, keyRows: rows });
    expect([sm.lastAppliedIndex, sm.logTimeMs, sm.digest(), sm.memoryUsed()]).toEqual([h.sm.lastAppliedIndex, h.sm.logTimeMs, h.sm.digest(), h.sm.memoryUsed()]);
    const base = { lastAppliedIndex: 1, logTimeMs: 1, sessionRows: [] };
    const bad = (keyRows: KeyRow[]) => () => StateMachine.fromRows({ ...base, keyRows });
    expect(bad([rows[0] as KeyRow, rows[0] as KeyRow])).toThrow(/repeats key/);
    expect(bad([{ key: 'x', type: 'list', value: new Uint8Array([0]), expiresAtMs: null }])).toThrow(/empty list/);
    expect(bad([{ key: 'x', type: 'list', value: new Uint8Array([5, 1]), expiresAtMs: null }])).toThrow(CodecError);
    expect(bad([{ key: 'x', type: 'nope' as never, value: new Uint8Array(0), expiresAtMs: null }])).toThrow(/unknown value type/);
    expect(bad([{ key: 'x', type: 'string', value: new Uint8Array(0), expiresAtMs: 1.5 }])).toThrow(/bad expiry/);
    expect(() => StateMachine.fromRows({ ...base, keyRows: [], sessionRows: [{ clientId: 'c', sequence: 1, result: new Uint8Array([7]), lastSeenMs: 0 }] })).toThrow(
      CodecError,
    );
    expect(() => StateMachine.fromRows({ ...base, lastAppliedIndex: -1, keyRows: [] })).toThrow(CodecError);
  });

  it('keeps expired-but-unswept keys, which are part of the state and its digest', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'old', value: b('1'), ttlMs: 1 }, 'set');
    h.advance(10);
    h.apply({ op: 'size' });
    const view = h.sm.exportRows();
    const rows = [...view.keyRows];
    expect(rows.map((r) => r.key)).toEqual(['old']);
    const sm = StateMachine.fromRows({ ...view, keyRows: rows });
    expect(sm.digest()).toBe(h.sm.digest());
    expect(sm.keyCount()).toBe(0);
    expect(sm.expiredKeys(sm.logTimeMs, 10)).toEqual(['old']);
  });
});

describe('changes since the base snapshot (incremental snapshots)', () => {
  const keysOf = (view: SnapshotView): string[] => [...(view.changes?.keys ?? [])];

  it('are offered once an export was stored, or after a restore, and start empty there', () => {
    const h = filled(3);
    const first = h.sm.exportRows();
    expect(first.changes).toBeNull(); // no base yet: the first snapshot is whole
    first.stored();
    first.close();
    h.ok({ op: 'set', key: 'k1', value: b('x') }, 'set');
    h.ok({ op: 'delete', keys: ['list'] }, 'count');
    h.ok({ op: 'set', key: 'k0', value: b('y') }, 'set');
    h.ok({ op: 'set', key: 'k1', value: b('z') }, 'set');
    h.read({ op: 'get', key: 'k2' }); // reads change nothing
    const second = h.sm.exportRows();
    expect(second.changes).toMatchObject({ baseIndex: first.lastAppliedIndex, baseDigest: first.digest });
    expect(keysOf(second)).toEqual(['list', 'k0', 'k1']); // least recently changed first
    const rows = [...second.changes!.rows];
    expect(rows.map((r) => [r.key, Array.from(r.value)])).toEqual([
      ['k0', Array.from(b('y'))],
      ['k1', Array.from(b('z'))],
    ]);
    second.close();

    const restored = StateMachine.fromRows({ ...h.sm.exportRows(), keyRows: [...h.sm.exportRows().keyRows] });
    const view = restored.exportRows();
    expect(view.changes).toMatchObject({ baseIndex: h.sm.lastAppliedIndex, baseDigest: h.sm.digest() });
    expect(keysOf(view)).toEqual([]);
  });

  it('go back when the export is not stored, also when a newer export replaces it', () => {
    const h = filled(3);
    const base = h.sm.exportRows();
    base.stored();
    base.close();
    h.ok({ op: 'set', key: 'k0', value: b('1') }, 'set');
    h.sm.exportRows().close(); // failed: k0 goes back
    h.ok({ op: 'set', key: 'k1', value: b('2') }, 'set');
    const abandoned = h.sm.exportRows();
    h.ok({ op: 'set', key: 'k2', value: b('3') }, 'set');
    const next = h.sm.exportRows(); // closes the abandoned one, whose keys go back first
    abandoned.stored(); // too late: ignored
    expect(next.changes?.baseIndex).toBe(base.lastAppliedIndex);
    expect(keysOf(next)).toEqual(['k0', 'k1', 'k2']);
    next.close();
  });

  it('give the rows as of the export while writes go on, saving old rows only of changed keys', () => {
    const h = filled(20);
    const base = h.sm.exportRows();
    base.stored();
    base.close();
    for (const key of ['k1', 'k2', 'k3']) h.ok({ op: 'set', key, value: b(`${key} at export`) }, 'set');
    h.ok({ op: 'delete', keys: ['k4'] }, 'count');
    const expected = StateMachine.fromRows({ ...h.sm.exportRows(), keyRows: [...h.sm.exportRows().keyRows] });
    const view = h.sm.exportRows();
    const rows: KeyRow[] = [];
    for (const row of view.changes!.rows) {
      rows.push(row);
      if (rows.length === 1) {
        h.ok({ op: 'set', key: 'k3', value: b('later') }, 'set');
        h.ok({ op: 'delete', keys: ['k2'] }, 'count');
        h.ok({ op: 'set', key: 'k4', value: b('back, later') }, 'set');
        h.ok({ op: 'set', key: 'k9', value: b('unchanged at export') }, 'set');
      }
    }
    expect(rows.map((r) => [r.key, new TextDecoder().decode(r.value)]).sort()).toEqual([
      ['k1', 'k1 at export'],
      ['k2', 'k2 at export'],
      ['k3', 'k3 at export'],
    ]);
    expect(keysOf(view).sort()).toEqual(['k1', 'k2', 'k3', 'k4']);
    view.stored();
    view.close();
    expect(expected.digest()).toBe(view.digest);
    expect(keysOf(h.sm.exportRows()).sort()).toEqual(['k2', 'k3', 'k4', 'k9']);
  });

  it('are dropped once more than half the keys changed: the next snapshot is whole anyway', () => {
    const h = filled(6000);
    const base = h.sm.exportRows();
    base.stored();
    base.close();
    for (let i = 0; i < 3000; i++) h.ok({ op: 'set', key: `k${i}`, value: b('changed') }, 'set');
    const some = h.sm.exportRows();
    expect(some.changes?.keys.size).toBe(3000);
    some.close();
    for (let i = 0; i < 7000; i++) h.ok({ op: 'set', key: `new${i}`, value: b('bulk') }, 'set');
    expect(h.sm.exportRows().changes).toBeNull();
  });

  it('are dropped by Clear: the next snapshot is whole', () => {
    const h = filled(3);
    const base = h.sm.exportRows();
    base.stored();
    base.close();
    h.ok({ op: 'clear' }, 'count');
    h.ok({ op: 'set', key: 'k0', value: b('again') }, 'set');
    const view = h.sm.exportRows();
    expect(view.changes).toBeNull();
    view.stored();
    view.close();
    h.ok({ op: 'set', key: 'k1', value: b('again') }, 'set');
    expect(keysOf(h.sm.exportRows())).toEqual(['k1']);
  });
});
