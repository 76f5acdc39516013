/** fast-check generators of commands, over a small key space so commands meet each other. */
import fc from 'fast-check';
import type { Command, Compare, Result, TxnOpCommand } from '../../../src/state/index.ts';
import { InvalidArgumentError, OutOfRangeError, WrongTypeError } from '../../../src/state/index.ts';

export const keyArb = fc.constantFrom('a', 'b', 'c', 'd', 'user:1', 'user:2', 'é');
export const fieldArb = fc.constantFrom('f', 'g', 'h', 'ü');
export const valueArb = fc.oneof(
  fc.uint8Array({ maxLength: 8 }),
  fc.constantFrom(new Uint8Array(0), new Uint8Array([1, 2, 3])),
  fc.uint8Array({ minLength: 65, maxLength: 100 }), // large enough to take the view (not copy) decode path
);
const ttlArb = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 50 }));
const indexArb = fc.integer({ min: -6, max: 6 });
const cmpOp = fc.constantFrom('eq' as const, 'ne' as const, 'lt' as const, 'le' as const, 'gt' as const, 'ge' as const);

export const compareArb: fc.Arbitrary<Compare> = fc.oneof(
  fc.record({ target: fc.constant('value' as const), key: keyArb, op: cmpOp, value: valueArb }),
  fc.record({
    target: fc.constant('type' as const),
    key: keyArb,
    op: fc.constantFrom('eq' as const, 'ne' as const),
    type: fc.constantFrom('none' as const, 'string' as const, 'list' as const, 'hash' as const),
  }),
  fc.record({ target: fc.constant('length' as const), key: keyArb, op: cmpOp, length: fc.nat(4) }),
);

export const opArb: fc.Arbitrary<TxnOpCommand> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('get' as const), key: keyArb }) },
  {
    weight: 4,
    arbitrary: fc.record(
      {
        op: fc.constant('set' as const),
        key: keyArb,
        value: valueArb,
        ttlMs: ttlArb,
        condition: fc.constantFrom('always' as const, 'ifAbsent' as const, 'ifPresent' as const),
        keepTtl: fc.boolean(),
      },
      { requiredKeys: ['op', 'key', 'value'] },
    ),
  },
  fc.record({ op: fc.constant('delete' as const), keys: fc.array(keyArb, { maxLength: 3 }) }),
  fc.record({ op: fc.constant('exists' as const), keys: fc.array(keyArb, { maxLength: 3 }) }),
  fc.record({ op: fc.constant('expire' as const), key: keyArb, ttlMs: ttlArb }),
  fc.record({ op: fc.constant('ttl' as const), key: keyArb }),
  fc.record({ op: fc.constant('type' as const), key: keyArb }),
  fc.record({ op: fc.constant('keys' as const), pattern: fc.constantFrom('*', 'user:*', '[ab]', '?', '') , limit: fc.constant(1000), cursor: fc.constant('') }),
  fc.record({ op: fc.constant('size' as const) }),
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constantFrom('lpush' as const, 'rpush' as const), key: keyArb, values: fc.array(valueArb, { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('lpop' as const, 'rpop' as const), key: keyArb, count: fc.nat(3) }, { requiredKeys: ['op', 'key'] }) },
  fc.record({ op: fc.constant('lindex' as const), key: keyArb, index: indexArb }),
  fc.record({ op: fc.constant('lset' as const), key: keyArb, index: indexArb, value: valueArb }),
  fc.record({ op: fc.constant('lrange' as const), key: keyArb, start: indexArb, stop: indexArb }),
  fc.record({ op: fc.constant('llen' as const), key: keyArb }),
  { weight: 3, arbitrary: fc.record({ op: fc.constant('hset' as const), key: keyArb, fields: fc.array(fc.tuple(fieldArb, valueArb), { minLength: 1, maxLength: 3 }) }) },
  fc.record({ op: fc.constant('hget' as const), key: keyArb, field: fieldArb }),
  fc.record({ op: fc.constant('hdel' as const), key: keyArb, fields: fc.array(fieldArb, { maxLength: 3 }) }),
  fc.record({ op: fc.constant('hgetall' as const), key: keyArb }),
  fc.record({ op: fc.constant('hlen' as const), key: keyArb }),
);

export const txnArb: fc.Arbitrary<Command> = fc.record({
  op: fc.constant('txn' as const),
  compares: fc.array(compareArb, { maxLength: 2 }),
  success: fc.array(opArb, { maxLength: 4 }),
  failure: fc.array(opArb, { maxLength: 4 }),
});

export const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 12, arbitrary: opArb },
  { weight: 1, arbitrary: txnArb },
  fc.record({ op: fc.constant('expireSweep' as const), keys: fc.array(keyArb, { maxLength: 3 }) }),
);

/** A result with errors reduced to their code, for comparing across a codec round trip or with a model. */
export function plain(result: Result): unknown {
  if (result.kind === 'error') return { kind: 'error', code: result.error.code };
  if (result.kind === 'txn') return { ...result, results: result.results.map(plain) };
  return JSON.parse(JSON.stringify(result, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v)));
}

export const sampleErrors = [new WrongTypeError('w'), new OutOfRangeError('o'), new InvalidArgumentError('i')];
