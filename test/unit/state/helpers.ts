/** Shared helpers for the state machine tests. */
import { encodeEntry, StateMachine } from '../../../src/state/index.ts';
import type { ClientSession, Command, Result, StateMachineConfig } from '../../../src/state/index.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function b(text: string): Uint8Array {
  return encoder.encode(text);
}

export function s(bytes: Uint8Array | null | undefined): string | null {
  return bytes === null || bytes === undefined ? null : decoder.decode(bytes);
}

/** A state machine driven through the real entry encoding, with its own index counter and clock. */
export class Harness {
  readonly sm: StateMachine;
  index = 0;
  timeMs = 1_000_000;

  constructor(config: Partial<StateMachineConfig> = {}, sm?: StateMachine) {
    this.sm = sm ?? new StateMachine(config);
    this.index = this.sm.lastAppliedIndex;
    if (sm !== undefined) this.timeMs = Math.max(this.timeMs, sm.logTimeMs);
  }

  apply(command: Command, session: ClientSession | null = null): Result {
    return this.sm.apply(++this.index, encodeEntry({ timeMs: this.timeMs, session, command }));
  }

  read(command: Command): Result {
    return this.sm.read(command, this.timeMs);
  }

  advance(ms: number): void {
    this.timeMs += ms;
  }

  /** Applies and expects success; returns the result narrowed by kind. */
  ok<K extends Result['kind']>(command: Command, kind: K): Extract<Result, { kind: K }> {
    const result = this.apply(command);
    if (result.kind === 'error') throw new Error(`${command.op} failed: ${result.error.code} ${result.error.message}`);
    if (result.kind !== kind) throw new Error(`${command.op} answered ${result.kind}, expected ${kind}`);
    return result as Extract<Result, { kind: K }>;
  }

  get(key: string): string | null {
    const r = this.read({ op: 'get', key });
    if (r.kind !== 'value') throw new Error(`get answered ${r.kind}`);
    return s(r.value);
  }

  list(key: string): string[] {
    const r = this.read({ op: 'lrange', key, start: 0, stop: -1 });
    if (r.kind !== 'values') throw new Error(`lrange answered ${r.kind}`);
    return r.values.map((v) => s(v) as string);
  }

  hash(key: string): [string, string][] {
    const r = this.read({ op: 'hgetall', key });
    if (r.kind !== 'fields') throw new Error(`hgetall answered ${r.kind}`);
    return r.fields.map(([f, v]) => [f, s(v) as string]);
  }

  /** Every key, by paging Keys to the end. */
  allKeys(pattern = '*'): string[] {
    const out: string[] = [];
    let cursor = '';
    do {
      const r = this.read({ op: 'keys', pattern, limit: 1000, cursor });
      if (r.kind !== 'keys') throw new Error(`keys answered ${r.kind}`);
      out.push(...r.keys);
      cursor = r.nextCursor;
    } while (cursor !== '');
    return out.sort();
  }
}

export function errorCode(result: Result): string | null {
  return result.kind === 'error' ? result.error.code : null;
}
