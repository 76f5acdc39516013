/**
 * Sequential specifications for the chaos suite's workloads, beyond those in
 * test/support/models.ts: a register whose key may vanish at any moment
 * (TTL expiry, LRU eviction), and a hash of a few fields.
 */
import type { Model, StepResult } from '../support/linearizability.ts';
import { kvRegisterParts, partitionByKey, quote as q, quoteOrNull as qn } from '../support/models.ts';
import type { KvRegisterInput, KvRegisterOutput, KvRegisterState } from '../support/models.ts';

/**
 * A register that may lose its value at any time (the key expired or was
 * evicted). The vanishing is invisible until something observes it, so the
 * model takes it only then: a read of "absent", or a compare-and-set that
 * found its expected value gone. This deterministic model is exact because a
 * state holding a value can do everything the absent state can (it may vanish
 * first). A compare-and-set aimed at "absent" would break that argument
 * (vanish-then-apply is neither "applied here" nor "not applied here"), so
 * this model refuses it.
 */
export const volatileRegisterModel: Model<KvRegisterState, KvRegisterInput, KvRegisterOutput> = {
  init: () => null,
  step(state, input, output): StepResult<KvRegisterState> {
    switch (input.kind) {
      case 'get':
        if (output.status !== 'ok') return { ok: true, state };
        if (output.value === undefined) throw new TypeError('a get with status ok must carry a value (null when absent)');
        if (output.value === null) return { ok: true, state: null };
        return { ok: output.value === state, state };
      case 'put':
        return { ok: true, state: input.value };
      case 'cas': {
        if (input.expected === null) throw new TypeError('the volatile register model cannot check a compare-and-set on absence');
        const matches = state === input.expected;
        if (output.status !== 'ok') return { ok: true, state: matches ? input.value : state };
        if (output.applied === undefined) throw new TypeError('a cas with status ok must say whether it applied');
        if (output.applied) return { ok: matches, state: input.value };
        // Not applied although it matched: the value had vanished.
        return { ok: true, state: matches ? null : state };
      }
    }
  },
  // Keys, partitions and descriptions as for the plain register: only the steps differ.
  ...kvRegisterParts,
};

// ---------------------------------------------------------------------------

export type HashInput =
  | { kind: 'hset'; key: string; fields: Readonly<Record<string, string>> }
  | { kind: 'hdel'; key: string; fields: readonly string[] }
  | { kind: 'hget'; key: string; field: string }
  | { kind: 'hgetall'; key: string };

/**
 * ok: `added` for hset (fields that were new), `deleted` for hdel (fields
 * that were there), `value` for hget (null when absent), `fields` for
 * hgetall. unknown: no answer; the write may or may not have happened.
 */
export type HashOutput =
  | { status: 'ok'; added?: number; deleted?: number; value?: string | null; fields?: Readonly<Record<string, string>> }
  | { status: 'unknown' };

/** One hash key's fields. An emptied hash stops existing, which reads the same as {}. */
export type HashState = Readonly<Record<string, string>>;

export const hashModel: Model<HashState, HashInput, HashOutput> = {
  init: () => ({}),
  step(state, input, output): StepResult<HashState> {
    switch (input.kind) {
      case 'hset': {
        const next = { ...state, ...input.fields };
        if (output.status !== 'ok') return { ok: true, state: next };
        const added = Object.keys(input.fields).filter((f) => !(f in state)).length;
        return { ok: output.added === added, state: next };
      }
      case 'hdel': {
        const next: Record<string, string> = { ...state };
        let deleted = 0;
        for (const f of input.fields) {
          if (f in next) deleted++;
          delete next[f];
        }
        if (output.status !== 'ok') return { ok: true, state: next };
        return { ok: output.deleted === deleted, state: next };
      }
      case 'hget':
        if (output.status !== 'ok') return { ok: true, state };
        return { ok: (output.value ?? null) === (state[input.field] ?? null), state };
      case 'hgetall':
        if (output.status !== 'ok') return { ok: true, state };
        return { ok: hashKey(output.fields ?? {}) === hashKey(state), state };
    }
  },
  stateKey: hashKey,
  partition: (ops) => partitionByKey(ops),
  describeOperation(input, output) {
    const answer = (text: string) => (output.status === 'ok' ? text : 'unknown');
    switch (input.kind) {
      case 'hset':
        return `hset(${q(input.key)}, ${hashKey(input.fields)}) -> ${answer(`added ${output.status === 'ok' ? output.added : ''}`)}`;
      case 'hdel':
        return `hdel(${q(input.key)}, ${input.fields.join(',')}) -> ${answer(`deleted ${output.status === 'ok' ? output.deleted : ''}`)}`;
      case 'hget':
        return `hget(${q(input.key)}, ${input.field}) -> ${answer(qn(output.status === 'ok' ? (output.value ?? null) : null))}`;
      case 'hgetall':
        return `hgetall(${q(input.key)}) -> ${answer(hashKey(output.status === 'ok' ? (output.fields ?? {}) : {}))}`;
    }
  },
  describeState: hashKey,
};

function hashKey(fields: Readonly<Record<string, string>>): string {
  return `{${Object.keys(fields)
    .sort()
    .map((f) => `${f}=${fields[f]}`)
    .join(',')}}`;
}

