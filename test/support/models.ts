/**
 * Sequential specifications for the linearizability checker.
 *
 * Conventions shared by the models: an output with status 'unknown' belongs
 * to an operation whose outcome the client never learned, and goes with
 * `return: Infinity`. The model accepts it in every state; a mutation with an
 * unknown outcome takes effect where the checker linearizes it, and the
 * checker may also leave it out ("it never happened"). Keyed models describe
 * a single key's state and rely on their partition function to split the
 * history by key.
 */
import type { Model, Operation, StepResult } from './linearizability.ts';

// ---------------------------------------------------------------------------
// A single register, as in the Jepsen etcd histories.

export type RegisterInput =
  | { kind: 'read' }
  | { kind: 'write'; value: number }
  | { kind: 'cas'; compare: number; set: number };

/**
 * - ok: the operation happened; a read carries the value it saw (null when
 *   the register was never written), and an ok cas applied.
 * - fail: the operation definitely did not change the register. For a cas
 *   this is the server saying the compare failed, so it also claims that the
 *   register did not hold `compare` when it ran (porcupine's reading of
 *   Jepsen's `:fail :cas`). A failed read or write constrains nothing.
 * - unknown: it may or may not have happened; a read with an unknown outcome
 *   constrains nothing.
 */
export type RegisterOutput = { status: 'ok'; value?: number | null } | { status: 'fail' } | { status: 'unknown' };

/** null until the first write. */
export type RegisterState = number | null;

export const registerModel: Model<RegisterState, RegisterInput, RegisterOutput> = {
  init: () => null,
  step(state, input, output): StepResult<RegisterState> {
    switch (input.kind) {
      case 'read':
        if (output.status !== 'ok') return { ok: true, state };
        if (output.value === undefined) throw new TypeError('a read with status ok must carry a value (null for nil)');
        return { ok: output.value === state, state };
      case 'write':
        return { ok: true, state: output.status === 'fail' ? state : input.value };
      case 'cas': {
        const matches = state === input.compare;
        if (output.status === 'ok') return { ok: matches, state: matches ? input.set : state };
        if (output.status === 'fail') return { ok: !matches, state };
        return { ok: true, state: matches ? input.set : state };
      }
    }
  },
  stateKey: (state) => (state === null ? 'nil' : String(state)),
  describeOperation(input, output) {
    switch (input.kind) {
      case 'read':
        return `read() -> ${output.status === 'ok' ? String(output.value ?? 'nil') : output.status}`;
      case 'write':
        return `write(${input.value})${output.status === 'ok' ? '' : ` -> ${output.status}`}`;
      case 'cas':
        return `cas(${input.compare}, ${input.set}) -> ${output.status}`;
    }
  },
  describeState: (state) => (state === null ? 'nil' : String(state)),
};

// ---------------------------------------------------------------------------
// porcupine's key-value store: get / put / append on string values.

export type KvAppendInput =
  | { kind: 'get'; key: string }
  | { kind: 'put'; key: string; value: string }
  | { kind: 'append'; key: string; value: string };

/** An ok get carries the whole value ("" for a key never written). */
export type KvAppendOutput = { status: 'ok'; value?: string } | { status: 'unknown' };

/** One key's value. */
export type KvAppendState = string;

export const kvAppendModel: Model<KvAppendState, KvAppendInput, KvAppendOutput> = {
  init: () => '',
  step(state, input, output): StepResult<KvAppendState> {
    switch (input.kind) {
      case 'get':
        if (output.status !== 'ok') return { ok: true, state };
        if (output.value === undefined) throw new TypeError('a get with status ok must carry a value');
        return { ok: output.value === state, state };
      case 'put':
        return { ok: true, state: input.value };
      case 'append':
        return { ok: true, state: state + input.value };
    }
  },
  stateKey: (state) => state,
  partition: (ops) => partitionByKey(ops),
  describeOperation(input, output) {
    switch (input.kind) {
      case 'get':
        return `get(${quote(input.key)}) -> ${output.status === 'ok' ? quote(output.value ?? '') : 'unknown'}`;
      case 'put':
        return `put(${quote(input.key)}, ${quote(input.value)})${output.status === 'ok' ? '' : ' -> unknown'}`;
      case 'append':
        return `append(${quote(input.key)}, ${quote(input.value)})${output.status === 'ok' ? '' : ' -> unknown'}`;
    }
  },
  describeState: (state) => quote(state),
};

// ---------------------------------------------------------------------------
// quorumkv's own key-value store, for the deterministic simulation.

export type KvRegisterInput =
  | { kind: 'get'; key: string }
  | { kind: 'put'; key: string; value: string }
  /** Sets `value` if the key holds `expected`; `expected: null` means "only if absent". */
  | { kind: 'cas'; key: string; expected: string | null; value: string };

/**
 * ok: the client got an answer: `value` for a get (null when absent),
 * `applied` for a cas. unknown: no answer (timeout, crash), so the request may
 * or may not have taken effect. Requests that definitely failed are simply
 * not recorded.
 */
export type KvRegisterOutput = { status: 'ok'; value?: string | null; applied?: boolean } | { status: 'unknown' };

/** One key's value; null when absent. */
export type KvRegisterState = string | null;

/** How a key-value register's states and operations are keyed, partitioned and described; shared with the chaos suite's variants. */
export const kvRegisterParts = {
  // The prefix keeps the absent key apart from any string value.
  stateKey: (state: KvRegisterState): string => (state === null ? '-' : `+${state}`),
  partition: (ops: readonly Operation<KvRegisterInput, KvRegisterOutput>[]) => partitionByKey(ops),
  describeOperation(input: KvRegisterInput, output: KvRegisterOutput): string {
    switch (input.kind) {
      case 'get':
        return `get(${quote(input.key)}) -> ${output.status === 'ok' ? quoteOrNull(output.value ?? null) : 'unknown'}`;
      case 'put':
        return `put(${quote(input.key)}, ${quote(input.value)})${output.status === 'ok' ? '' : ' -> unknown'}`;
      case 'cas': {
        const outcome = output.status !== 'ok' ? 'unknown' : output.applied === true ? 'applied' : 'not applied';
        return `cas(${quote(input.key)}, ${quoteOrNull(input.expected)} -> ${quote(input.value)}) -> ${outcome}`;
      }
    }
  },
  describeState: (state: KvRegisterState): string => quoteOrNull(state),
};

export const kvRegisterModel: Model<KvRegisterState, KvRegisterInput, KvRegisterOutput> = {
  init: () => null,
  step(state, input, output): StepResult<KvRegisterState> {
    switch (input.kind) {
      case 'get':
        if (output.status !== 'ok') return { ok: true, state };
        if (output.value === undefined) throw new TypeError('a get with status ok must carry a value (null when absent)');
        return { ok: output.value === state, state };
      case 'put':
        return { ok: true, state: input.value };
      case 'cas': {
        const matches = state === input.expected;
        if (output.status !== 'ok') return { ok: true, state: matches ? input.value : state };
        if (output.applied === undefined) throw new TypeError('a cas with status ok must say whether it applied');
        return { ok: output.applied === matches, state: matches ? input.value : state };
      }
    }
  },
  ...kvRegisterParts,
};

/**
 * Groups operations by `input.key`, keys in sorted order so that partition
 * indices do not depend on the order operations were recorded in.
 */
export function partitionByKey<I extends { key: string }, O>(ops: readonly Operation<I, O>[]): Operation<I, O>[][] {
  const byKey = new Map<string, Operation<I, O>[]>();
  for (const op of ops) {
    const group = byKey.get(op.input.key);
    if (group === undefined) byKey.set(op.input.key, [op]);
    else group.push(op);
  }
  return [...byKey.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((key) => byKey.get(key) ?? []);
}

/** An operation's string, as it appears in a description. */
export function quote(text: string): string {
  return JSON.stringify(text);
}

export function quoteOrNull(text: string | null): string {
  return text === null ? 'null' : quote(text);
}
