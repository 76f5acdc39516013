import { describe, expect, it } from 'vitest';
import { Harness, b } from './helpers.ts';

function tracked(): Harness {
  const h = new Harness();
  h.sm.trackChanges(true);
  return h;
}

describe('change tracking (what Watch is built on)', () => {
  it('is off by default and reports nothing', () => {
    const h = new Harness();
    h.apply({ op: 'set', key: 'a', value: b('1') });
    expect(h.sm.takeChangedKeys()).toEqual([]);
  });

  it('reports every key a write touches, once taken it starts afresh', () => {
    const h = tracked();
    h.apply({ op: 'set', key: 'a', value: b('1') });
    h.apply({ op: 'rpush', key: 'l', values: [b('x')] });
    h.apply({ op: 'hset', key: 'h', fields: [['f', b('v')]] });
    expect(new Set(h.sm.takeChangedKeys())).toEqual(new Set(['a', 'l', 'h']));
    h.apply({ op: 'delete', keys: ['a', 'missing'] });
    expect(h.sm.takeChangedKeys()).toEqual(['a']);
    h.apply({ op: 'expire', key: 'l', ttlMs: 1000 });
    expect(h.sm.takeChangedKeys()).toEqual(['l']);
  });

  it('reports nothing for reads, failed writes, and a Txn that rolled back', () => {
    const h = tracked();
    h.apply({ op: 'set', key: 's', value: b('1') });
    h.sm.takeChangedKeys();
    h.read({ op: 'get', key: 's' });
    h.apply({ op: 'lpush', key: 's', values: [b('x')] }); // WRONGTYPE
    h.apply({ op: 'txn', compares: [], success: [{ op: 'set', key: 't', value: b('1') }, { op: 'lpush', key: 's', values: [b('x')] }], failure: [] });
    expect(h.sm.takeChangedKeys()).toEqual([]);
  });

  it('reports every key that Clear removed', () => {
    const h = tracked();
    for (const key of ['a', 'b', 'c']) h.apply({ op: 'set', key, value: b(key) });
    h.sm.takeChangedKeys();
    h.apply({ op: 'clear' });
    expect(h.sm.takeChangedKeys().sort()).toEqual(['a', 'b', 'c']);
  });
});
