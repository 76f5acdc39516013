/**
 * Random command sequences against the reference model (model.ts): every
 * result, and the final state, must agree. Also the properties the digest,
 * snapshots, WRONGTYPE, Txn and sessions promise, over random histories.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeEntry, encodeResult, StateMachine } from '../../../src/state/index.ts';
import type { Command, KeyRow, Result } from '../../../src/state/index.ts';
import { commandArb, keyArb, opArb, plain } from './arbitraries.ts';
import { b, Harness } from './helpers.ts';
import { Model } from './model.ts';
import type { ModelResult } from './model.ts';

const KEYS = ['a', 'b', 'c', 'd', 'user:1', 'user:2', 'é'];

const stepArb = fc.record({ command: commandArb, advanceMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 30 })) });
const historyArb = fc.array(stepArb, { maxLength: 60 });

function comparable(result: Result): unknown {
  const p = plain(result) as { kind: string; keys?: string[] };
  if (p.kind === 'keys' && p.keys !== undefined) p.keys = [...p.keys].sort();
  if (p.kind === 'txn') {
    const t = p as unknown as { results: unknown[] };
    t.results = (result as Extract<Result, { kind: 'txn' }>).results.map(comparable);
  }
  return p;
}

function expectSameResult(actual: Result, expected: ModelResult, command: Command): void {
  if (expected.kind === 'unknown') {
    expect(actual.kind).toBe('count');
    return;
  }
  expect(comparable(actual), JSON.stringify(command, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v))).toEqual(expected);
}

/** The whole visible state, read through the state machine's own read path. */
function snapshotOf(h: Harness): unknown {
  const out: Record<string, unknown> = {};
  for (const key of KEYS) {
    const type = h.read({ op: 'type', key });
    const ttl = h.read({ op: 'ttl', key });
    if (type.kind !== 'type' || ttl.kind !== 'ttl') throw new Error('type/ttl');
    let value: unknown = null;
    if (type.type === 'string') value = plain(h.read({ op: 'get', key }));
    if (type.type === 'list') value = plain(h.read({ op: 'lrange', key, start: 0, stop: -1 }));
    if (type.type === 'hash') value = plain(h.read({ op: 'hgetall', key }));
    out[key] = { type: type.type, ttl: ttl.ttlMs, value };
  }
  return out;
}

function modelSnapshot(m: Model, now: number): unknown {
  const out: Record<string, unknown> = {};
  for (const key of KEYS) {
    const item = m.live(key, now);
    if (item === undefined) {
      out[key] = { type: 'none', ttl: -2, value: null };
      continue;
    }
    const ttl = item.expiresAt === null ? -1 : item.expiresAt - now;
    const v = item.value;
    if (v instanceof Uint8Array) out[key] = { type: 'string', ttl, value: { kind: 'value', found: true, value: Array.from(v) } };
    else if (Array.isArray(v)) out[key] = { type: 'list', ttl, value: { kind: 'values', values: v.map((x) => Array.from(x)) } };
    else out[key] = { type: 'hash', ttl, value: { kind: 'fields', fields: [...v].map(([f, x]) => [f, Array.from(x)]) } };
  }
  return out;
}

/** Applies a history to a fresh harness; returns it. */
function replay(history: { command: Command; advanceMs: number }[], h = new Harness()): Harness {
  for (const step of history) {
    h.advance(step.advanceMs);
    h.apply(step.command);
  }
  return h;
}

/** Deletes every stored-but-expired key, so two states that look alike also store alike. */
function sweep(h: Harness): void {
  h.apply({ op: 'expireSweep', keys: h.sm.expiredKeys(h.timeMs, 1_000_000) });
}

describe('state machine against the reference model', () => {
  it('gives the same result for every command, and ends in the same state', () => {
    fc.assert(
      fc.property(historyArb, (history) => {
        const h = new Harness();
        const model = new Model();
        for (const { command, advanceMs } of history) {
          h.advance(advanceMs);
          const digestBefore = h.sm.digest();
          const memoryBefore = h.sm.memoryUsed();
          const actual = h.apply(command);
          expectSameResult(actual, model.run(command, h.timeMs), command);
          if (actual.kind === 'error') {
            // A failed command (WRONGTYPE, OUT_OF_RANGE, a failed Txn...) changes nothing.
            expect(h.sm.digest()).toBe(digestBefore);
            expect(h.sm.memoryUsed()).toBe(memoryBefore);
          }
        }
        expect(snapshotOf(h)).toEqual(modelSnapshot(model, h.timeMs));
        expect(h.allKeys()).toEqual(KEYS.filter((k) => model.live(k, h.timeMs) !== undefined).sort());
        expect(h.sm.keyCount()).toBe(KEYS.filter((k) => model.live(k, h.timeMs) !== undefined).length);
      }),
      { numRuns: 400 },
    );
  });

  it('answers reads through read() exactly as through the log, without changing anything', () => {
    const readArb = opArb.filter((c) => ['get', 'exists', 'ttl', 'type', 'keys', 'size', 'lindex', 'lrange', 'llen', 'hget', 'hgetall', 'hlen'].includes(c.op));
    fc.assert(
      fc.property(historyArb, fc.array(readArb, { minLength: 1, maxLength: 10 }), (history, reads) => {
        const h = replay(history);
        for (const command of reads) {
          const digest = h.sm.digest();
          const viaRead = h.read(command);
          expect(h.sm.digest()).toBe(digest);
          expect(comparable(h.apply(command))).toEqual(comparable(viaRead));
        }
      }),
      { numRuns: 150 },
    );
  });

  it('refuses a write on the read path', () => {
    const h = new Harness();
    const r = h.sm.read({ op: 'set', key: 'k', value: new Uint8Array(1) }, h.timeMs);
    expect(r.kind === 'error' && r.error.code).toBe('INVALID_ARGUMENT');
    expect(h.sm.keyCount()).toBe(0);
  });
});

describe('digest', () => {
  it('is the same for the same state reached by different paths', () => {
    fc.assert(
      fc.property(historyArb, fc.integer({ min: 0, max: 1000 }), (history, seed) => {
        const h = replay(history);
        sweep(h);
        // Rebuild the visible state on a fresh machine in a shuffled key order, lists by
        // pushing at the front in reverse, hashes field by field in reverse order.
        const rebuilt = new Harness();
        rebuilt.timeMs = h.timeMs;
        const keys = [...KEYS].sort((x, y) => ((x.charCodeAt(0) * 31 + seed) % 7) - ((y.charCodeAt(0) * 31 + seed) % 7));
        for (const key of keys) {
          const type = h.read({ op: 'type', key });
          if (type.kind !== 'type' || type.type === 'none') continue;
          if (type.type === 'string') {
            const v = h.read({ op: 'get', key });
            if (v.kind === 'value' && v.value !== null) rebuilt.apply({ op: 'set', key, value: v.value });
          } else if (type.type === 'list') {
            const v = h.read({ op: 'lrange', key, start: 0, stop: -1 });
            if (v.kind === 'values') for (const item of [...v.values].reverse()) rebuilt.apply({ op: 'lpush', key, values: [item] });
          } else {
            const v = h.read({ op: 'hgetall', key });
            if (v.kind === 'fields') for (const pair of [...v.fields].reverse()) rebuilt.apply({ op: 'hset', key, fields: [pair] });
          }
          const ttl = h.read({ op: 'ttl', key });
          if (ttl.kind === 'ttl' && ttl.ttlMs > 0) rebuilt.apply({ op: 'expire', key, ttlMs: ttl.ttlMs });
        }
        expect(rebuilt.sm.digest()).toBe(h.sm.digest());
        expect(rebuilt.sm.memoryUsed()).toBe(h.sm.memoryUsed());
      }),
      { numRuns: 200 },
    );
  });

  it('changes when anything visible changes', () => {
    const h = new Harness();
    const seen = new Set<string>([h.sm.digest()]);
    const steps: Command[] = [
      { op: 'set', key: 'a', value: new Uint8Array([1]) },
      { op: 'set', key: 'a', value: new Uint8Array([2]) },
      { op: 'expire', key: 'a', ttlMs: 100 },
      { op: 'expire', key: 'a', ttlMs: 200 },
      { op: 'rpush', key: 'l', values: [new Uint8Array([1]), new Uint8Array([2])] },
      { op: 'lset', key: 'l', index: 0, value: new Uint8Array([2]) }, // [2, 2]
      { op: 'lset', key: 'l', index: 1, value: new Uint8Array([1]) }, // [2, 1]: order matters
      { op: 'hset', key: 'h', fields: [['f', new Uint8Array([1])]] },
      { op: 'hset', key: 'h', fields: [['g', new Uint8Array([1])]] },
      { op: 'delete', keys: ['a'] },
    ];
    for (const step of steps) {
      h.apply(step);
      expect(seen.has(h.sm.digest())).toBe(false);
      seen.add(h.sm.digest());
    }
  });

  it('tells apart hashes whose fields are swapped between keys', () => {
    // A hash key's part is linear in its field sum (digest.ts): the key's factor must keep these apart.
    const one = new Harness();
    const other = new Harness();
    for (let i = 0; i < 50; i++) {
      const [x, y] = [`h:${i}`, `h:${i + 1}`];
      one.ok({ op: 'hset', key: x, fields: [['f', b(`v${i}`)]] }, 'count');
      one.ok({ op: 'hset', key: y, fields: [['f', b(`w${i}`)]] }, 'count');
      other.ok({ op: 'hset', key: x, fields: [['f', b(`w${i}`)]] }, 'count');
      other.ok({ op: 'hset', key: y, fields: [['f', b(`v${i}`)]] }, 'count');
      expect(one.sm.digest()).not.toBe(other.sm.digest());
      one.ok({ op: 'clear' }, 'count');
      other.ok({ op: 'clear' }, 'count');
    }
  });

  it('tells apart hash fields whose value or name differs in one or two bits', () => {
    // Structured differences, not random ones: a field hash that sums weakly mixed words
    // lets two such changes cancel (see fieldPart and valueHash in hash-value.ts).
    const h = new Harness();
    h.ok({ op: 'hset', key: 'h', fields: [['other', b('unchanged')]] }, 'count');
    const base = Uint8Array.from({ length: 16 }, (_, i) => (i * 37 + 11) & 0xff);
    const digests = new Set<string>();
    let states = 0;
    const flipped = (bits: number[]): Uint8Array => {
      const v = base.slice();
      for (const bit of bits) v[bit >> 3] = (v[bit >> 3] as number) ^ (1 << (bit & 7));
      return v;
    };
    for (let i = -1; i < 128; i++) {
      for (let j = i + 1; j < 128; j++) {
        h.ok({ op: 'hset', key: 'h', fields: [['field:1', flipped(i < 0 ? [j] : [i, j])]] }, 'count');
        digests.add(h.sm.digest());
        states++;
      }
    }
    const name = 'field:1';
    for (let i = -1; i < name.length * 7; i++) {
      for (let j = i + 1; j < name.length * 7; j++) {
        const codes = [...name].map((c) => c.charCodeAt(0));
        for (const bit of i < 0 ? [j] : [i, j]) codes[Math.floor(bit / 7)] = (codes[Math.floor(bit / 7)] as number) ^ (1 << bit % 7);
        const field = String.fromCharCode(...codes);
        h.ok({ op: 'hdel', key: 'h', fields: ['field:1'] }, 'count');
        h.ok({ op: 'hset', key: 'h', fields: [[field, base]] }, 'count');
        digests.add(h.sm.digest());
        states++;
        h.ok({ op: 'hdel', key: 'h', fields: [field] }, 'count');
        h.ok({ op: 'hset', key: 'h', fields: [['field:1', base]] }, 'count');
      }
    }
    expect(digests.size).toBe(states);
  });
});

describe('snapshots', () => {
  it('restore to the same digest and the same answers, and go on alike', () => {
    fc.assert(
      fc.property(historyArb, historyArb, (before, after) => {
        const h = replay(before);
        const view = h.sm.exportRows();
        const rows: KeyRow[] = [...view.keyRows];
        expect(rows.length).toBe(view.keyCount);
        const restored = new Harness({}, StateMachine.fromRows({ ...view, keyRows: rows }));
        expect(restored.sm.digest()).toBe(h.sm.digest());
        expect(restored.sm.lastAppliedIndex).toBe(h.sm.lastAppliedIndex);
        expect(restored.sm.logTimeMs).toBe(h.sm.logTimeMs);
        expect(snapshotOf(restored)).toEqual(snapshotOf(h));
        for (const { command, advanceMs } of after) {
          h.advance(advanceMs);
          restored.advance(advanceMs);
          expect(comparable(restored.apply(command))).toEqual(comparable(h.apply(command)));
        }
        expect(restored.sm.digest()).toBe(h.sm.digest());
      }),
      { numRuns: 150 },
    );
  });

  it('yield the state as of export while writes are applied between iteration steps', () => {
    fc.assert(
      fc.property(historyArb, historyArb, fc.integer({ min: 1, max: 4 }), (before, during, every) => {
        const h = replay(before);
        const expected = StateMachine.fromRows({ ...h.sm.exportRows(), keyRows: [...h.sm.exportRows().keyRows] });
        const view = h.sm.exportRows();
        const rows: KeyRow[] = [];
        let i = 0;
        for (const row of view.keyRows) {
          rows.push(row);
          // Apply a few writes after every `every` rows: they must not leak into the rows.
          if (rows.length % every === 0) {
            for (const step of during.slice(i, i + 3)) {
              h.advance(step.advanceMs);
              h.apply(step.command);
            }
            i += 3;
          }
        }
        for (const step of during.slice(i)) h.apply(step.command);
        const restored = StateMachine.fromRows({ ...view, keyRows: rows });
        expect(restored.digest()).toBe(view.digest);
        expect(restored.digest()).toBe(expected.digest());
        expect(new Set(rows.map((r) => r.key)).size).toBe(rows.length);
      }),
      { numRuns: 300 },
    );
  });
});

describe('Txn', () => {
  it('applies whole or not at all', () => {
    const txn = fc.record({
      op: fc.constant('txn' as const),
      compares: fc.constant([]),
      success: fc.array(opArb, { minLength: 1, maxLength: 6 }),
      failure: fc.constant([]),
    });
    fc.assert(
      fc.property(historyArb, txn, (history, command) => {
        const h = replay(history);
        const digest = h.sm.digest();
        const memory = h.sm.memoryUsed();
        const state = snapshotOf(h);
        const result = h.apply(command);
        if (result.kind === 'error') {
          expect(h.sm.digest()).toBe(digest);
          expect(h.sm.memoryUsed()).toBe(memory);
          expect(snapshotOf(h)).toEqual(state);
        } else {
          // Succeeded: the same as running the ops one by one.
          const oneByOne = replay(history);
          for (const op of command.success) oneByOne.apply(op);
          expect(oneByOne.sm.digest()).toBe(h.sm.digest());
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('sessions', () => {
  it('answer a retried write with the first result and do not apply it twice', () => {
    const writeArb = opArb.filter((c) => ['set', 'lpush', 'rpush', 'lpop', 'hset', 'hdel', 'delete', 'expire'].includes(c.op));
    const stepArb2 = fc.oneof(
      fc.record({ kind: fc.constant('new' as const), client: fc.constantFrom('c1', 'c2', 'c3'), command: writeArb }),
      fc.record({ kind: fc.constant('retry' as const), pick: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(stepArb2, { maxLength: 40 }), (steps) => {
        const h = new Harness();
        const plainRun = new Harness(); // the same writes, each once, without sessions
        const sequences = new Map<string, number>();
        const last = new Map<string, { sequence: number; command: Command; result: Uint8Array }>();
        for (const step of steps) {
          h.advance(1);
          plainRun.advance(1);
          if (step.kind === 'new') {
            const sequence = (sequences.get(step.client) ?? 0) + 1;
            sequences.set(step.client, sequence);
            const result = h.apply(step.command, { clientId: step.client, sequence });
            expect(comparable(plainRun.apply(step.command))).toEqual(comparable(result));
            last.set(step.client, { sequence, command: step.command, result: encodeResult(result) });
          } else {
            const clients = [...last.keys()];
            if (clients.length === 0) continue;
            const client = clients[step.pick % clients.length] as string;
            const first = last.get(client) as { sequence: number; command: Command; result: Uint8Array };
            const state = snapshotOf(h);
            const again = h.apply(first.command, { clientId: client, sequence: first.sequence });
            expect(encodeResult(again)).toEqual(first.result);
            expect(snapshotOf(h)).toEqual(state);
            if (first.sequence > 1) {
              const stale = h.apply(first.command, { clientId: client, sequence: first.sequence - 1 });
              expect(stale.kind === 'error' && stale.error.code).toBe('STALE_SEQUENCE');
            }
          }
        }
        expect(snapshotOf(h)).toEqual(snapshotOf(plainRun));
      }),
      { numRuns: 200 },
    );
  });
});

describe('apply', () => {
  it('refuses indexes that do not move forward', () => {
    const sm = new StateMachine();
    const data = encodeEntry({ timeMs: 1, session: null, command: { op: 'size' } });
    sm.apply(5, data);
    expect(() => sm.apply(5, data)).toThrow(RangeError);
    expect(() => sm.apply(4, data)).toThrow(/above the last applied index 5/);
    sm.markApplied(6);
    expect(sm.lastAppliedIndex).toBe(6);
  });

  it('never lets log time go backwards', () => {
    const h = new Harness();
    h.ok({ op: 'set', key: 'k', value: new Uint8Array(1), ttlMs: 10 }, 'set');
    const later = h.timeMs + 20;
    h.sm.apply(++h.index, encodeEntry({ timeMs: later, session: null, command: { op: 'size' } }));
    // A leader with a clock behind: the key stays expired.
    const r = h.sm.apply(++h.index, encodeEntry({ timeMs: h.timeMs, session: null, command: { op: 'get', key: 'k' } }));
    expect(r).toMatchObject({ found: false });
    expect(h.sm.logTimeMs).toBe(later);
    expect(h.sm.read({ op: 'exists', keys: ['k'] }, 0)).toMatchObject({ count: 0 });
  });

  it('keys generator covers the key space used by the property tests', () => {
    fc.assert(fc.property(keyArb, (k) => KEYS.includes(k)));
  });
});
