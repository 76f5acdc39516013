import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Arena, SMALL_VALUE_BYTES } from '../../../src/state/arena.ts';
import { opArb } from './arbitraries.ts';
import { b, Harness, s } from './helpers.ts';

describe('Arena', () => {
  it('stores, reads, overwrites in place within a class, and reuses freed slots', () => {
    const arena = new Arena();
    const a = arena.store(b('hello'), 0, 5);
    const c = arena.store(b('x'.repeat(SMALL_VALUE_BYTES)), 0, SMALL_VALUE_BYTES);
    expect(s(arena.read(a))).toBe('hello');
    expect(arena.length(c)).toBe(SMALL_VALUE_BYTES);
    expect(arena.overwrite(a, b('howdy!'), 0, 6)).toBe(a); // same 8-byte class
    expect(s(arena.read(a))).toBe('howdy!');
    const moved = arena.overwrite(a, b('a longer value'), 0, 14); // 16-byte class
    expect(moved).not.toBe(a);
    expect(arena.store(b('reuse'), 0, 5)).toBe(a); // the freed 8-byte slot comes back first
    expect(arena.liveValues).toBe(3);
    arena.reset();
    expect([arena.liveValues, arena.reservedBytes]).toEqual([0, 0]);
  });

  it('hands out copies: a result does not change when its slot is reused', () => {
    const h = new Harness();
    h.ok({ op: 'rpush', key: 'l', values: [b('first'), b('second')] }, 'count');
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('one')]] }, 'count');
    const popped = h.ok({ op: 'lpop', key: 'l' }, 'values').values[0];
    const got = h.read({ op: 'hget', key: 'h', field: 'f' });
    h.ok({ op: 'rpush', key: 'l', values: [b('XXXXX'), b('YYYYY')] }, 'count');
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('two')]] }, 'count');
    expect(s(popped)).toBe('first');
    expect(got.kind === 'value' && s(got.value)).toBe('one');
  });

  it('leaks no slot: after any history and deleting every key, none is held', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 80 }), (ops) => {
        const h = new Harness();
        for (const op of ops) {
          h.advance(3);
          h.apply(op.op === 'clear' ? { op: 'delete', keys: ['a'] } : op);
          // Also through Txns that commit and Txns that roll back.
          h.apply({ op: 'txn', compares: [], success: [op, { op: 'lpush', key: 'a', values: [b('z')] }], failure: [] });
        }
        h.apply({ op: 'expireSweep', keys: h.sm.expiredKeys(h.timeMs, 1000) });
        h.apply({ op: 'delete', keys: h.allKeys() });
        expect(h.sm.stats()).toMatchObject({ storedKeys: 0, memoryUsedBytes: 0, arenaValues: 0 });
      }),
      { numRuns: 300 },
    );
  });
});
