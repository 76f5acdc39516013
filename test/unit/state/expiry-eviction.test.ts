import { describe, expect, it } from 'vitest';
import { b, Harness } from './helpers.ts';

describe('TTL sweep', () => {
  it('lists the expired keys for the leader, and the sweep deletes only those still expired', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'a', value: b('1'), ttlMs: 10 }, 'set');
    h.ok({ op: 'set', key: 'b', value: b('1'), ttlMs: 20 }, 'set');
    h.ok({ op: 'set', key: 'c', value: b('1'), ttlMs: 30 }, 'set');
    h.ok({ op: 'set', key: 'd', value: b('1') }, 'set');
    expect(h.sm.expiredKeys(h.timeMs + 9, 100)).toEqual([]);
    expect(h.sm.expiredKeys(h.timeMs + 20, 100).sort()).toEqual(['a', 'b']);
    expect(h.sm.expiredKeys(h.timeMs + 100, 2)).toHaveLength(2);
    h.advance(20);
    const keys = h.sm.expiredKeys(h.timeMs, 100);
    // Between the leader's choice and the entry, b is set again: it must survive.
    h.ok({ op: 'set', key: 'b', value: b('2') }, 'set');
    expect(h.apply({ op: 'expireSweep', keys: [...keys, 'c', 'd', 'missing'] })).toEqual({ kind: 'count', count: 1 });
    expect(h.get('b')).toBe('2');
    expect(h.read({ op: 'ttl', key: 'c' })).toEqual({ kind: 'ttl', ttlMs: 10 });
    expect(h.sm.expiredKeys(h.timeMs + 1000, 100)).toEqual(['c']);
  });

  it('frees the memory of expired keys only when swept (they are invisible before)', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'a', value: new Uint8Array(100), ttlMs: 5 }, 'set');
    const used = h.sm.memoryUsed();
    h.advance(5);
    expect(h.sm.keyCount(h.timeMs)).toBe(0);
    expect(h.sm.memoryUsed()).toBe(used);
    h.apply({ op: 'expireSweep', keys: h.sm.expiredKeys(h.timeMs, 10) });
    expect(h.sm.memoryUsed()).toBe(0);
  });
});

describe('LRU eviction', () => {
  it('picks the least recently used keys first, writes and applied reads counting as use', () => {
    const h = new Harness();
    for (const key of ['a', 'b', 'c', 'd']) h.ok({ op: 'set', key, value: new Uint8Array(10) }, 'set');
    h.ok({ op: 'get', key: 'a' }, 'value'); // a read through the log is an access on every replica
    h.ok({ op: 'rpush', key: 'e', values: [b('x')] }, 'count');
    h.ok({ op: 'set', key: 'b', value: new Uint8Array(10) }, 'set');
    expect(h.sm.evictionCandidates(1).map((t) => t.key)).toEqual(['c']);
    const perKey = h.sm.memoryUsed() / 5;
    expect(h.sm.evictionCandidates(perKey * 1.5).map((t) => t.key)).toEqual(['c', 'd']);
    expect(h.sm.evictionCandidates(Infinity).map((t) => t.key)).toEqual(['c', 'd', 'a', 'e', 'b']);
    expect(h.sm.evictionCandidates(0)).toEqual([]);
  });

  it('counts leader reads only when asked to, and plain reads never', () => {
    const h = new Harness();
    for (const key of ['a', 'b']) h.ok({ op: 'set', key, value: b('1') }, 'set');
    h.sm.read({ op: 'get', key: 'a' }, h.timeMs);
    expect(h.sm.evictionCandidates(1).map((t) => t.key)).toEqual(['a']);
    h.sm.read({ op: 'get', key: 'a' }, h.timeMs, { touch: true });
    expect(h.sm.evictionCandidates(1).map((t) => t.key)).toEqual(['b']);
  });

  it('evicts only keys whose content is unchanged since the leader chose them', () => {
    const h = new Harness({ maxMemoryBytes: 1, eviction: 'lru' });
    for (const key of ['a', 'b', 'c']) h.ok({ op: 'set', key, value: b(key) }, 'set');
    h.ok({ op: 'expire', key: 'c', ttlMs: 1000 }, 'applied');
    const targets = h.sm.evictionCandidates(Infinity);
    h.ok({ op: 'set', key: 'b', value: b('new') }, 'set'); // written after the choice
    expect(h.apply({ op: 'evict', keys: targets })).toEqual({ kind: 'count', count: 2 });
    expect(h.allKeys()).toEqual(['b']);
    expect(h.apply({ op: 'evict', keys: [{ key: 'b', fingerprint: 12345 }] })).toEqual({ kind: 'count', count: 0 });
  });
});
