import { describe, expect, it } from 'vitest';
import { decodeResult, StateMachine } from '../../../src/state/index.ts';
import { b, Harness } from './helpers.ts';

describe('client sessions', () => {
  it('answer a duplicate with the recorded result, also a recorded error', () => {
    const h = new Harness();
    const session = { clientId: 'c', sequence: 1 };
    expect(h.apply({ op: 'rpush', key: 'l', values: [b('x')] }, session)).toEqual({ kind: 'count', count: 1 });
    expect(h.apply({ op: 'rpush', key: 'l', values: [b('x')] }, session)).toEqual({ kind: 'count', count: 1 });
    expect(h.list('l')).toEqual(['x']);
    const failed = h.apply({ op: 'get', key: 'l' }, { clientId: 'c', sequence: 2 });
    const again = h.apply({ op: 'get', key: 'l' }, { clientId: 'c', sequence: 2 });
    expect(again.kind === 'error' && again.error.constructor).toBe(failed.kind === 'error' && failed.error.constructor);
    expect(again.kind === 'error' && again.error.message).toBe(failed.kind === 'error' && failed.error.message);
  });

  it('refuse a sequence below the last applied one', () => {
    const h = new Harness();
    h.apply({ op: 'set', key: 'k', value: b('1') }, { clientId: 'c', sequence: 5 });
    const r = h.apply({ op: 'set', key: 'k', value: b('2') }, { clientId: 'c', sequence: 4 });
    expect(r.kind === 'error' && r.error.code).toBe('STALE_SEQUENCE');
    expect(h.get('k')).toBe('1');
  });

  it('expire after the idle period, by log time', () => {
    const h = new Harness({ sessionIdleMs: 1000 });
    h.apply({ op: 'rpush', key: 'l', values: [b('x')] }, { clientId: 'c', sequence: 1 });
    h.advance(999);
    h.apply({ op: 'size' });
    expect(h.sm.sessionCount()).toBe(1);
    h.advance(1);
    h.apply({ op: 'size' });
    expect(h.sm.sessionCount()).toBe(0);
    // Forgotten: the retry applies again (a client must not retry later than the idle period).
    h.apply({ op: 'rpush', key: 'l', values: [b('x')] }, { clientId: 'c', sequence: 1 });
    expect(h.list('l')).toEqual(['x', 'x']);
  });

  it('outlast a leader clock that jumps two hours ahead: a retry across the jump is answered, not applied again', () => {
    // The chaos suite's clock nemesis jumps a leader's clock by up to 2 h; with sessions forgotten after
    // 1 h of log time, a write retried across such a jump applied twice (seed 11, a list holding an item twice).
    const h = new Harness();
    const session = { clientId: 'c', sequence: 7 };
    h.apply({ op: 'rpush', key: 'l', values: [b('x')] }, session);
    h.advance(2 * 60 * 60 * 1000);
    h.apply({ op: 'size' }, { clientId: 'other', sequence: 1 });
    expect(h.apply({ op: 'rpush', key: 'l', values: [b('x')] }, session)).toEqual({ kind: 'count', count: 1 });
    expect(h.list('l')).toEqual(['x']);
  });

  it('a retry keeps its session alive', () => {
    const h = new Harness({ sessionIdleMs: 1000 });
    h.apply({ op: 'set', key: 'k', value: b('1') }, { clientId: 'c', sequence: 1 });
    h.advance(900);
    h.apply({ op: 'set', key: 'k', value: b('1') }, { clientId: 'c', sequence: 1 });
    h.advance(900);
    h.apply({ op: 'size' });
    expect(h.sm.sessionCount()).toBe(1);
  });

  it('evict the least recently seen beyond the cap, ties by client id, never the new one', () => {
    const h = new Harness({ maxSessions: 2 });
    h.apply({ op: 'size' }, { clientId: 'b', sequence: 1 });
    h.apply({ op: 'size' }, { clientId: 'a', sequence: 1 }); // same time as b
    h.apply({ op: 'size' }, { clientId: 'c', sequence: 1 }); // evicts a (ties with b, smaller id)
    const ids = h.sm.exportRows().sessionRows.map((r) => r.clientId).sort();
    expect(ids).toEqual(['b', 'c']);
    h.advance(1);
    h.apply({ op: 'size' }, { clientId: 'b', sequence: 2 });
    h.apply({ op: 'size' }, { clientId: 'd', sequence: 1 }); // c is now the least recent
    expect(h.sm.exportRows().sessionRows.map((r) => r.clientId).sort()).toEqual(['b', 'd']);
  });

  it('are in the digest and survive a snapshot, with the same eviction order after restore', () => {
    const h = new Harness({ maxSessions: 3 });
    const plain = new Harness({ maxSessions: 3 });
    for (const [id, t] of [['x', 0], ['y', 0], ['z', 5]] as const) {
      h.timeMs += t;
      plain.timeMs += t;
      h.apply({ op: 'set', key: id, value: b(id) }, { clientId: id, sequence: 1 });
      plain.apply({ op: 'set', key: id, value: b(id) });
    }
    expect(h.sm.digest()).not.toBe(plain.sm.digest());
    const view = h.sm.exportRows();
    const rows = [...view.sessionRows].reverse(); // storage may hand rows back in any order
    const restored = new Harness({ maxSessions: 3 }, StateMachine.fromRows({ ...view, sessionRows: rows }, { maxSessions: 3 }));
    expect(restored.sm.digest()).toBe(h.sm.digest());
    for (const harness of [h, restored]) harness.apply({ op: 'size' }, { clientId: 'w', sequence: 1 });
    expect(restored.sm.digest()).toBe(h.sm.digest());
    expect(restored.sm.exportRows().sessionRows.map((r) => r.clientId).sort()).toEqual(['w', 'y', 'z']);
    expect(decodeResult(rows[0]?.result as Uint8Array).kind).toBe('set');
  });
});
