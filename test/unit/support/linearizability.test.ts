import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  HistoryRecorder,
  assertLinearizable,
  checkOperations,
  formatOperation,
  type IllegalResult,
  type Model,
  type Operation,
} from '../../support/linearizability.ts';
import {
  kvAppendModel,
  kvRegisterModel,
  registerModel,
  type KvAppendInput,
  type KvAppendOutput,
  type KvRegisterInput,
  type KvRegisterOutput,
  type KvRegisterState,
  type RegisterInput,
  type RegisterOutput,
} from '../../support/models.ts';

type RegisterOp = Operation<RegisterInput, RegisterOutput>;
type KvOp = Operation<KvRegisterInput, KvRegisterOutput>;

const UNKNOWN = { status: 'unknown' } as const;
const OK = { status: 'ok' } as const;

function op<I, O>(clientId: number, call: number, ret: number, input: I, output: O): Operation<I, O> {
  return { clientId, input, output, call, return: ret };
}

// Register shorthands. A time of `null` for the return means "outcome unknown".
const write = (client: number, call: number, ret: number | null, value: number): RegisterOp =>
  op(client, call, ret ?? Infinity, { kind: 'write', value }, ret === null ? UNKNOWN : OK);
const read = (client: number, call: number, ret: number, value: number | null): RegisterOp =>
  op(client, call, ret, { kind: 'read' }, { status: 'ok', value });
const cas = (client: number, call: number, ret: number | null, compare: number, set: number, outcome: 'ok' | 'fail'): RegisterOp =>
  op(client, call, ret ?? Infinity, { kind: 'cas', compare, set }, ret === null ? UNKNOWN : { status: outcome });

const verdict = <S, I, O>(model: Model<S, I, O>, ops: Operation<I, O>[]): string => checkOperations(model, ops).verdict;

describe('checkOperations', () => {
  it('accepts the empty history', () => {
    expect(checkOperations(registerModel, [])).toEqual({ verdict: 'ok' });
  });

  it('rejects operations that return before they are called', () => {
    expect(() => checkOperations(registerModel, [read(0, 5, 4, null)])).toThrow(RangeError);
    expect(() => checkOperations(registerModel, [read(0, NaN, 4, null)])).toThrow(RangeError);
  });

  it('treats operations that touch at one instant as concurrent', () => {
    // The write returns at 5 and the read is invoked at 5: either order is allowed.
    expect(verdict(registerModel, [write(0, 0, 5, 1), read(1, 5, 6, null)])).toBe('ok');
    expect(verdict(registerModel, [write(0, 0, 4, 1), read(1, 5, 6, null)])).toBe('illegal');
  });

  it('does not depend on the order operations are listed in', () => {
    const ops = [write(0, 0, 10, 1), write(1, 1, 11, 2), read(2, 12, 13, 2), read(3, 14, 15, 1)];
    const forward = checkOperations(registerModel, ops);
    const backward = checkOperations(registerModel, [...ops].reverse());
    expect(forward.verdict).toBe('illegal');
    expect(backward.verdict).toBe('illegal');
    if (forward.verdict === 'illegal' && backward.verdict === 'illegal') {
      expect(backward.culprit).toBe(forward.culprit);
    }
  });

  it('gives up deterministically after maxSteps, and on a timeout', () => {
    const hard = unsatisfiableAppends(10);
    const limited = checkOperations(kvAppendModel, hard, { maxSteps: 5_000 });
    expect(limited).toEqual({ verdict: 'unknown', reason: 'step-limit', partition: 0 });
    expect(checkOperations(kvAppendModel, hard, { maxSteps: 5_000 })).toEqual(limited);
    expect(checkOperations(kvAppendModel, hard, { timeoutMs: 0 })).toMatchObject({ verdict: 'unknown', reason: 'timeout' });
    expect(() => assertLinearizable(kvAppendModel, hard, { maxSteps: 5_000 })).toThrow(/gave up \(step-limit\)/);
  });

  it('reports a violation in one part even while another part is still being searched', () => {
    // Part "a" needs an exhaustive search; part "b" fails at once.
    const ops: Operation<KvAppendInput, KvAppendOutput>[] = [
      ...unsatisfiableAppends(10),
      op(1, 0, 1, { kind: 'append', key: 'b', value: 'x' }, OK),
      op(1, 2, 3, { kind: 'get', key: 'b' }, { status: 'ok', value: '' }),
    ];
    const result = checkOperations(kvAppendModel, ops, { maxSteps: 50_000 });
    expect(result).toMatchObject({ verdict: 'illegal', partition: 1, culprit: ops[ops.length - 1] });
  });
});

describe('explanations', () => {
  // Client 2 reads 1 after the write of 2 completed: a stale read.
  const stale = [write(0, 0, 2, 1), write(1, 3, 5, 2), read(2, 6, 8, 1), read(0, 9, 10, 2)];

  it('name the operation whose response cannot be linearized, and what preceded it', () => {
    const result = checkOperations(registerModel, stale);
    if (result.verdict !== 'illegal') throw new Error(`expected illegal, got ${result.verdict}`);
    expect(result.culprit).toBe(stale[2]);
    expect(result.longestPrefix).toEqual([stale[0], stale[1]]);
    expect(result.pending).toEqual([stale[2]]);
    expect(result.explanation).toContain('#2 client 2 [6, 8] read() -> 1');
    expect(result.explanation).toContain('#1 client 1 [3, 5] write(2)   => 2');
    expect(result.explanation).toContain('From its final state 2, no legal continuation includes #2');
  });

  it('list the concurrent candidates, and mark unknown return times', () => {
    const ops = [write(0, 0, 1, 1), write(1, 2, null, 3), read(2, 3, 4, 2)];
    const result = checkOperations(registerModel, ops);
    if (result.verdict !== 'illegal') throw new Error(`expected illegal, got ${result.verdict}`);
    // The deepest dead end: even with the unknown write applied, the read cannot be placed.
    expect(result.longestPrefix).toEqual([ops[0], ops[1]]);
    expect(result.pending).toEqual([ops[2]]);
    expect(result.explanation).toContain('#1 client 1 [2, ?] write(3) -> unknown   => 3');
  });

  it('say which partition failed, numbering operations as the caller did', () => {
    const ops: KvOp[] = [
      op(0, 0, 1, { kind: 'put', key: 'y', value: 'a' }, OK),
      op(1, 0, 1, { kind: 'put', key: 'x', value: 'a' }, OK),
      op(0, 2, 3, { kind: 'get', key: 'x' }, { status: 'ok', value: 'a' }),
      op(1, 2, 3, { kind: 'get', key: 'y' }, { status: 'ok', value: null }),
    ];
    const result = checkOperations(kvRegisterModel, ops);
    if (result.verdict !== 'illegal') throw new Error(`expected illegal, got ${result.verdict}`);
    expect(result.partition).toBe(1); // keys sort as x, y
    expect(result.explanation).toContain('(partition 1 of 2, 2 operations)');
    expect(result.explanation).toContain('#3 client 1 [2, 3] get("y") -> null');
    expect(() => assertLinearizable(kvRegisterModel, ops)).toThrow(/get\("y"\) -> null/);
  });

  it('cut long states to their end', () => {
    const long = 'x'.repeat(500);
    const ops: Operation<KvAppendInput, KvAppendOutput>[] = [
      op(0, 0, 1, { kind: 'put', key: 'k', value: long }, OK),
      op(0, 2, 3, { kind: 'get', key: 'k' }, { status: 'ok', value: '' }),
    ];
    const result = checkOperations(kvAppendModel, ops);
    if (result.verdict !== 'illegal') throw new Error(`expected illegal, got ${result.verdict}`);
    expect(result.explanation).toContain('(502 chars)');
  });

  it('format operations without a describeOperation hook as JSON', () => {
    const bare: Model<number, string, number> = { init: () => 0, step: (s) => ({ ok: true, state: s }), stateKey: String };
    expect(formatOperation(bare, op(7, 1, Infinity, 'inc', 3), 4)).toBe('#4 client 7 [1, ?] "inc" -> 3');
  });
});

describe('registerModel', () => {
  it('reads nil before any write, and the last write after it', () => {
    expect(verdict(registerModel, [read(0, 0, 1, null), write(0, 2, 3, 1), read(1, 4, 5, 1)])).toBe('ok');
    expect(verdict(registerModel, [write(0, 0, 1, 1), read(1, 2, 3, null)])).toBe('illegal');
  });

  it('rejects a stale read', () => {
    expect(verdict(registerModel, [write(0, 0, 1, 1), write(0, 2, 3, 2), read(1, 4, 5, 1)])).toBe('illegal');
  });

  it('lets concurrent writes take effect in either order, but only one order', () => {
    const writes = [write(0, 0, 10, 1), write(1, 0, 10, 2)];
    expect(verdict(registerModel, [...writes, read(2, 11, 12, 1)])).toBe('ok');
    expect(verdict(registerModel, [...writes, read(2, 11, 12, 2)])).toBe('ok');
    expect(verdict(registerModel, [...writes, read(2, 11, 12, 3)])).toBe('illegal');
    expect(verdict(registerModel, [...writes, read(2, 11, 12, 2), read(3, 13, 14, 1)])).toBe('illegal');
    // A read during the writes may see the register flip between them.
    expect(verdict(registerModel, [...writes, read(2, 1, 2, 2), read(3, 3, 9, 1), read(2, 11, 12, 1)])).toBe('ok');
  });

  it('lets a write with an unknown outcome take effect at any time after its call, or never', () => {
    const lost = write(0, 2, null, 1);
    expect(verdict(registerModel, [lost, read(1, 3, 4, null), read(1, 5, 6, null)])).toBe('ok');
    expect(verdict(registerModel, [lost, read(1, 3, 4, null), read(1, 50, 60, 1)])).toBe('ok');
    expect(verdict(registerModel, [lost, read(1, 3, 4, 1), read(1, 5, 6, null)])).toBe('illegal');
    expect(verdict(registerModel, [lost, read(1, 0, 1, 1)])).toBe('illegal');
  });

  it('takes a failed cas to have seen a value other than its compare, and to have changed nothing', () => {
    expect(verdict(registerModel, [write(0, 0, 1, 1), cas(1, 2, 3, 1, 2, 'fail')])).toBe('illegal');
    expect(verdict(registerModel, [write(0, 0, 1, 1), cas(1, 2, 3, 2, 3, 'fail'), read(1, 4, 5, 1)])).toBe('ok');
    expect(verdict(registerModel, [write(0, 0, 1, 1), cas(1, 2, 3, 2, 3, 'fail'), read(1, 4, 5, 3)])).toBe('illegal');
    // Failing against a concurrent write is fine.
    expect(verdict(registerModel, [write(0, 0, 1, 1), write(2, 2, 10, 2), cas(1, 3, 4, 1, 3, 'fail')])).toBe('ok');
  });

  it('applies a successful cas only when the compare matched', () => {
    expect(verdict(registerModel, [write(0, 0, 1, 1), cas(1, 2, 3, 1, 2, 'ok'), read(0, 4, 5, 2)])).toBe('ok');
    expect(verdict(registerModel, [write(0, 0, 1, 1), cas(1, 2, 3, 2, 3, 'ok')])).toBe('illegal');
    expect(verdict(registerModel, [cas(1, 0, 1, 1, 2, 'ok')])).toBe('illegal');
  });

  it('lets a cas with an unknown outcome apply or not, but only if its compare matched', () => {
    const base = [write(0, 0, 1, 1), cas(1, 2, null, 1, 2, 'ok')];
    expect(verdict(registerModel, [...base, read(0, 3, 4, 2)])).toBe('ok');
    expect(verdict(registerModel, [...base, read(0, 3, 4, 1)])).toBe('ok');
    expect(verdict(registerModel, [...base, read(0, 3, 4, 2), read(0, 5, 6, 1)])).toBe('illegal');
    expect(verdict(registerModel, [write(0, 0, 1, 5), cas(1, 2, null, 1, 2, 'ok'), read(0, 3, 4, 2)])).toBe('illegal');
  });

  it('takes a read with an unknown outcome to constrain nothing', () => {
    const unknownRead: RegisterOp = op(1, 2, Infinity, { kind: 'read' }, UNKNOWN);
    expect(verdict(registerModel, [write(0, 0, 1, 1), unknownRead, read(0, 3, 4, 1)])).toBe('ok');
  });

  it('refuses an ok read without a value', () => {
    expect(() => checkOperations(registerModel, [op(0, 0, 1, { kind: 'read' }, OK)])).toThrow(TypeError);
  });
});

describe('kvAppendModel', () => {
  const append = (call: number, ret: number, key: string, value: string) =>
    op<KvAppendInput, KvAppendOutput>(0, call, ret, { kind: 'append', key, value }, OK);
  const put = (call: number, ret: number, key: string, value: string) =>
    op<KvAppendInput, KvAppendOutput>(0, call, ret, { kind: 'put', key, value }, OK);
  const get = (call: number, ret: number, key: string, value: string) =>
    op<KvAppendInput, KvAppendOutput>(1, call, ret, { kind: 'get', key }, { status: 'ok', value });

  it('reads "" for a key never written, and concatenates appends', () => {
    expect(verdict(kvAppendModel, [get(0, 1, 'k', ''), append(2, 3, 'k', 'a'), append(4, 5, 'k', 'b'), get(6, 7, 'k', 'ab')])).toBe('ok');
    expect(verdict(kvAppendModel, [append(0, 1, 'k', 'a'), append(2, 3, 'k', 'b'), get(4, 5, 'k', 'ba')])).toBe('illegal');
  });

  it('lets put replace the value, and keeps keys apart', () => {
    expect(verdict(kvAppendModel, [append(0, 1, 'k', 'a'), put(2, 3, 'k', 'z'), append(4, 5, 'j', 'q'), get(6, 7, 'k', 'z')])).toBe('ok');
    expect(verdict(kvAppendModel, [append(0, 1, 'k', 'a'), get(2, 3, 'j', 'a')])).toBe('illegal');
  });

  it('orders concurrent appends as a later get shows', () => {
    const appends = [append(0, 10, 'k', 'a'), append(0, 10, 'k', 'b')];
    expect(verdict(kvAppendModel, [...appends, get(11, 12, 'k', 'ba')])).toBe('ok');
    expect(verdict(kvAppendModel, [...appends, get(5, 6, 'k', 'b'), get(11, 12, 'k', 'ab')])).toBe('illegal');
  });
});

describe('kvRegisterModel', () => {
  const get = (client: number, call: number, ret: number, key: string, value: string | null): KvOp =>
    op(client, call, ret, { kind: 'get', key }, { status: 'ok', value });
  const put = (client: number, call: number, ret: number | null, key: string, value: string): KvOp =>
    op(client, call, ret ?? Infinity, { kind: 'put', key, value }, ret === null ? UNKNOWN : OK);
  const kvCas = (
    client: number,
    call: number,
    ret: number | null,
    key: string,
    expected: string | null,
    value: string,
    applied: boolean,
  ): KvOp =>
    op(client, call, ret ?? Infinity, { kind: 'cas', key, expected, value }, ret === null ? UNKNOWN : { status: 'ok', applied });

  it('starts every key absent', () => {
    expect(verdict(kvRegisterModel, [get(0, 0, 1, 'a', null), put(0, 2, 3, 'a', 'v'), get(0, 4, 5, 'b', null)])).toBe('ok');
    expect(verdict(kvRegisterModel, [get(0, 0, 1, 'a', '')])).toBe('illegal');
  });

  it('rejects a stale read', () => {
    expect(verdict(kvRegisterModel, [put(0, 0, 1, 'k', 'a'), put(0, 2, 3, 'k', 'b'), get(1, 4, 5, 'k', 'a')])).toBe('illegal');
  });

  it('lets concurrent puts take effect in either order', () => {
    const puts = [put(0, 0, 10, 'k', 'a'), put(1, 0, 10, 'k', 'b')];
    expect(verdict(kvRegisterModel, [...puts, get(2, 11, 12, 'k', 'a')])).toBe('ok');
    expect(verdict(kvRegisterModel, [...puts, get(2, 11, 12, 'k', 'b')])).toBe('ok');
    expect(verdict(kvRegisterModel, [...puts, get(2, 11, 12, 'k', null)])).toBe('illegal');
  });

  it('lets a put with an unknown outcome appear or not', () => {
    const lost = put(0, 0, null, 'k', 'a');
    expect(verdict(kvRegisterModel, [lost, get(1, 1, 2, 'k', null)])).toBe('ok');
    expect(verdict(kvRegisterModel, [lost, get(1, 1, 2, 'k', 'a')])).toBe('ok');
    expect(verdict(kvRegisterModel, [lost, get(1, 1, 2, 'k', 'a'), get(1, 3, 4, 'k', null)])).toBe('illegal');
  });

  it('applies cas(null -> v) only to an absent key', () => {
    expect(verdict(kvRegisterModel, [kvCas(0, 0, 1, 'k', null, 'v', true), get(0, 2, 3, 'k', 'v')])).toBe('ok');
    expect(verdict(kvRegisterModel, [put(0, 0, 1, 'k', 'a'), kvCas(1, 2, 3, 'k', null, 'v', true)])).toBe('illegal');
    expect(verdict(kvRegisterModel, [put(0, 0, 1, 'k', 'a'), kvCas(1, 2, 3, 'k', null, 'v', false), get(1, 4, 5, 'k', 'a')])).toBe('ok');
  });

  it('takes a cas that did not apply to have seen another value', () => {
    expect(verdict(kvRegisterModel, [put(0, 0, 1, 'k', 'a'), kvCas(1, 2, 3, 'k', 'a', 'b', false)])).toBe('illegal');
    expect(verdict(kvRegisterModel, [put(0, 0, 1, 'k', 'a'), kvCas(1, 2, 3, 'k', 'a', 'b', true), get(0, 4, 5, 'k', 'b')])).toBe('ok');
    // The empty string is a value, not absence.
    expect(verdict(kvRegisterModel, [put(0, 0, 1, 'k', ''), kvCas(1, 2, 3, 'k', null, 'b', false)])).toBe('ok');
  });

  it('lets a cas with an unknown outcome apply only if its expectation held', () => {
    const base = [put(0, 0, 1, 'k', 'a'), kvCas(1, 2, null, 'k', 'a', 'b', true)];
    expect(verdict(kvRegisterModel, [...base, get(0, 3, 4, 'k', 'b')])).toBe('ok');
    expect(verdict(kvRegisterModel, [...base, get(0, 3, 4, 'k', 'a')])).toBe('ok');
    expect(verdict(kvRegisterModel, [put(0, 0, 1, 'k', 'z'), kvCas(1, 2, null, 'k', 'a', 'b', true), get(0, 3, 4, 'k', 'b')])).toBe(
      'illegal',
    );
  });

  it('refuses ok outputs that lack their value', () => {
    expect(() => checkOperations(kvRegisterModel, [op(0, 0, 1, { kind: 'get', key: 'k' }, OK)])).toThrow(TypeError);
    expect(() =>
      checkOperations(kvRegisterModel, [op(0, 0, 1, { kind: 'cas', key: 'k', expected: null, value: 'v' }, OK)]),
    ).toThrow(TypeError);
  });
});

describe('HistoryRecorder', () => {
  it('records completed operations, drops discarded ones and leaves open ones unknown', () => {
    const recorder = new HistoryRecorder<KvRegisterInput, KvRegisterOutput>();
    const a = recorder.invoke(1, { kind: 'put', key: 'k', value: 'a' }, 10);
    const b = recorder.invoke(2, { kind: 'put', key: 'k', value: 'b' }, 11);
    const c = recorder.invoke(3, { kind: 'get', key: 'k' }, 12);
    recorder.complete(a, OK, 15);
    recorder.discard(b);
    expect(() => recorder.complete(a, OK, 16)).toThrow(/not open/);
    expect(() => recorder.complete(c, OK, 5)).toThrow(RangeError);
    expect(recorder.operations(UNKNOWN)).toEqual([
      { clientId: 1, input: { kind: 'put', key: 'k', value: 'a' }, output: OK, call: 10, return: 15 },
      { clientId: 3, input: { kind: 'get', key: 'k' }, output: UNKNOWN, call: 12, return: Infinity },
    ]);
  });
});

// ---------------------------------------------------------------------------
// Randomized: the checker against brute force on small histories, and on
// larger histories produced by a system that is linearizable by construction.

/** Every order of every allowed subset, directly from the definition. */
function bruteForce<S, I, O>(model: Model<S, I, O>, ops: readonly Operation<I, O>[]): boolean {
  const optional = ops.filter((o) => o.return === Infinity);
  const required = ops.filter((o) => o.return !== Infinity);
  for (let mask = 0; mask < 1 << optional.length; mask++) {
    const chosen = [...required, ...optional.filter((_, i) => mask & (1 << i))];
    const search = (state: S, left: Operation<I, O>[]): boolean => {
      if (left.length === 0) return true;
      return left.some((candidate) => {
        if (left.some((other) => other.return < candidate.call)) return false;
        const result = model.step(state, candidate.input, candidate.output);
        return result.ok && search(result.state, left.filter((o) => o !== candidate));
      });
    };
    if (search(model.init(), chosen)) return true;
  }
  return false;
}

/** kvRegisterModel over the whole store, without partitioning: the reference for partitioned checks. */
const wholeStoreModel: Model<ReadonlyMap<string, KvRegisterState>, KvRegisterInput, KvRegisterOutput> = {
  init: () => new Map(),
  step(store, input, output) {
    const result = kvRegisterModel.step(store.get(input.key) ?? null, input, output);
    return { ok: result.ok, state: new Map(store).set(input.key, result.state) };
  },
  stateKey: (store) => JSON.stringify([...store].sort()),
};

const timing = { client: fc.nat(3), call: fc.nat(12), length: fc.nat(6) };

const randomRegisterOp = fc
  .record({
    ...timing,
    kind: fc.constantFrom('read', 'write', 'cas'),
    a: fc.integer({ min: 1, max: 2 }),
    b: fc.integer({ min: 1, max: 2 }),
    seen: fc.constantFrom(null, 1, 2),
    status: fc.constantFrom('ok', 'ok', 'fail', 'unknown'),
  })
  .map(({ client, call, length, kind, a, b, seen, status }): RegisterOp => {
    const input: RegisterInput = kind === 'read' ? { kind } : kind === 'write' ? { kind, value: a } : { kind, compare: a, set: b };
    if (status === 'unknown') return op(client, call, Infinity, input, UNKNOWN);
    const output: RegisterOutput = status === 'fail' ? { status } : kind === 'read' ? { status, value: seen } : { status };
    return op(client, call, call + length, input, output);
  });

const randomKvOp = fc
  .record({
    ...timing,
    kind: fc.constantFrom('get', 'put', 'cas'),
    key: fc.constantFrom('x', 'y'),
    value: fc.constantFrom('a', 'b'),
    expected: fc.constantFrom(null, 'a', 'b'),
    seen: fc.constantFrom(null, 'a', 'b'),
    applied: fc.boolean(),
    unknown: fc.boolean(),
  })
  .map(({ client, call, length, kind, key, value, expected, seen, applied, unknown }): KvOp => {
    const input: KvRegisterInput = kind === 'get' ? { kind, key } : kind === 'put' ? { kind, key, value } : { kind, key, expected, value };
    if (unknown) return op(client, call, Infinity, input, UNKNOWN);
    const output: KvRegisterOutput = kind === 'get' ? { status: 'ok', value: seen } : kind === 'cas' ? { status: 'ok', applied } : OK;
    return op(client, call, call + length, input, output);
  });

describe('against brute force', () => {
  it('agrees on random register histories', () => {
    const seen = { ok: 0, illegal: 0 };
    fc.assert(
      fc.property(fc.array(randomRegisterOp, { minLength: 1, maxLength: 6 }), (ops) => {
        const result = checkOperations(registerModel, ops);
        expect(result.verdict).toBe(bruteForce(registerModel, ops) ? 'ok' : 'illegal');
        if (result.verdict === 'ok' || result.verdict === 'illegal') seen[result.verdict]++;
        if (result.verdict === 'illegal') expectCoherentIllegal(registerModel, ops, result);
      }),
      { numRuns: 400 },
    );
    expect(seen.ok).toBeGreaterThan(20);
    expect(seen.illegal).toBeGreaterThan(20);
  });

  it('agrees on random two-key histories, checked per key', () => {
    fc.assert(
      fc.property(fc.array(randomKvOp, { minLength: 1, maxLength: 6 }), (ops) => {
        expect(checkOperations(kvRegisterModel, ops).verdict).toBe(bruteForce(wholeStoreModel, ops) ? 'ok' : 'illegal');
      }),
      { numRuns: 300 },
    );
  });
});

/** What an illegal verdict claims about its prefix and pending set, checked against the history. */
function expectCoherentIllegal<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  result: IllegalResult<I, O>,
): void {
  const { culprit, longestPrefix, pending } = result;
  expect(pending).toContain(culprit);
  expect(longestPrefix).not.toContain(culprit);
  // The prefix is legal, in an order that respects real time.
  let state = model.init();
  longestPrefix.forEach((o, i) => {
    const step = model.step(state, o.input, o.output);
    expect(step.ok).toBe(true);
    state = step.state;
    for (const later of longestPrefix.slice(i + 1)) expect(later.return < o.call).toBe(false);
  });
  // Everything that completed before the culprit's response is in it; the
  // pending operations were all invoked before that response.
  for (const o of ops) if (o.return < culprit.return) expect(longestPrefix).toContain(o);
  for (const o of pending) expect(o.call <= culprit.return).toBe(true);
}

describe('on histories of a linearizable system', () => {
  // Clients run operations against one atomic register per key; each takes
  // effect at a random instant inside its interval. Some responses are lost
  // (the outcome becomes unknown), and some of those operations never ran.
  const event = fc.record({
    client: fc.nat(7),
    call: fc.nat(200),
    before: fc.nat(20),
    after: fc.nat(20),
    kind: fc.constantFrom('get', 'put', 'cas'),
    key: fc.constantFrom('x', 'y', 'z'),
    value: fc.constantFrom('a', 'b', 'c'),
    expected: fc.constantFrom(null, 'a', 'b', 'c'),
    fate: fc.constantFrom('answered', 'answered', 'answered', 'lost', 'never-ran'),
  });

  it('accepts every one', () => {
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 60, size: 'max' }), (events) => {
        const store = new Map<string, string | null>();
        const ops: KvOp[] = [];
        const byEffect = events
          .map((e) => ({ ...e, effect: e.call + e.before }))
          .filter((e) => e.fate !== 'never-ran')
          .sort((p, q) => p.effect - q.effect);
        for (const e of byEffect) {
          const current = store.get(e.key) ?? null;
          let input: KvRegisterInput;
          let output: KvRegisterOutput;
          if (e.kind === 'get') {
            input = { kind: 'get', key: e.key };
            output = { status: 'ok', value: current };
          } else if (e.kind === 'put') {
            input = { kind: 'put', key: e.key, value: e.value };
            output = OK;
            store.set(e.key, e.value);
          } else {
            input = { kind: 'cas', key: e.key, expected: e.expected, value: e.value };
            output = { status: 'ok', applied: current === e.expected };
            if (current === e.expected) store.set(e.key, e.value);
          }
          if (e.fate === 'lost') ops.push(op(e.client, e.call, Infinity, input, UNKNOWN));
          else ops.push(op(e.client, e.call, e.effect + e.after, input, output));
        }
        for (const e of events) {
          if (e.fate !== 'never-ran') continue;
          const input: KvRegisterInput =
            e.kind === 'get' ? { kind: 'get', key: e.key } : { kind: 'put', key: e.key, value: e.value };
          ops.push(op(e.client, e.call, Infinity, input, UNKNOWN));
        }
        expect(checkOperations(kvRegisterModel, ops, { maxSteps: 2_000_000 }).verdict).toBe('ok');
      }),
      { numRuns: 200 },
    );
  });
});

/**
 * `count` appends to one key, all concurrent, then a get that no order can
 * explain: proving that takes a search through every order.
 */
function unsatisfiableAppends(count: number): Operation<KvAppendInput, KvAppendOutput>[] {
  const ops: Operation<KvAppendInput, KvAppendOutput>[] = [];
  for (let i = 0; i < count; i++) ops.push(op(i, 0, 100, { kind: 'append', key: 'a', value: String(i) }, OK));
  ops.push(op(count, 101, 102, { kind: 'get', key: 'a' }, { status: 'ok', value: 'nope' }));
  return ops;
}
