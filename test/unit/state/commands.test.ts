/** Each command's edge cases, one rule per test where it reads well. */
import { describe, expect, it } from 'vitest';
import { HASH_FIELD_OVERHEAD_BYTES, KEY_OVERHEAD_BYTES, LIST_ITEM_OVERHEAD_BYTES } from '../../../src/state/index.ts';
import { b, errorCode, Harness, s } from './helpers.ts';

describe('Get / Set', () => {
  it('answers found=false for a missing key, never an error', () => {
    const h = new Harness();
    expect(h.apply({ op: 'get', key: 'nope' })).toEqual({ kind: 'value', found: false, value: null });
  });

  it('reports the previous value, and whether it was applied, per condition', () => {
    const h = new Harness();
    expect(h.apply({ op: 'set', key: 'k', value: b('1'), condition: 'ifPresent' })).toEqual({
      kind: 'set',
      applied: false,
      previousFound: false,
      previous: null,
    });
    expect(h.get('k')).toBeNull();
    expect(h.ok({ op: 'set', key: 'k', value: b('1'), condition: 'ifAbsent' }, 'set')).toMatchObject({ applied: true, previousFound: false });
    // An IF_ABSENT Set that is not applied still reports the previous value.
    const r = h.ok({ op: 'set', key: 'k', value: b('2'), condition: 'ifAbsent' }, 'set');
    expect(r.applied).toBe(false);
    expect(s(r.previous)).toBe('1');
    expect(h.get('k')).toBe('1');
    const p = h.ok({ op: 'set', key: 'k', value: b('3'), condition: 'ifPresent' }, 'set');
    expect([p.applied, s(p.previous)]).toEqual([true, '1']);
    expect(h.get('k')).toBe('3');
  });

  it('replaces a list or hash, reporting previousFound without a previous string', () => {
    const h = new Harness();
    h.ok({ op: 'rpush', key: 'k', values: [b('x')] }, 'count');
    expect(h.ok({ op: 'set', key: 'k', value: b('v') }, 'set')).toEqual({ kind: 'set', applied: true, previousFound: true, previous: null });
    expect(h.get('k')).toBe('v');
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('1')]] }, 'count');
    h.ok({ op: 'set', key: 'h', value: b('w') }, 'set');
    expect(h.read({ op: 'type', key: 'h' })).toEqual({ kind: 'type', type: 'string' });
  });

  it('sets, keeps and clears the TTL like SET PX / KEEPTTL', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'k', value: b('1'), ttlMs: 1000 }, 'set');
    expect(h.read({ op: 'ttl', key: 'k' })).toEqual({ kind: 'ttl', ttlMs: 1000 });
    h.advance(400);
    h.ok({ op: 'set', key: 'k', value: b('2'), keepTtl: true }, 'set');
    expect(h.read({ op: 'ttl', key: 'k' })).toEqual({ kind: 'ttl', ttlMs: 600 });
    h.ok({ op: 'set', key: 'k', value: b('3') }, 'set'); // a plain Set drops the TTL
    expect(h.read({ op: 'ttl', key: 'k' })).toEqual({ kind: 'ttl', ttlMs: -1 });
    // keepTtl on a new key: no TTL.
    h.ok({ op: 'set', key: 'fresh', value: b('1'), keepTtl: true }, 'set');
    expect(h.read({ op: 'ttl', key: 'fresh' })).toEqual({ kind: 'ttl', ttlMs: -1 });
  });

  it('treats a key as absent from its expiry time on', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'k', value: b('1'), ttlMs: 100 }, 'set');
    h.advance(99);
    expect(h.get('k')).toBe('1');
    h.advance(1); // expiry at or before now: gone
    expect(h.get('k')).toBeNull();
    expect(h.read({ op: 'ttl', key: 'k' })).toEqual({ kind: 'ttl', ttlMs: -2 });
    expect(h.ok({ op: 'set', key: 'k', value: b('2'), condition: 'ifAbsent' }, 'set')).toMatchObject({ applied: true, previousFound: false });
    expect(h.read({ op: 'ttl', key: 'k' })).toEqual({ kind: 'ttl', ttlMs: -1 });
  });

  it('refuses ttlMs with keepTtl, negative or fractional numbers, and oversized input', () => {
    const h = new Harness({ maxKeyBytes: 8, maxValueBytes: 4 });
    expect(errorCode(h.apply({ op: 'set', key: 'k', value: b('1'), ttlMs: 5, keepTtl: true }))).toBe('INVALID_ARGUMENT');
    expect(errorCode(h.sm.applyEntry(++h.index, { timeMs: h.timeMs, session: null, command: { op: 'set', key: 'k', value: b('1'), ttlMs: -5 } }))).toBe(
      'INVALID_ARGUMENT',
    );
    expect(errorCode(h.sm.applyEntry(++h.index, { timeMs: h.timeMs, session: null, command: { op: 'set', key: 'k', value: b('1'), ttlMs: 1.5 } }))).toBe(
      'INVALID_ARGUMENT',
    );
    const big = h.apply({ op: 'set', key: 'k', value: b('12345') });
    expect(big.kind === 'error' && big.error.message).toBe('value is 5 bytes; the limit is 4');
    const longKey = h.apply({ op: 'set', key: 'ééééé', value: b('1') }); // 10 UTF-8 bytes
    expect(longKey.kind === 'error' && longKey.error.message).toBe('key is 10 bytes; the limit is 8');
    expect(errorCode(h.apply({ op: 'set', key: 'k', value: b('1'), ttlMs: Number.MAX_SAFE_INTEGER }))).toBe('INVALID_ARGUMENT');
    expect(h.sm.keyCount()).toBe(0);
  });

  it('refuses a key with a lone surrogate given as a decoded command', () => {
    const h = new Harness();
    const r = h.sm.applyEntry(++h.index, { timeMs: h.timeMs, session: null, command: { op: 'set', key: 'a\udc00', value: b('1') } });
    expect(errorCode(r)).toBe('INVALID_ARGUMENT');
  });
});

describe('Delete / Exists / Expire / Ttl / Type / Size / Clear', () => {
  it('counts deleted keys once each, and existing keys once per mention', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'a', value: b('1') }, 'set');
    h.ok({ op: 'set', key: 'b', value: b('1') }, 'set');
    expect(h.apply({ op: 'exists', keys: ['a', 'a', 'b', 'c'] })).toEqual({ kind: 'count', count: 3 });
    expect(h.apply({ op: 'delete', keys: ['a', 'a', 'c'] })).toEqual({ kind: 'count', count: 1 });
    expect(h.apply({ op: 'delete', keys: [] })).toEqual({ kind: 'count', count: 0 });
    expect(h.apply({ op: 'exists', keys: ['a'] })).toEqual({ kind: 'count', count: 0 });
  });

  it('does not count an expired key as deleted', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'a', value: b('1'), ttlMs: 5 }, 'set');
    h.advance(5);
    expect(h.apply({ op: 'delete', keys: ['a'] })).toEqual({ kind: 'count', count: 0 });
  });

  it('expires like PEXPIRE and persists like PERSIST', () => {
    const h = new Harness();
    expect(h.apply({ op: 'expire', key: 'k', ttlMs: 100 })).toEqual({ kind: 'applied', applied: false });
    h.ok({ op: 'set', key: 'k', value: b('1') }, 'set');
    expect(h.apply({ op: 'expire', key: 'k', ttlMs: 0 })).toEqual({ kind: 'applied', applied: false }); // nothing to remove
    expect(h.apply({ op: 'expire', key: 'k', ttlMs: 100 })).toEqual({ kind: 'applied', applied: true });
    expect(h.read({ op: 'ttl', key: 'k' })).toEqual({ kind: 'ttl', ttlMs: 100 });
    expect(h.apply({ op: 'expire', key: 'k', ttlMs: 0 })).toEqual({ kind: 'applied', applied: true });
    expect(h.read({ op: 'ttl', key: 'k' })).toEqual({ kind: 'ttl', ttlMs: -1 });
    h.apply({ op: 'expire', key: 'k', ttlMs: 10 });
    h.advance(10);
    expect(h.apply({ op: 'expire', key: 'k', ttlMs: 100 })).toEqual({ kind: 'applied', applied: false });
  });

  it('names types, and counts only live keys in Size and Clear', () => {
    const h = new Harness();
    expect(h.read({ op: 'type', key: 'x' })).toEqual({ kind: 'type', type: 'none' });
    h.ok({ op: 'set', key: 's', value: b('1') }, 'set');
    h.ok({ op: 'lpush', key: 'l', values: [b('1')] }, 'count');
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('1')]] }, 'count');
    h.ok({ op: 'set', key: 'gone', value: b('1'), ttlMs: 1 }, 'set');
    expect([h.read({ op: 'type', key: 's' }), h.read({ op: 'type', key: 'l' }), h.read({ op: 'type', key: 'h' })]).toEqual([
      { kind: 'type', type: 'string' },
      { kind: 'type', type: 'list' },
      { kind: 'type', type: 'hash' },
    ]);
    expect(h.read({ op: 'size' })).toEqual({ kind: 'count', count: 4 });
    h.advance(1);
    expect(h.read({ op: 'size' })).toEqual({ kind: 'count', count: 3 });
    expect(h.apply({ op: 'clear' })).toEqual({ kind: 'count', count: 3 });
    expect(h.read({ op: 'size' })).toEqual({ kind: 'count', count: 0 });
    expect(h.sm.memoryUsed()).toBe(0);
    expect(h.sm.digest()).toBe(new Harness().sm.digest());
  });
});

describe('lists', () => {
  it('LPush a, b, c leaves c first; RPush appends; both answer the length', () => {
    const h = new Harness();
    expect(h.apply({ op: 'lpush', key: 'l', values: [b('a'), b('b'), b('c')] })).toEqual({ kind: 'count', count: 3 });
    expect(h.list('l')).toEqual(['c', 'b', 'a']);
    expect(h.apply({ op: 'rpush', key: 'l', values: [b('d')] })).toEqual({ kind: 'count', count: 4 });
    expect(h.list('l')).toEqual(['c', 'b', 'a', 'd']);
    expect(errorCode(h.apply({ op: 'lpush', key: 'l', values: [] }))).toBe('INVALID_ARGUMENT');
  });

  it('pops one by default, up to count, and deletes the emptied list', () => {
    const h = new Harness();
    h.ok({ op: 'rpush', key: 'l', values: [b('1'), b('2'), b('3'), b('4')] }, 'count');
    expect(h.ok({ op: 'lpop', key: 'l' }, 'values').values.map(s)).toEqual(['1']);
    expect(h.ok({ op: 'rpop', key: 'l', count: 2 }, 'values').values.map(s)).toEqual(['4', '3']);
    expect(h.ok({ op: 'lpop', key: 'l', count: 10 }, 'values').values.map(s)).toEqual(['2']);
    expect(h.read({ op: 'exists', keys: ['l'] })).toEqual({ kind: 'count', count: 0 });
    expect(h.ok({ op: 'lpop', key: 'l', count: 3 }, 'values').values).toEqual([]);
  });

  it('indexes from either end; out of range is not found for LIndex, OUT_OF_RANGE for LSet', () => {
    const h = new Harness();
    h.ok({ op: 'rpush', key: 'l', values: [b('a'), b('b'), b('c')] }, 'count');
    const at = (index: number): string | null => {
      const r = h.read({ op: 'lindex', key: 'l', index });
      return r.kind === 'value' ? s(r.value) : 'error';
    };
    expect([at(0), at(2), at(3), at(-1), at(-3), at(-4)]).toEqual(['a', 'c', null, 'c', 'a', null]);
    expect(h.apply({ op: 'lset', key: 'l', index: -1, value: b('z') })).toEqual({ kind: 'ok' });
    expect(h.list('l')).toEqual(['a', 'b', 'z']);
    const oor = h.apply({ op: 'lset', key: 'l', index: 3, value: b('x') });
    expect(oor.kind === 'error' && oor.error.message).toBe("index 3 is out of range for the list at 'l' of length 3");
    expect(errorCode(h.apply({ op: 'lset', key: 'l', index: -4, value: b('x') }))).toBe('OUT_OF_RANGE');
    expect(errorCode(h.apply({ op: 'lset', key: 'missing', index: 0, value: b('x') }))).toBe('OUT_OF_RANGE');
    expect(h.list('l')).toEqual(['a', 'b', 'z']);
  });

  it('refuses a non-integer index given as a decoded command', () => {
    const h = new Harness();
    h.ok({ op: 'rpush', key: 'l', values: [b('a'), b('b')] }, 'count');
    const at = (command: Parameters<Harness['read']>[0]): string | null => errorCode(h.sm.read(command, h.timeMs));
    expect(at({ op: 'lindex', key: 'l', index: 0.5 })).toBe('INVALID_ARGUMENT');
    expect(at({ op: 'lrange', key: 'l', start: 0, stop: NaN })).toBe('INVALID_ARGUMENT');
    expect(errorCode(h.sm.applyEntry(++h.index, { timeMs: h.timeMs, session: null, command: { op: 'lpop', key: 'l', count: -1 } }))).toBe('INVALID_ARGUMENT');
    expect(h.list('l')).toEqual(['a', 'b']);
  });

  it('ranges like LRANGE: inclusive, negative from the end, clamped', () => {
    const h = new Harness();
    h.ok({ op: 'rpush', key: 'l', values: ['0', '1', '2', '3', '4'].map(b) }, 'count');
    const range = (start: number, stop: number): string[] => {
      const r = h.read({ op: 'lrange', key: 'l', start, stop });
      return r.kind === 'values' ? r.values.map((v) => s(v) as string) : ['error'];
    };
    expect(range(0, -1)).toEqual(['0', '1', '2', '3', '4']);
    expect(range(1, 2)).toEqual(['1', '2']);
    expect(range(-2, -1)).toEqual(['3', '4']);
    expect(range(-100, 1)).toEqual(['0', '1']);
    expect(range(3, 100)).toEqual(['3', '4']);
    expect(range(3, 1)).toEqual([]);
    expect(range(5, 10)).toEqual([]);
    expect(range(-1, -2)).toEqual([]);
    expect(h.read({ op: 'lrange', key: 'missing', start: 0, stop: -1 })).toEqual({ kind: 'values', values: [] });
    expect(h.read({ op: 'llen', key: 'l' })).toEqual({ kind: 'count', count: 5 });
    expect(h.read({ op: 'llen', key: 'missing' })).toEqual({ kind: 'count', count: 0 });
  });

  it('keeps a list TTL across pushes, like Redis', () => {
    const h = new Harness();
    h.ok({ op: 'rpush', key: 'l', values: [b('1')] }, 'count');
    h.ok({ op: 'expire', key: 'l', ttlMs: 50 }, 'applied');
    h.ok({ op: 'rpush', key: 'l', values: [b('2')] }, 'count');
    expect(h.read({ op: 'ttl', key: 'l' })).toEqual({ kind: 'ttl', ttlMs: 50 });
    h.advance(50);
    expect(h.apply({ op: 'rpush', key: 'l', values: [b('3')] })).toEqual({ kind: 'count', count: 1 }); // a fresh list
    expect(h.read({ op: 'ttl', key: 'l' })).toEqual({ kind: 'ttl', ttlMs: -1 });
  });

  it('handles a long list pushed and popped at both ends', () => {
    const h = new Harness();
    const model: string[] = [];
    for (let i = 0; i < 500; i++) {
      const v = String(i);
      if (i % 3 === 0) {
        h.ok({ op: 'lpush', key: 'l', values: [b(v)] }, 'count');
        model.unshift(v);
      } else {
        h.ok({ op: 'rpush', key: 'l', values: [b(v)] }, 'count');
        model.push(v);
      }
      if (i % 7 === 0) {
        h.ok({ op: 'rpop', key: 'l' }, 'values');
        model.pop();
      }
    }
    expect(h.list('l')).toEqual(model);
    expect(s((h.read({ op: 'lindex', key: 'l', index: 250 }) as { value: Uint8Array }).value)).toBe(model[250]);
  });
});

describe('hashes', () => {
  it('counts added fields, a repeated field once with its later value', () => {
    const h = new Harness();
    expect(h.apply({ op: 'hset', key: 'h', fields: [['a', b('1')], ['b', b('2')], ['a', b('3')]] })).toEqual({ kind: 'count', count: 2 });
    expect(h.hash('h')).toEqual([
      ['a', '3'],
      ['b', '2'],
    ]);
    expect(h.apply({ op: 'hset', key: 'h', fields: [['b', b('9')], ['c', b('4')]] })).toEqual({ kind: 'count', count: 1 });
    expect(h.hash('h')).toEqual([
      ['a', '3'],
      ['b', '9'],
      ['c', '4'],
    ]);
    expect(errorCode(h.apply({ op: 'hset', key: 'h', fields: [] }))).toBe('INVALID_ARGUMENT');
  });

  it('gets, deletes, and deletes the emptied hash', () => {
    const h = new Harness();
    h.ok({ op: 'hset', key: 'h', fields: [['a', b('1')], ['b', b('2')]] }, 'count');
    expect(s((h.read({ op: 'hget', key: 'h', field: 'a' }) as { value: Uint8Array }).value)).toBe('1');
    expect(h.read({ op: 'hget', key: 'h', field: 'z' })).toEqual({ kind: 'value', found: false, value: null });
    expect(h.read({ op: 'hget', key: 'missing', field: 'a' })).toEqual({ kind: 'value', found: false, value: null });
    expect(h.apply({ op: 'hdel', key: 'h', fields: ['a', 'a', 'z'] })).toEqual({ kind: 'count', count: 1 });
    expect(h.read({ op: 'hlen', key: 'h' })).toEqual({ kind: 'count', count: 1 });
    expect(h.apply({ op: 'hdel', key: 'h', fields: ['b'] })).toEqual({ kind: 'count', count: 1 });
    expect(h.read({ op: 'exists', keys: ['h'] })).toEqual({ kind: 'count', count: 0 });
    expect(h.read({ op: 'hgetall', key: 'h' })).toEqual({ kind: 'fields', fields: [] });
    expect(h.apply({ op: 'hdel', key: 'missing', fields: ['a'] })).toEqual({ kind: 'count', count: 0 });
  });

  it('refuses an oversized field name', () => {
    const h = new Harness({ maxKeyBytes: 4 });
    expect(errorCode(h.apply({ op: 'hset', key: 'h', fields: [['fieldname', b('1')]] }))).toBe('INVALID_ARGUMENT');
  });
});

describe('WRONGTYPE', () => {
  it('names the type the key holds, for every command on another type, and changes nothing', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 's', value: b('1') }, 'set');
    h.ok({ op: 'rpush', key: 'l', values: [b('1')] }, 'count');
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('1')]] }, 'count');
    const digest = h.sm.digest();
    const cases = [
      { command: { op: 'get', key: 'l' }, holds: 'list', wanted: 'string' },
      { command: { op: 'lpush', key: 's', values: [b('x')] }, holds: 'string', wanted: 'list' },
      { command: { op: 'rpush', key: 'h', values: [b('x')] }, holds: 'hash', wanted: 'list' },
      { command: { op: 'lpop', key: 's' }, holds: 'string', wanted: 'list' },
      { command: { op: 'rpop', key: 'h' }, holds: 'hash', wanted: 'list' },
      { command: { op: 'lindex', key: 's', index: 0 }, holds: 'string', wanted: 'list' },
      { command: { op: 'lset', key: 'h', index: 0, value: b('x') }, holds: 'hash', wanted: 'list' },
      { command: { op: 'lrange', key: 's', start: 0, stop: 1 }, holds: 'string', wanted: 'list' },
      { command: { op: 'llen', key: 'h' }, holds: 'hash', wanted: 'list' },
      { command: { op: 'hset', key: 'l', fields: [['f', b('x')]] }, holds: 'list', wanted: 'hash' },
      { command: { op: 'hget', key: 's', field: 'f' }, holds: 'string', wanted: 'hash' },
      { command: { op: 'hdel', key: 'l', fields: ['f'] }, holds: 'list', wanted: 'hash' },
      { command: { op: 'hgetall', key: 's' }, holds: 'string', wanted: 'hash' },
      { command: { op: 'hlen', key: 'l' }, holds: 'list', wanted: 'hash' },
    ] as const;
    for (const { command, holds, wanted } of cases) {
      const r = h.apply(command);
      expect(r.kind === 'error' && r.error.code).toBe('WRONGTYPE');
      expect(r.kind === 'error' && r.error.name).toBe('WrongTypeError');
      expect(r.kind === 'error' && r.error.message).toBe(`WRONGTYPE key '${command.key}' holds a ${holds}, not a ${wanted}`);
    }
    expect(h.sm.digest()).toBe(digest);
  });
});

describe('memory budget', () => {
  it('refuses a write that would exceed the budget with eviction off, and changes nothing', () => {
    const probe = new Harness();
    probe.ok({ op: 'set', key: 'a', value: new Uint8Array(100) }, 'set');
    const oneKey = probe.sm.memoryUsed();
    const h = new Harness({ maxMemoryBytes: oneKey * 2, eviction: 'noeviction' });
    h.ok({ op: 'set', key: 'a', value: new Uint8Array(100) }, 'set');
    h.ok({ op: 'set', key: 'b', value: new Uint8Array(100) }, 'set');
    expect(h.sm.memoryUsed()).toBe(oneKey * 2);
    const digest = h.sm.digest();
    const r = h.apply({ op: 'set', key: 'c', value: new Uint8Array(1) });
    expect(r.kind === 'error' && r.error.code).toBe('RESOURCE_EXHAUSTED');
    expect(r.kind === 'error' && r.error.message).toMatch(/memory budget of \d+ bytes would be exceeded .*eviction is off/);
    expect(errorCode(h.apply({ op: 'set', key: 'a', value: new Uint8Array(101) }))).toBe('RESOURCE_EXHAUSTED');
    expect(errorCode(h.apply({ op: 'rpush', key: 'l', values: [b('x')] }))).toBe('RESOURCE_EXHAUSTED');
    expect(errorCode(h.apply({ op: 'hset', key: 'h', fields: [['f', b('x')]] }))).toBe('RESOURCE_EXHAUSTED');
    expect(h.sm.digest()).toBe(digest);
    // Writes that do not grow memory still pass: same size, smaller, deletes.
    h.ok({ op: 'set', key: 'a', value: new Uint8Array(100).fill(1) }, 'set');
    h.ok({ op: 'set', key: 'b', value: new Uint8Array(50) }, 'set');
    h.ok({ op: 'set', key: 'a', value: new Uint8Array(150) }, 'set'); // uses what b gave back
    h.ok({ op: 'delete', keys: ['a'] }, 'count');
  });

  it('never refuses for memory when eviction is lru: the leader evicts instead', () => {
    const h = new Harness({ maxMemoryBytes: 1, eviction: 'lru' });
    h.ok({ op: 'set', key: 'a', value: new Uint8Array(100) }, 'set');
    expect(h.sm.memoryUsed()).toBeGreaterThan(1);
  });

  it('accounts key, value and per-entry overhead as documented, and returns to zero', () => {
    const h = new Harness();
    const [key, item, field] = [KEY_OVERHEAD_BYTES, LIST_ITEM_OVERHEAD_BYTES, HASH_FIELD_OVERHEAD_BYTES];
    h.ok({ op: 'set', key: 'ké', value: new Uint8Array(10) }, 'set'); // key is 3 UTF-8 bytes
    expect(h.sm.memoryUsed()).toBe(3 + 10 + key);
    h.ok({ op: 'rpush', key: 'l', values: [new Uint8Array(5), new Uint8Array(7)] }, 'count');
    expect(h.sm.memoryUsed()).toBe(3 + 10 + key + (1 + key + 5 + item + 7 + item));
    h.ok({ op: 'hset', key: 'h', fields: [['fé', new Uint8Array(4)]] }, 'count');
    expect(h.sm.memoryUsed()).toBe(3 + 10 + key + (1 + key + 5 + item + 7 + item) + (1 + key + 3 + 4 + field));
    h.ok({ op: 'lset', key: 'l', index: 0, value: new Uint8Array(6) }, 'ok');
    h.ok({ op: 'delete', keys: ['ké', 'l', 'h'] }, 'count');
    expect(h.sm.memoryUsed()).toBe(0);
  });
});
