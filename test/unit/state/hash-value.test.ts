import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Arena, SMALL_VALUE_BYTES } from '../../../src/state/arena.ts';
import { fieldBytes, HashValue } from '../../../src/state/hash-value.ts';
import { StateMachine } from '../../../src/state/index.ts';
import { finish, fmix, lanes, lowbias } from '../../../src/state/hash.ts';
import { commandArb } from './arbitraries.ts';
import { b, errorCode, Harness, s } from './helpers.ts';

/**
 * The pair hash as one pass over field and value, as hash-value.ts computed it
 * before it kept the field's part per entry: the digest must not have moved.
 */
function referencePairHash(field: string, value: Uint8Array): [number, number] {
  const step = 0x9e3779b9 | 0;
  let p = 0x48415348;
  let h0 = fmix(field.length ^ p);
  let h1 = lowbias(field.length ^ p);
  const add = (k: number): void => {
    p = (p + step) | 0;
    h0 = (h0 + fmix(k ^ p)) | 0;
    h1 = (h1 + lowbias(k ^ p)) | 0;
  };
  for (let i = 0; i < field.length; i += 2) add(field.charCodeAt(i) | (i + 1 < field.length ? field.charCodeAt(i + 1) << 16 : 0));
  for (let j = 0; j < value.length; j += 4) {
    let k = 0;
    for (let t = 0; t < 4 && j + t < value.length; t++) k |= (value[j + t] as number) << (8 * t);
    add(k);
  }
  finish(h0 ^ value.length, h1 ^ value.length);
  return [lanes[0] as number, lanes[1] as number];
}

/** What a HashValue must hold for `content`: its pairs in order, the sum of the reference hashes, the accounted bytes. */
function expected(content: Map<string, Uint8Array>): { pairs: [string, number[]][]; h0: number; h1: number; bytes: number } {
  let h0 = 0;
  let h1 = 0;
  let bytes = 0;
  for (const [field, value] of content) {
    const [a, c] = referencePairHash(field, value);
    h0 = (h0 + a) | 0;
    h1 = (h1 + c) | 0;
    bytes += fieldBytes(field, value.length);
  }
  return { pairs: [...content].map(([f, v]) => [f, [...v]]), h0, h1, bytes };
}

/** The hash's content, sums settled first (overwrites leave their pair hashes pending). */
function actual(hash: HashValue): { pairs: [string, number[]][]; h0: number; h1: number; bytes: number } {
  hash.settle();
  expect(hash.unsettled).toBe(false);
  return { pairs: hash.toArray().map(([f, v]) => [f, [...v]]), h0: hash.h0, h1: hash.h1, bytes: hash.bytes };
}

const bytesOf = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (seed * 31 + i * 7) & 0xff);

describe('HashValue', () => {
  it('agrees with a Map and the one-pass pair hash after any sets and deletes (order, values, hash sums, bytes, arena slots)', () => {
    const fieldArb = fc.constantFrom('a', 'b', 'c', 'field:1', 'field:2', 'ü', '😀x', '', 'a-rather-long-field-name');
    // Lengths around the arena's classes and its limit, so overwrites move between slots and own arrays.
    const valueArb = fc.oneof(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ minLength: SMALL_VALUE_BYTES - 2, maxLength: SMALL_VALUE_BYTES + 2 }));
    const opArb = fc.oneof(
      fc.record({ set: fieldArb, value: valueArb }),
      fc.record({ del: fieldArb }),
      fc.record({ get: fieldArb }),
      // Settling and cloning at any point, between overwrites left pending.
      fc.record({ settle: fc.constant(true) }),
      fc.record({ clone: fc.constant(true) }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), (ops) => {
        const arena = new Arena();
        const hash = new HashValue(arena);
        const model = new Map<string, Uint8Array>();
        for (const op of ops) {
          if ('settle' in op) {
            hash.settle();
            expect(hash.unsettled).toBe(false);
          } else if ('clone' in op) {
            const copy = hash.clone();
            expect(copy.unsettled).toBe(false);
            expect(actual(copy)).toEqual(expected(model));
            copy.dispose();
          } else if ('set' in op) {
            expect(hash.set(op.set, op.value)).toBe(!model.has(op.set));
            model.set(op.set, op.value.slice());
          } else if ('del' in op) {
            expect(hash.delete(op.del)).toBe(model.delete(op.del));
          } else {
            const got = hash.get(op.get);
            expect(got === undefined ? undefined : [...got]).toEqual(model.has(op.get) ? [...(model.get(op.get) as Uint8Array)] : undefined);
          }
          expect(hash.size).toBe(model.size);
        }
        expect(actual(hash)).toEqual(expected(model));
        const copy = hash.clone();
        expect(actual(copy)).toEqual(expected(model));
        hash.dispose();
        copy.dispose();
        expect(arena.liveValues).toBe(0);
      }),
      { numRuns: 300 },
    );
  });

  it('leaves an overwrite\'s pair hash pending until settle(), which hashes each pending entry once, from its stored bytes', () => {
    const hash = new HashValue(new Arena());
    const model = new Map<string, Uint8Array>();
    for (let i = 0; i < 40; i++) {
      hash.set(`f${i}`, bytesOf(16, i));
      model.set(`f${i}`, bytesOf(16, i));
    }
    expect(hash.unsettled).toBe(false); // new fields are hashed at once
    const before = [hash.h0, hash.h1];
    const large = bytesOf(SMALL_VALUE_BYTES + 10, 7);
    for (let round = 0; round < 3; round++) {
      for (const i of [3, 5, 5, 39]) {
        const value = i === 39 ? large : bytesOf(16, 100 * round + i);
        hash.set(`f${i}`, value);
        model.set(`f${i}`, value);
      }
    }
    expect(hash.unsettled).toBe(true);
    expect([hash.h0, hash.h1]).toEqual(before); // the old pair hashes, still counted
    // The stored bytes are already the new ones: reads need no settle.
    expect([...(hash.get('f5') as Uint8Array)]).toEqual([...bytesOf(16, 205)]);
    // A pending entry deleted, set again and overwritten again is listed twice, and hashed once.
    hash.delete('f3');
    hash.set('f3', b('again'));
    hash.set('f3', b('and again'));
    model.delete('f3');
    model.set('f3', b('and again'));
    expect(actual(hash)).toEqual(expected(model));
  });

  it('settles before a squeeze renumbers pending entries, and a pending entry deleted at the threshold leaves no trace', () => {
    const hash = new HashValue(new Arena());
    const model = new Map<string, Uint8Array>();
    for (let i = 0; i < 64; i++) {
      hash.set(`f${i}`, bytesOf(16, i));
      model.set(`f${i}`, bytesOf(16, i));
    }
    // Overwrite the odd ones (pending), then delete even ones until the squeeze.
    for (let i = 1; i < 64; i += 2) {
      hash.set(`f${i}`, bytesOf(20, i + 1000));
      model.set(`f${i}`, bytesOf(20, i + 1000));
    }
    hash.delete('f1'); // pending and deleted
    model.delete('f1');
    for (let i = 0; i < 64 && hash.entrySlots > hash.size; i += 2) {
      hash.delete(`f${i}`);
      model.delete(`f${i}`);
    }
    expect(hash.entrySlots).toBe(hash.size); // squeezed
    expect(hash.unsettled).toBe(false);
    hash.set('f63', b('after the squeeze'));
    model.set('f63', b('after the squeeze'));
    expect(actual(hash)).toEqual(expected(model));
  });

  it('grows past its initial room, keeping insertion order', () => {
    const hash = new HashValue(new Arena());
    const model = new Map<string, Uint8Array>();
    for (let i = 0; i < 1000; i++) {
      const value = bytesOf(i % 80, i); // small and large values
      hash.set(`f${i}`, value);
      model.set(`f${i}`, value);
    }
    expect(hash.size).toBe(1000);
    expect(actual(hash)).toEqual(expected(model));
    expect(s(hash.get('f0') ?? null)).toBe(s(model.get('f0') ?? null));
  });

  it('squeezes out deleted entries once they are half, renumbering the rest; a field set again goes last', () => {
    const hash = new HashValue(new Arena());
    const model = new Map<string, Uint8Array>();
    for (let i = 0; i < 100; i++) {
      hash.set(`f${i}`, bytesOf(16, i));
      model.set(`f${i}`, bytesOf(16, i));
    }
    expect(hash.entrySlots).toBe(100);
    for (let i = 0; i < 40; i++) {
      hash.delete(`f${i * 2}`);
      model.delete(`f${i * 2}`);
    }
    expect(hash.entrySlots).toBe(100); // 40 holes of 100: not yet
    for (let i = 40; i < 50; i++) {
      hash.delete(`f${i * 2}`);
      model.delete(`f${i * 2}`);
    }
    expect(hash.entrySlots).toBe(hash.size); // the 50th hole squeezed them all out
    expect(actual(hash)).toEqual(expected(model));
    // Renumbered entries still answer, and overwrite the right slot.
    expect([...(hash.get('f99') as Uint8Array)]).toEqual([...bytesOf(16, 99)]);
    hash.set('f99', b('new value'));
    model.set('f99', b('new value'));
    hash.set('f0', b('back'));
    model.set('f0', b('back'));
    expect(hash.toArray().at(-1)?.[0]).toBe('f0');
    expect(actual(hash)).toEqual(expected(model));
  });

  it('drops holes at the end at once, and makes room by squeezing rather than growing when holes are many', () => {
    const hash = new HashValue(new Arena(), 4);
    for (const f of ['a', 'b', 'c', 'd']) hash.set(f, b(f));
    hash.delete('d');
    hash.delete('c');
    expect(hash.entrySlots).toBe(2);
    hash.delete('a'); // a hole in front: kept until room is needed
    expect(hash.entrySlots).toBe(2);
    for (const f of ['e', 'f']) hash.set(f, b(f));
    expect(hash.entrySlots).toBe(4);
    hash.set('g', b('g')); // full with one hole of four: squeezed, not grown
    expect(hash.entrySlots).toBe(4);
    expect(hash.toArray().map(([f]) => f)).toEqual(['b', 'e', 'f', 'g']);
  });

  it('hands out copies that later writes do not change, and a fresh one after each write', () => {
    const hash = new HashValue(new Arena());
    hash.set('f', b('one'));
    const first = hash.get('f');
    expect(hash.get('f')).toBe(first); // a hot field's reads share one copy
    hash.set('f', b('two'));
    expect(s(first ?? null)).toBe('one');
    expect(s(hash.get('f') ?? null)).toBe('two');
    const large = bytesOf(SMALL_VALUE_BYTES + 1, 1);
    hash.set('f', large);
    expect(hash.get('f')).toBe(large);
    hash.set('f', b('small again'));
    expect(s(hash.get('f') ?? null)).toBe('small again');
  });

  it('gives its slots back: overwrites across size classes and to and from large values leak none', () => {
    const arena = new Arena();
    const hash = new HashValue(arena);
    for (const n of [3, 12, 30, 63, 64, 200, 5, 0, 64, 9]) {
      hash.set('f', bytesOf(n, n));
      hash.set('g', bytesOf(n, n + 1));
      expect(arena.liveValues).toBe(n <= SMALL_VALUE_BYTES ? 2 : 0);
      expect([...(hash.get('f') as Uint8Array)]).toEqual([...bytesOf(n, n)]);
    }
    hash.delete('f');
    hash.delete('g');
    expect(arena.liveValues).toBe(0);
  });
});

describe('HSet through the state machine', () => {
  it('answers the number of new fields, also with a field repeated in one command', () => {
    const h = new Harness();
    expect(h.ok({ op: 'hset', key: 'h', fields: [['a', b('1')]] }, 'count').count).toBe(1);
    expect(h.ok({ op: 'hset', key: 'h', fields: [['a', b('2')]] }, 'count').count).toBe(0);
    expect(h.ok({ op: 'hset', key: 'h', fields: [['b', b('1')]] }, 'count').count).toBe(1);
    expect(h.ok({ op: 'hset', key: 'h', fields: [['c', b('1')], ['c', b('2')], ['a', b('3')]] }, 'count').count).toBe(1);
    expect(h.hash('h')).toEqual([['a', '3'], ['b', '1'], ['c', '2']]);
  });

  it('checks a field it holds against the length limit too, and checks new fields fully', () => {
    const long = 'x'.repeat(400); // 400 UTF-8 bytes: past a third of 1024, so its bytes are counted
    const h = new Harness({ maxKeyBytes: 1024 });
    h.ok({ op: 'hset', key: 'h', fields: [[long, b('1')]] }, 'count');
    h.ok({ op: 'hset', key: 'h', fields: [[long, b('2')]] }, 'count');
    expect(errorCode(h.apply({ op: 'hset', key: 'h', fields: [['y'.repeat(1025), b('1')]] }))).toBe('INVALID_ARGUMENT');
    expect(h.hash('h')).toEqual([[long, '2']]);
  });

  it('refuses a growing single-field HSet over the budget and changes nothing', () => {
    const h = new Harness({ maxMemoryBytes: 700, eviction: 'noeviction' });
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('v')]] }, 'count');
    const used = h.sm.memoryUsed();
    const digest = h.sm.digest();
    expect(errorCode(h.apply({ op: 'hset', key: 'h', fields: [['f', new Uint8Array(1000)]] }))).toBe('RESOURCE_EXHAUSTED');
    expect(errorCode(h.apply({ op: 'hset', key: 'h', fields: [['g', new Uint8Array(300)]] }))).toBe('RESOURCE_EXHAUSTED');
    expect([h.sm.memoryUsed(), h.sm.digest()]).toEqual([used, digest]);
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('w')]] }, 'count'); // same size: passes
    expect(h.hash('h')).toEqual([['f', 'w']]);
  });
});

describe('pending pair hashes and the digest', () => {
  /** HSets, HDels and other writes over a few hashes, so overwrites leave hashes pending between digests. */
  const hashCommandArb = fc.oneof(
    { weight: 4, arbitrary: fc.record({ key: fc.constantFrom('h1', 'h2', 'a'), field: fc.constantFrom('f', 'g', 'h', 'i'), value: fc.uint8Array({ maxLength: 70 }) }).map(({ key, field, value }) => ({ op: 'hset' as const, key, fields: [[field, value] as const] })) },
    { weight: 1, arbitrary: fc.record({ key: fc.constantFrom('h1', 'h2'), fields: fc.array(fc.tuple(fc.constantFrom('f', 'g', 'x'), fc.uint8Array({ maxLength: 20 })), { minLength: 1, maxLength: 4 }) }).map(({ key, fields }) => ({ op: 'hset' as const, key, fields })) },
    { weight: 1, arbitrary: fc.record({ key: fc.constantFrom('h1', 'h2'), fields: fc.array(fc.constantFrom('f', 'g', 'h', 'i'), { minLength: 1, maxLength: 3 }) }).map(({ key, fields }) => ({ op: 'hdel' as const, key, fields })) },
    { weight: 1, arbitrary: commandArb },
  );

  it('rolls a pending overwrite back with its Txn, and an export opened before it keeps the old row and digest', () => {
    const h = new Harness();
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('one')], ['g', b('two')]] }, 'count');
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('three')]] }, 'count'); // pending
    const digest = h.sm.digest();
    h.ok({ op: 'hset', key: 'h', fields: [['g', b('four')]] }, 'count'); // pending, not yet settled
    const view = h.sm.exportRows(); // settles: its digest is of f=three, g=four
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('five')]] }, 'count'); // after the export: copy-on-write
    // Txn: overwrite g, then fail on LPush to a hash; the undo log's copy goes back.
    const failed = h.apply({ op: 'txn', compares: [], success: [{ op: 'hset', key: 'h', fields: [['g', b('six')]] }, { op: 'lpush', key: 'h', values: [b('x')] }], failure: [] });
    expect(errorCode(failed)).toBe('WRONGTYPE');
    expect(h.hash('h')).toEqual([['f', 'five'], ['g', 'four']]);
    const restored = StateMachine.fromRows({ ...view, keyRows: [...view.keyRows] });
    view.close();
    expect(restored.digest()).toBe(view.digest);
    expect(new Harness({}, restored).hash('h')).toEqual([['f', 'three'], ['g', 'four']]);
    h.ok({ op: 'hset', key: 'h', fields: [['f', b('three')]] }, 'count');
    h.ok({ op: 'hset', key: 'h', fields: [['g', b('two')]] }, 'count');
    expect(h.sm.digest()).toBe(digest);
  });

  it('bounds the pending list under delete-and-set-again churn by settling early, and the key\'s digest part follows', () => {
    const churned = new Harness();
    const fresh = new Harness();
    churned.ok({ op: 'hset', key: 'h', fields: [['keep', b('k')], ['f', b('0')]] }, 'count');
    for (let i = 1; i <= 20; i++) {
      // Overwrite (pending), delete, set again (a new entry at the end, hashed at once): the old entry number is listed again.
      churned.ok({ op: 'hset', key: 'h', fields: [['f', b(`v${i}`)]] }, 'count');
      churned.ok({ op: 'hdel', key: 'h', fields: ['f'] }, 'count');
      churned.ok({ op: 'hset', key: 'h', fields: [['f', b(`w${i}`)]] }, 'count');
      churned.ok({ op: 'hset', key: 'h', fields: [['f', b(`x${i}`)]] }, 'count');
    }
    fresh.ok({ op: 'hset', key: 'h', fields: [['keep', b('k')], ['f', b('x20')]] }, 'count');
    expect(churned.hash('h')).toEqual([['keep', 'k'], ['f', 'x20']]);
    expect(churned.sm.evictionCandidates(Infinity)).toEqual(fresh.sm.evictionCandidates(Infinity));
    expect(churned.sm.digest()).toBe(fresh.sm.digest());
  });

  it('reads the same digest and fingerprints whether it is read after every entry or only at the end, and as a rebuilt state', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(hashCommandArb, fc.boolean()), { maxLength: 60 }), (steps) => {
        const often = new Harness();
        const once = new Harness();
        for (const [command, look] of steps) {
          often.apply(command);
          once.apply(command);
          if (look) often.sm.digest();
          // Fingerprints go into evict entries that every replica checks: they must not depend on earlier digest reads.
          if (look) expect(once.sm.evictionCandidates(Infinity)).toEqual(often.sm.evictionCandidates(Infinity));
        }
        const view = once.sm.exportRows();
        const rows = [...view.keyRows];
        const rebuilt = StateMachine.fromRows({ ...view, keyRows: rows });
        view.close();
        expect(once.sm.digest()).toBe(often.sm.digest());
        expect(rebuilt.digest()).toBe(once.sm.digest());
      }),
      { numRuns: 200 },
    );
  });
});
