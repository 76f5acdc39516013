import { describe, expect, it } from 'vitest';
import type { Compare } from '../../../src/state/index.ts';
import { b, errorCode, Harness, s } from './helpers.ts';

describe('Txn', () => {
  it('runs success when every compare holds, failure otherwise, with one result per op', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'k', value: b('v1') }, 'set');
    const cas = (expected: string, next: string) =>
      h.apply({
        op: 'txn',
        compares: [{ target: 'value', key: 'k', op: 'eq', value: b(expected) }],
        success: [{ op: 'set', key: 'k', value: b(next) }, { op: 'get', key: 'k' }],
        failure: [{ op: 'get', key: 'k' }],
      });
    const won = cas('v1', 'v2');
    expect(won.kind === 'txn' && won.succeeded).toBe(true);
    expect(won.kind === 'txn' && won.results.map((r) => r.kind)).toEqual(['set', 'value']);
    const lost = cas('v1', 'v3');
    expect(lost.kind === 'txn' && lost.succeeded).toBe(false);
    expect(lost.kind === 'txn' && s((lost.results[0] as { value: Uint8Array }).value)).toBe('v2');
    expect(h.get('k')).toBe('v2');
  });

  it('compares values bytewise, types, and lengths', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 's', value: b('abc') }, 'set');
    h.ok({ op: 'rpush', key: 'l', values: [b('1'), b('2')] }, 'count');
    const holds = (compare: Compare): boolean => {
      const r = h.apply({ op: 'txn', compares: [compare], success: [], failure: [] });
      return r.kind === 'txn' && r.succeeded;
    };
    expect(holds({ target: 'value', key: 's', op: 'lt', value: b('abd') })).toBe(true);
    expect(holds({ target: 'value', key: 's', op: 'gt', value: b('ab') })).toBe(true);
    expect(holds({ target: 'value', key: 's', op: 'le', value: b('abc') })).toBe(true);
    expect(holds({ target: 'value', key: 's', op: 'ge', value: b('abd') })).toBe(false);
    // A value compare on a missing key or a non-string is false, whatever the op.
    expect(holds({ target: 'value', key: 'missing', op: 'ne', value: b('x') })).toBe(false);
    expect(holds({ target: 'value', key: 'l', op: 'ne', value: b('x') })).toBe(false);
    expect(holds({ target: 'type', key: 'missing', op: 'eq', type: 'none' })).toBe(true);
    expect(holds({ target: 'type', key: 'l', op: 'ne', type: 'string' })).toBe(true);
    expect(holds({ target: 'length', key: 'l', op: 'eq', length: 2 })).toBe(true);
    expect(holds({ target: 'length', key: 's', op: 'gt', length: 2 })).toBe(true);
    expect(holds({ target: 'length', key: 'missing', op: 'eq', length: 0 })).toBe(true);
  });

  it('rolls back every op when one fails, and answers that op\'s error', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'a', value: b('1'), ttlMs: 1000 }, 'set');
    h.ok({ op: 'rpush', key: 'l', values: [b('x'), b('y')] }, 'count');
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('1')]] }, 'count');
    const digest = h.sm.digest();
    const memory = h.sm.memoryUsed();
    const r = h.apply({
      op: 'txn',
      compares: [],
      success: [
        { op: 'set', key: 'a', value: b('2') },
        { op: 'delete', keys: ['h'] },
        { op: 'lpush', key: 'l', values: [b('w')] },
        { op: 'rpop', key: 'l', count: 5 },
        { op: 'set', key: 'new', value: b('n') },
        { op: 'expire', key: 'new', ttlMs: 5 },
        { op: 'lset', key: 'a', index: 0, value: b('boom') }, // WRONGTYPE: a is a string
      ],
      failure: [],
    });
    expect(errorCode(r)).toBe('WRONGTYPE');
    expect(r.kind === 'error' && r.error.message).toMatch(/^txn success op 6 \(lset\): WRONGTYPE key 'a' holds a string/);
    expect(h.sm.digest()).toBe(digest);
    expect(h.sm.memoryUsed()).toBe(memory);
    expect(h.get('a')).toBe('1');
    expect(h.read({ op: 'ttl', key: 'a' })).toEqual({ kind: 'ttl', ttlMs: 1000 });
    expect(h.list('l')).toEqual(['x', 'y']);
    expect(h.hash('h')).toEqual([['f', '1']]);
    expect(h.read({ op: 'exists', keys: ['new'] })).toEqual({ kind: 'count', count: 0 });
  });

  it('rolls back a Clear', () => {
    const h = new Harness();
    for (const key of ['a', 'b', 'c']) h.ok({ op: 'set', key, value: b(key) }, 'set');
    const digest = h.sm.digest();
    const r = h.apply({ op: 'txn', compares: [], success: [{ op: 'clear' }, { op: 'set', key: 'x', value: b('1'), ttlMs: 1, keepTtl: true }], failure: [] });
    expect(errorCode(r)).toBe('INVALID_ARGUMENT');
    expect(h.sm.digest()).toBe(digest);
    expect(h.allKeys()).toEqual(['a', 'b', 'c']);
  });

  it('checks the memory budget on the net change of the whole Txn', () => {
    const probe = new Harness();
    probe.ok({ op: 'set', key: 'a', value: new Uint8Array(100) }, 'set');
    const oneKey = probe.sm.memoryUsed();
    const h = new Harness({ maxMemoryBytes: oneKey, eviction: 'noeviction' });
    h.ok({ op: 'set', key: 'a', value: new Uint8Array(100) }, 'set');
    // Net zero: delete a, then set b of the same size. Each op alone would not fit in order, the whole does.
    const swap = h.apply({ op: 'txn', compares: [], success: [{ op: 'set', key: 'b', value: new Uint8Array(100) }, { op: 'delete', keys: ['a'] }], failure: [] });
    expect(swap.kind).toBe('txn');
    expect(h.allKeys()).toEqual(['b']);
    const digest = h.sm.digest();
    const grow = h.apply({ op: 'txn', compares: [], success: [{ op: 'set', key: 'c', value: new Uint8Array(1) }], failure: [] });
    expect(errorCode(grow)).toBe('RESOURCE_EXHAUSTED');
    expect(h.sm.digest()).toBe(digest);
  });

  it('refuses nested Txns and internal commands inside a Txn', () => {
    const h = new Harness();
    const nested = h.sm.applyEntry(++h.index, {
      timeMs: h.timeMs,
      session: null,
      command: { op: 'txn', compares: [], success: [{ op: 'txn', compares: [], success: [], failure: [] } as never], failure: [] },
    });
    expect(errorCode(nested)).toBe('INVALID_ARGUMENT');
    const sweep = h.sm.applyEntry(++h.index, {
      timeMs: h.timeMs,
      session: null,
      command: { op: 'txn', compares: [], success: [{ op: 'expireSweep', keys: [] } as never], failure: [] },
    });
    expect(errorCode(sweep)).toBe('INVALID_ARGUMENT');
  });

  it('serves a read-only Txn on the read path, and refuses one with writes there', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'k', value: b('1') }, 'set');
    const r = h.read({ op: 'txn', compares: [{ target: 'type', key: 'k', op: 'eq', type: 'string' }], success: [{ op: 'get', key: 'k' }], failure: [{ op: 'set', key: 'k', value: b('2') }] });
    expect(r.kind).toBe('error'); // a branch writes: it must go through the log
    const ro = h.read({ op: 'txn', compares: [], success: [{ op: 'get', key: 'k' }, { op: 'llen', key: 'k' }], failure: [] });
    expect(errorCode(ro)).toBe('WRONGTYPE');
    const fine = h.read({ op: 'txn', compares: [], success: [{ op: 'get', key: 'k' }, { op: 'exists', keys: ['k'] }], failure: [] });
    expect(fine.kind === 'txn' && fine.results).toEqual([
      { kind: 'value', found: true, value: b('1') },
      { kind: 'count', count: 1 },
    ]);
  });
});
