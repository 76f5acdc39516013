/**
 * A reference model of the state machine's semantics, written independently
 * and as plainly as possible: a Map of key -> value with an absolute expiry,
 * where a key whose expiry is at or before "now" is simply absent. Errors are
 * reported by code only. The property tests compare it with the real thing.
 */
import type { Command, Compare, TxnOpCommand } from '../../../src/state/index.ts';

type Value = Uint8Array | Uint8Array[] | Map<string, Uint8Array>;

interface Item {
  value: Value;
  expiresAt: number | null;
}

export type ModelResult =
  | { kind: 'ok' }
  | { kind: 'value'; found: boolean; value: number[] | null }
  | { kind: 'set'; applied: boolean; previousFound: boolean; previous: number[] | null }
  | { kind: 'count'; count: number }
  | { kind: 'applied'; applied: boolean }
  | { kind: 'ttl'; ttlMs: number }
  | { kind: 'type'; type: string }
  | { kind: 'keys'; keys: string[]; nextCursor: string }
  | { kind: 'values'; values: number[][] }
  | { kind: 'fields'; fields: [string, number[]][] }
  | { kind: 'txn'; succeeded: boolean; results: ModelResult[] }
  | { kind: 'error'; code: string }
  /** The model cannot know (expireSweep counts stored-but-expired keys): not compared. */
  | { kind: 'unknown' };

class Fail extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

const arr = (v: Uint8Array): number[] => Array.from(v);

function typeName(v: Value): 'string' | 'list' | 'hash' {
  return v instanceof Uint8Array ? 'string' : Array.isArray(v) ? 'list' : 'hash';
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i);
      re += pattern.slice(i, end + 1);
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'su');
}

function cmpBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return a.length - b.length;
}

function test(op: string, c: number): boolean {
  return { eq: c === 0, ne: c !== 0, lt: c < 0, le: c <= 0, gt: c > 0, ge: c >= 0 }[op] as boolean;
}

export class Model {
  data = new Map<string, Item>();

  clone(): Model {
    const m = new Model();
    for (const [k, it] of this.data) {
      const v = it.value;
      m.data.set(k, { value: v instanceof Uint8Array ? v : Array.isArray(v) ? [...v] : new Map(v), expiresAt: it.expiresAt });
    }
    return m;
  }

  /** Drops keys expired at `now`: they are absent, which is all the model needs to know. */
  private purge(now: number): void {
    for (const [k, it] of this.data) if (it.expiresAt !== null && it.expiresAt <= now) this.data.delete(k);
  }

  live(key: string, now: number): Item | undefined {
    this.purge(now);
    return this.data.get(key);
  }

  run(c: Command, now: number): ModelResult {
    this.purge(now);
    try {
      return this.exec(c, now);
    } catch (e) {
      if (e instanceof Fail) return { kind: 'error', code: e.code };
      throw e;
    }
  }

  private expect<T extends Value>(key: string, want: 'string' | 'list' | 'hash'): T | undefined {
    const it = this.data.get(key);
    if (it === undefined) return undefined;
    if (typeName(it.value) !== want) throw new Fail('WRONGTYPE');
    return it.value as T;
  }

  private exec(c: Command, now: number): ModelResult {
    switch (c.op) {
      case 'get': {
        const v = this.expect<Uint8Array>(c.key, 'string');
        return v === undefined ? { kind: 'value', found: false, value: null } : { kind: 'value', found: true, value: arr(v) };
      }
      case 'set': {
        const ttl = c.ttlMs ?? 0;
        if (c.keepTtl === true && ttl > 0) throw new Fail('INVALID_ARGUMENT');
        const it = this.data.get(c.key);
        const previous = it !== undefined && it.value instanceof Uint8Array ? arr(it.value) : null;
        const cond = c.condition ?? 'always';
        const applied = cond === 'always' || (cond === 'ifAbsent' && it === undefined) || (cond === 'ifPresent' && it !== undefined);
        if (applied) {
          const expiresAt = ttl > 0 ? now + ttl : c.keepTtl === true && it !== undefined ? it.expiresAt : null;
          this.data.set(c.key, { value: c.value, expiresAt });
        }
        return { kind: 'set', applied, previousFound: it !== undefined, previous };
      }
      case 'delete': {
        let n = 0;
        for (const k of c.keys) if (this.data.delete(k)) n++;
        return { kind: 'count', count: n };
      }
      case 'exists':
        return { kind: 'count', count: c.keys.filter((k) => this.data.has(k)).length };
      case 'expire': {
        const it = this.data.get(c.key);
        if (it === undefined) return { kind: 'applied', applied: false };
        if (c.ttlMs === 0) {
          if (it.expiresAt === null) return { kind: 'applied', applied: false };
          it.expiresAt = null;
          return { kind: 'applied', applied: true };
        }
        it.expiresAt = now + c.ttlMs;
        return { kind: 'applied', applied: true };
      }
      case 'ttl': {
        const it = this.data.get(c.key);
        return { kind: 'ttl', ttlMs: it === undefined ? -2 : it.expiresAt === null ? -1 : it.expiresAt - now };
      }
      case 'type': {
        const it = this.data.get(c.key);
        return { kind: 'type', type: it === undefined ? 'none' : typeName(it.value) };
      }
      case 'keys': {
        const re = globToRegExp(c.pattern === undefined || c.pattern === '' ? '*' : c.pattern);
        return { kind: 'keys', keys: [...this.data.keys()].filter((k) => re.test(k)).sort(), nextCursor: '' };
      }
      case 'size':
        return { kind: 'count', count: this.data.size };
      case 'clear': {
        const n = this.data.size;
        this.data.clear();
        return { kind: 'count', count: n };
      }
      case 'lpush':
      case 'rpush': {
        let list = this.expect<Uint8Array[]>(c.key, 'list');
        if (list === undefined) {
          list = [];
          this.data.set(c.key, { value: list, expiresAt: null });
        }
        for (const v of c.values) {
          if (c.op === 'lpush') list.unshift(v);
          else list.push(v);
        }
        return { kind: 'count', count: list.length };
      }
      case 'lpop':
      case 'rpop': {
        const n = c.count === undefined || c.count === 0 ? 1 : c.count;
        const list = this.expect<Uint8Array[]>(c.key, 'list');
        if (list === undefined) return { kind: 'values', values: [] };
        const out: number[][] = [];
        for (let i = 0; i < n && list.length > 0; i++) out.push(arr((c.op === 'lpop' ? list.shift() : list.pop()) as Uint8Array));
        if (list.length === 0) this.data.delete(c.key);
        return { kind: 'values', values: out };
      }
      case 'lindex': {
        const list = this.expect<Uint8Array[]>(c.key, 'list');
        const v = list?.[c.index < 0 ? list.length + c.index : c.index];
        return v === undefined ? { kind: 'value', found: false, value: null } : { kind: 'value', found: true, value: arr(v) };
      }
      case 'lset': {
        if (!this.data.has(c.key)) throw new Fail('OUT_OF_RANGE');
        const list = this.expect<Uint8Array[]>(c.key, 'list') as Uint8Array[];
        const i = c.index < 0 ? list.length + c.index : c.index;
        if (i < 0 || i >= list.length) throw new Fail('OUT_OF_RANGE');
        list[i] = c.value;
        return { kind: 'ok' };
      }
      case 'lrange': {
        const list = this.expect<Uint8Array[]>(c.key, 'list') ?? [];
        const n = list.length;
        let start = c.start < 0 ? n + c.start : c.start;
        let stop = c.stop < 0 ? n + c.stop : c.stop;
        start = Math.max(0, start);
        stop = Math.min(n - 1, stop);
        return { kind: 'values', values: start > stop ? [] : list.slice(start, stop + 1).map(arr) };
      }
      case 'llen':
        return { kind: 'count', count: this.expect<Uint8Array[]>(c.key, 'list')?.length ?? 0 };
      case 'hset': {
        let hash = this.expect<Map<string, Uint8Array>>(c.key, 'hash');
        if (hash === undefined) {
          hash = new Map();
          this.data.set(c.key, { value: hash, expiresAt: null });
        }
        let added = 0;
        for (const [f, v] of c.fields) {
          if (!hash.has(f)) added++;
          hash.set(f, v);
        }
        return { kind: 'count', count: added };
      }
      case 'hget': {
        const v = this.expect<Map<string, Uint8Array>>(c.key, 'hash')?.get(c.field);
        return v === undefined ? { kind: 'value', found: false, value: null } : { kind: 'value', found: true, value: arr(v) };
      }
      case 'hdel': {
        const hash = this.expect<Map<string, Uint8Array>>(c.key, 'hash');
        if (hash === undefined) return { kind: 'count', count: 0 };
        let n = 0;
        for (const f of c.fields) if (hash.delete(f)) n++;
        if (hash.size === 0) this.data.delete(c.key);
        return { kind: 'count', count: n };
      }
      case 'hgetall':
        return { kind: 'fields', fields: [...(this.expect<Map<string, Uint8Array>>(c.key, 'hash') ?? new Map<string, Uint8Array>())].map(([f, v]) => [f, arr(v)]) };
      case 'hlen':
        return { kind: 'count', count: this.expect<Map<string, Uint8Array>>(c.key, 'hash')?.size ?? 0 };
      case 'txn': {
        const succeeded = c.compares.every((cmp) => this.compare(cmp));
        const trial = this.clone();
        const results: ModelResult[] = [];
        for (const op of succeeded ? c.success : c.failure) {
          const r = trial.exec(op as TxnOpCommand, now);
          results.push(r);
        }
        this.data = trial.data;
        return { kind: 'txn', succeeded, results };
      }
      case 'expireSweep':
        return { kind: 'unknown' };
      case 'evict':
        throw new Error('the model does not evict');
    }
  }

  private compare(c: Compare): boolean {
    const it = this.data.get(c.key);
    switch (c.target) {
      case 'value':
        return it !== undefined && it.value instanceof Uint8Array && test(c.op, cmpBytes(it.value, c.value));
      case 'type':
        return ((it === undefined ? 'none' : typeName(it.value)) === c.type) === (c.op === 'eq');
      case 'length': {
        const v = it?.value;
        const n = v === undefined ? 0 : v instanceof Uint8Array ? v.length : Array.isArray(v) ? v.length : v.size;
        return test(c.op, n - c.length);
      }
    }
  }
}
