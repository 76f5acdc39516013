import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_KEYS_LIMIT, StateMachine } from '../../../src/state/index.ts';
import type { KeysResult } from '../../../src/state/index.ts';
import { b, errorCode, Harness } from './helpers.ts';

function page(h: Harness, cursor: string, limit: number, pattern = '*'): KeysResult {
  const r = h.read({ op: 'keys', pattern, limit, cursor });
  if (r.kind !== 'keys') throw new Error(`keys answered ${r.kind}`);
  return r;
}

describe('Keys', () => {
  it('pages through every key exactly once, at most limit per page', () => {
    const h = new Harness();
    for (let i = 0; i < 1000; i++) h.ok({ op: 'set', key: `key:${i}`, value: b('v') }, 'set');
    const seen: string[] = [];
    let cursor = '';
    let pages = 0;
    do {
      const r = page(h, cursor, 37);
      expect(r.keys.length).toBeLessThanOrEqual(37);
      seen.push(...r.keys);
      cursor = r.nextCursor;
      pages++;
    } while (cursor !== '');
    expect(seen.length).toBe(1000);
    expect(new Set(seen).size).toBe(1000);
    expect(pages).toBeGreaterThanOrEqual(1000 / 37);
  });

  it('filters by glob, bounds the work of a page, and still finishes', () => {
    const h = new Harness();
    for (let i = 0; i < 2000; i++) h.ok({ op: 'set', key: i % 100 === 0 ? `rare:${i}` : `common:${i}`, value: b('v') }, 'set');
    const first = page(h, '', 5, 'rare:*');
    expect(first.nextCursor).not.toBe(''); // 5 keys x 10 examined per page cannot reach all 2000
    expect(h.allKeys('rare:*')).toEqual(Array.from({ length: 20 }, (_, i) => `rare:${i * 100}`).sort());
    expect(h.allKeys('common:1?')).toEqual(Array.from({ length: 10 }, (_, i) => `common:1${i}`));
  });

  it('answers the same pages on every replica, including one restored from a snapshot', () => {
    const a = new Harness();
    const c = new Harness();
    for (let i = 0; i < 300; i++) a.ok({ op: 'set', key: `k${i}`, value: b('v') }, 'set');
    for (let i = 299; i >= 0; i--) c.ok({ op: 'set', key: `k${i}`, value: b('v') }, 'set'); // another history
    const view = a.sm.exportRows();
    const restored = new Harness({}, StateMachine.fromRows({ ...view, keyRows: [...view.keyRows] }));
    let cursor = '';
    do {
      const pa = page(a, cursor, 20);
      expect(page(c, cursor, 20)).toEqual(pa);
      expect(page(restored, cursor, 20)).toEqual(pa);
      cursor = pa.nextCursor;
    } while (cursor !== '');
  });

  it('returns each key present for the whole scan exactly once, whatever changes between pages', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ add: fc.array(fc.nat(400), { maxLength: 5 }), remove: fc.array(fc.nat(400), { maxLength: 5 }) }), { maxLength: 30 }),
        fc.integer({ min: 1, max: 50 }),
        (changes, limit) => {
          const h = new Harness();
          for (let i = 0; i < 200; i++) h.ok({ op: 'set', key: `s${i}`, value: b('v') }, 'set');
          const stable = new Set(Array.from({ length: 200 }, (_, i) => `s${i}`));
          const seen = new Map<string, number>();
          let cursor = '';
          let step = 0;
          do {
            const r = page(h, cursor, limit);
            for (const key of r.keys) seen.set(key, (seen.get(key) ?? 0) + 1);
            cursor = r.nextCursor;
            const change = changes[step++ % Math.max(1, changes.length)];
            for (const n of change?.add ?? []) h.ok({ op: 'set', key: `t${n}`, value: b('v') }, 'set');
            for (const n of change?.remove ?? []) {
              h.ok({ op: 'delete', keys: [`s${n}`] }, 'count');
              stable.delete(`s${n}`);
            }
          } while (cursor !== '');
          for (const key of stable) expect(seen.get(key)).toBe(1);
          for (const count of seen.values()) expect(count).toBe(1);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('uses the default limit for 0, and refuses a bad cursor or limit', () => {
    const h = new Harness();
    for (let i = 0; i < 250; i++) h.ok({ op: 'set', key: `k${i}`, value: b('v') }, 'set');
    expect(page(h, '', 0).keys.length).toBe(DEFAULT_KEYS_LIMIT);
    for (const cursor of ['abc', '-1', '4294967296', '01', '1.5']) expect(errorCode(h.read({ op: 'keys', cursor }))).toBe('INVALID_ARGUMENT');
    expect(errorCode(h.read({ op: 'keys', limit: 10_001 }))).toBe('INVALID_ARGUMENT');
    expect(errorCode(h.read({ op: 'keys', pattern: '[oops' }))).toBe('INVALID_ARGUMENT');
    expect(page(h, '4294967295', 10).nextCursor).toBe('');
  });

  it('skips expired keys', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'live', value: b('v') }, 'set');
    h.ok({ op: 'set', key: 'dead', value: b('v'), ttlMs: 1 }, 'set');
    h.advance(1);
    expect(h.allKeys()).toEqual(['live']);
  });
});
