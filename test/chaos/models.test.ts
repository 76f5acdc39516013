import { describe, expect, it } from 'vitest';
import { checkOperations } from '../support/linearizability.ts';
import type { Operation } from '../support/linearizability.ts';
import type { KvRegisterInput, KvRegisterOutput } from '../support/models.ts';
import { hashModel, volatileRegisterModel } from './models.ts';
import type { HashInput, HashOutput } from './models.ts';

/** Omit over each member of a union, so that object literals still narrow. */
type Without<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

type RegOp = Operation<KvRegisterInput, KvRegisterOutput>;
const reg = (input: Without<KvRegisterInput, 'key'>, output: KvRegisterOutput, call: number, ret: number): RegOp =>
  ({ clientId: 0, input: { ...input, key: 'k' } as KvRegisterInput, output, call, return: ret });

type HashOp = Operation<HashInput, HashOutput>;
const hop = (input: Without<HashInput, 'key'>, output: HashOutput, call: number, ret: number): HashOp =>
  ({ clientId: 0, input: { ...input, key: 'h' } as HashInput, output, call, return: ret });

describe('volatile register model', () => {
  it('lets a value vanish at any time, once', () => {
    const ops = [
      reg({ kind: 'put', value: 'a' }, { status: 'ok' }, 0, 1),
      reg({ kind: 'get' }, { status: 'ok', value: 'a' }, 2, 3),
      reg({ kind: 'get' }, { status: 'ok', value: null }, 4, 5),
      reg({ kind: 'cas', expected: 'a', value: 'b' }, { status: 'ok', applied: false }, 6, 7),
      reg({ kind: 'get' }, { status: 'ok', value: null }, 8, 9),
    ];
    expect(checkOperations(volatileRegisterModel, ops).verdict).toBe('ok');
  });

  it('never brings a vanished value back', () => {
    const ops = [
      reg({ kind: 'put', value: 'a' }, { status: 'ok' }, 0, 1),
      reg({ kind: 'get' }, { status: 'ok', value: null }, 2, 3),
      reg({ kind: 'get' }, { status: 'ok', value: 'a' }, 4, 5),
    ];
    expect(checkOperations(volatileRegisterModel, ops).verdict).toBe('illegal');
  });

  it('still refuses stale reads and impossible compare-and-sets', () => {
    const stale = [
      reg({ kind: 'put', value: 'a' }, { status: 'ok' }, 0, 1),
      reg({ kind: 'put', value: 'b' }, { status: 'ok' }, 2, 3),
      reg({ kind: 'get' }, { status: 'ok', value: 'a' }, 4, 5),
    ];
    expect(checkOperations(volatileRegisterModel, stale).verdict).toBe('illegal');
    const cas = [
      reg({ kind: 'put', value: 'a' }, { status: 'ok' }, 0, 1),
      reg({ kind: 'cas', expected: 'x', value: 'b' }, { status: 'ok', applied: true }, 2, 3),
    ];
    expect(checkOperations(volatileRegisterModel, cas).verdict).toBe('illegal');
  });

  it('lets an unknown compare-and-set take effect or not', () => {
    const ops = [
      reg({ kind: 'put', value: 'a' }, { status: 'ok' }, 0, 1),
      reg({ kind: 'cas', expected: 'a', value: 'b' }, { status: 'unknown' }, 2, Infinity),
      reg({ kind: 'get' }, { status: 'ok', value: 'b' }, 4, 5),
    ];
    expect(checkOperations(volatileRegisterModel, ops).verdict).toBe('ok');
  });
});

describe('hash model', () => {
  it('accepts a linearizable history with multi-field writes and deletes', () => {
    const ops = [
      hop({ kind: 'hset', fields: { f0: 'a', f1: 'b' } }, { status: 'ok', added: 2 }, 0, 1),
      hop({ kind: 'hget', field: 'f1' }, { status: 'ok', value: 'b' }, 2, 3),
      hop({ kind: 'hdel', fields: ['f0'] }, { status: 'ok', deleted: 1 }, 4, 5),
      hop({ kind: 'hset', fields: { f1: 'c' } }, { status: 'unknown' }, 6, Infinity),
      hop({ kind: 'hgetall' }, { status: 'ok', fields: { f1: 'c' } }, 7, 8),
    ];
    expect(checkOperations(hashModel, ops).verdict).toBe('ok');
  });

  it('refuses a read that sees half of a two-field write', () => {
    const ops = [
      hop({ kind: 'hset', fields: { f0: 'a', f1: 'b' } }, { status: 'ok', added: 2 }, 0, 10),
      hop({ kind: 'hgetall' }, { status: 'ok', fields: { f0: 'a' } }, 2, 3),
    ];
    expect(checkOperations(hashModel, ops).verdict).toBe('illegal');
  });

  it('refuses wrong counts and lost fields', () => {
    const added = [
      hop({ kind: 'hset', fields: { f0: 'a' } }, { status: 'ok', added: 1 }, 0, 1),
      hop({ kind: 'hset', fields: { f0: 'b' } }, { status: 'ok', added: 1 }, 2, 3),
    ];
    expect(checkOperations(hashModel, added).verdict).toBe('illegal');
    const lost = [
      hop({ kind: 'hset', fields: { f0: 'a' } }, { status: 'ok', added: 1 }, 0, 1),
      hop({ kind: 'hgetall' }, { status: 'ok', fields: {} }, 2, 3),
    ];
    expect(checkOperations(hashModel, lost).verdict).toBe('illegal');
  });
});
