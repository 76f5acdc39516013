/**
 * What each command does to the keys, at a given "now" (the entry's log time
 * in apply, the caller's time in read). Semantics follow Redis where names
 * match; see API.md. Every check that can fail happens before the first
 * change, so a failed command changes nothing; a Txn gets the same guarantee
 * from the keyspace's undo log.
 *
 * Errors are thrown as StateError here and turned into ErrorResults by the
 * caller: they are part of the deterministic outcome of a command.
 */
import { utf8Length } from './bytes.ts';
import type {
  Command,
  Compare,
  CompareOp,
  EvictCommand,
  HSetCommand,
  KeysCommand,
  PopCommand,
  PushCommand,
  SetCommand,
  TxnCommand,
} from './commands.ts';
import { isReadOnly } from './commands.ts';
import type { StateMachineConfig } from './config.ts';
import { errorFromCode, InvalidArgumentError, OutOfRangeError, ResourceExhaustedError, StateError, WrongTypeError } from './errors.ts';
import { compileGlob } from './glob.ts';
import { fieldBytes, HashValue } from './hash-value.ts';
import type { KeyEntry } from './key-entry.ts';
import { NO_EXPIRY } from './key-entry.ts';
import type { Keyspace } from './keyspace.ts';
import { ListValue } from './list-value.ts';
import { KEY_OVERHEAD_BYTES, LIST_ITEM_OVERHEAD_BYTES } from './memory.ts';
import { count, failure, NOT_FOUND, OK } from './results.ts';
import type { Result, ValueResult } from './results.ts';
import { typeOf, valueBytes } from './values.ts';
import type { ValueType } from './values.ts';

/** Keys page size when the request leaves it 0. */
export const DEFAULT_KEYS_LIMIT = 100;
/** Largest Keys page. */
export const MAX_KEYS_LIMIT = 10_000;
/** A Keys page looks at no more than this many keys per key it may return, so a rare pattern stays cheap per call. */
export const KEYS_WORK_FACTOR = 10;

/**
 * How a command runs: 'apply' from the log (may change state), 'read' at a
 * time (never changes anything), or 'readTouch': a read on the leader that
 * counts as an access for LRU (recency only, which is not state).
 */
export type Mode = 'apply' | 'read' | 'readTouch';

function wrongType(key: string, holds: ValueType, wanted: ValueType): WrongTypeError {
  return new WrongTypeError(`WRONGTYPE key '${key}' holds a ${holds}, not a ${wanted}`);
}

function requireInt(value: number, what: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw new InvalidArgumentError(`${what} must be an integer >= ${min}, not ${value}`);
  return value;
}

/** A list index from a decoded command object (the codec only produces integers; a caller building one might not). */
function requireIndex(value: number, what: string): number {
  if (!Number.isSafeInteger(value)) throw new InvalidArgumentError(`${what} must be an integer, not ${value}`);
  return value;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function holds(op: CompareOp, cmp: number): boolean {
  switch (op) {
    case 'eq':
      return cmp === 0;
    case 'ne':
      return cmp !== 0;
    case 'lt':
      return cmp < 0;
    case 'le':
      return cmp <= 0;
    case 'gt':
      return cmp > 0;
    case 'ge':
      return cmp >= 0;
  }
}

/** Normalizes a possibly negative list index; may still be out of [0, length). */
function listIndex(index: number, length: number): number {
  return index < 0 ? length + index : index;
}

export class Executor {
  /** Inside a Txn the budget is checked once, on the net change, at the end. */
  private inTxn = false;

  constructor(
    private readonly ks: Keyspace,
    private readonly config: StateMachineConfig,
  ) {}

  /** Runs a command; failures come back as ErrorResults. */
  run(command: Command, nowMs: number, mode: Mode): Result {
    try {
      // HSet skips exec's switch: exec is too large for V8 to inline here, and the call it saves is measurable on HSet (test/bench/state.ts).
      return command.op === 'hset' ? this.hset(command, nowMs) : this.exec(command, nowMs, mode);
    } catch (error) {
      if (error instanceof StateError) return failure(error);
      throw error;
    }
  }

  private exec(c: Command, now: number, mode: Mode): Result {
    // Hot commands first (the reads, then the writes): V8 tests the cases in order.
    switch (c.op) {
      case 'hget': {
        const hash = this.hash(c.key, now, mode);
        const value = hash?.get(c.field);
        return value === undefined ? NOT_FOUND : ({ kind: 'value', found: true, value } satisfies ValueResult);
      }
      case 'lindex': {
        const list = this.list(c.key, now, mode);
        if (list === undefined) return NOT_FOUND;
        const item = list.at(listIndex(requireIndex(c.index, 'index'), list.length));
        return item === undefined ? NOT_FOUND : { kind: 'value', found: true, value: item };
      }
      case 'get': {
        const e = this.readable(c.key, now, mode);
        if (e === undefined) return NOT_FOUND;
        if (!(e.value instanceof Uint8Array)) throw wrongType(c.key, typeOf(e.value), 'string');
        return { kind: 'value', found: true, value: e.value };
      }
      case 'set':
        return this.set(c, now);
      case 'hset':
        return this.hset(c, now);
      case 'lpush':
      case 'rpush':
        return this.push(c, now);
      case 'delete': {
        let n = 0;
        for (const key of c.keys) {
          const e = this.ks.stored(key);
          if (e === undefined) continue;
          if (e.expiresAtMs > now) n++;
          this.ks.remove(e);
        }
        return count(n);
      }
      case 'exists': {
        let n = 0;
        for (const key of c.keys) if (this.readable(key, now, mode) !== undefined) n++;
        return count(n);
      }
      case 'expire': {
        const ttlMs = requireInt(c.ttlMs, 'ttlMs', 0);
        const e = this.ks.live(c.key, now);
        if (e === undefined) return { kind: 'applied', applied: false };
        if (ttlMs === 0) {
          if (e.expiresAtMs === NO_EXPIRY) return { kind: 'applied', applied: false };
          this.ks.setExpiry(e, NO_EXPIRY);
        } else {
          this.ks.setExpiry(e, this.expiryAt(now, ttlMs));
        }
        return { kind: 'applied', applied: true };
      }
      case 'ttl': {
        const e = this.readable(c.key, now, mode);
        const ttlMs = e === undefined ? -2 : e.expiresAtMs === NO_EXPIRY ? -1 : e.expiresAtMs - now;
        return { kind: 'ttl', ttlMs };
      }
      case 'type': {
        const e = this.readable(c.key, now, mode);
        return { kind: 'type', type: e === undefined ? 'none' : typeOf(e.value) };
      }
      case 'keys':
        return this.keys(c, now);
      case 'size':
        return count(this.ks.liveCount(now));
      case 'clear': {
        const n = this.ks.liveCount(now);
        this.ks.clear();
        return count(n);
      }
      case 'lpop':
      case 'rpop':
        return this.pop(c, now);
      case 'lset': {
        this.checkValue(c.value);
        const e = this.ks.live(c.key, now);
        if (e === undefined) throw new OutOfRangeError(`no list at key '${c.key}', so index ${c.index} is out of range`);
        const list = e.value;
        if (!(list instanceof ListValue)) throw wrongType(c.key, typeOf(list), 'list');
        const i = listIndex(requireIndex(c.index, 'index'), list.length);
        const oldLength = list.lengthAt(i);
        if (oldLength === undefined) throw new OutOfRangeError(`index ${c.index} is out of range for the list at '${c.key}' of length ${list.length}`);
        this.checkBudget(c.value.length - oldLength);
        this.ks.beginChange(e, list);
        list.set(i, c.value);
        this.ks.endChange(e, list);
        return OK;
      }
      case 'lrange': {
        const list = this.list(c.key, now, mode);
        if (list === undefined) return { kind: 'values', values: [] };
        const len = list.length;
        const start = requireIndex(c.start, 'start') < 0 ? Math.max(0, len + c.start) : c.start;
        const stop = requireIndex(c.stop, 'stop') < 0 ? len + c.stop : Math.min(c.stop, len - 1);
        return { kind: 'values', values: start > stop || start >= len ? [] : list.slice(start, stop + 1) };
      }
      case 'llen': {
        const list = this.list(c.key, now, mode);
        return count(list === undefined ? 0 : list.length);
      }
      case 'hdel': {
        const e = this.ks.live(c.key, now);
        if (e === undefined) return count(0);
        const hash = e.value;
        if (!(hash instanceof HashValue)) throw wrongType(c.key, typeOf(hash), 'hash');
        this.ks.beginChange(e, hash);
        let n = 0;
        for (const field of c.fields) if (hash.delete(field)) n++;
        this.ks.endHashChange(e, hash);
        if (hash.size === 0) this.ks.remove(e);
        return count(n);
      }
      case 'hgetall': {
        const hash = this.hash(c.key, now, mode);
        return { kind: 'fields', fields: hash === undefined ? [] : hash.toArray() };
      }
      case 'hlen': {
        const hash = this.hash(c.key, now, mode);
        return count(hash === undefined ? 0 : hash.size);
      }
      case 'txn':
        return this.txn(c, now, mode);
      case 'expireSweep': {
        let n = 0;
        for (const key of c.keys) {
          const e = this.ks.stored(key);
          if (e !== undefined && e.expiresAtMs <= now) {
            this.ks.remove(e);
            n++;
          }
        }
        return count(n);
      }
      case 'evict':
        return this.evict(c);
    }
  }

  /** A live entry for a read; counts as an access unless the mode is a plain read. */
  private readable(key: string, now: number, mode: Mode): KeyEntry | undefined {
    const e = this.ks.live(key, now);
    if (e !== undefined && mode !== 'read') this.ks.touch(e);
    return e;
  }

  private list(key: string, now: number, mode: Mode): ListValue | undefined {
    const e = this.readable(key, now, mode);
    if (e === undefined) return undefined;
    if (!(e.value instanceof ListValue)) throw wrongType(key, typeOf(e.value), 'list');
    return e.value;
  }

  private hash(key: string, now: number, mode: Mode): HashValue | undefined {
    const e = this.readable(key, now, mode);
    if (e === undefined) return undefined;
    if (!(e.value instanceof HashValue)) throw wrongType(key, typeOf(e.value), 'hash');
    return e.value;
  }

  private set(c: SetCommand, now: number): Result {
    const value = c.value;
    this.checkValue(value);
    const ttlMs = requireInt(c.ttlMs ?? 0, 'ttlMs', 0);
    const keepTtl = c.keepTtl === true;
    if (keepTtl && ttlMs > 0) throw new InvalidArgumentError('Set takes ttlMs or keepTtl, not both');
    const stored = this.ks.stored(c.key);
    const live = stored !== undefined && stored.expiresAtMs > now ? stored : undefined;
    const previous = live !== undefined && live.value instanceof Uint8Array ? live.value : null;
    const condition = c.condition ?? 'always';
    const applied =
      condition === 'always' ||
      (condition === 'ifAbsent' && live === undefined) ||
      (condition === 'ifPresent' && live !== undefined);
    if (!applied) return { kind: 'set', applied: false, previousFound: live !== undefined, previous };
    const expiresAtMs = ttlMs > 0 ? this.expiryAt(now, ttlMs) : keepTtl && live !== undefined ? live.expiresAtMs : NO_EXPIRY;
    if (live !== undefined) {
      this.checkBudget(value.length - valueBytes(live.value));
      this.ks.replace(live, value);
      this.ks.setExpiry(live, expiresAtMs);
    } else {
      const keyBytes = this.checkKey(c.key);
      this.checkBudget(keyBytes + KEY_OVERHEAD_BYTES + value.length - (stored === undefined ? 0 : stored.bytes));
      if (stored !== undefined) this.ks.remove(stored);
      this.ks.create(c.key, keyBytes, value, expiresAtMs);
    }
    return { kind: 'set', applied: true, previousFound: live !== undefined, previous };
  }

  private push(c: PushCommand, now: number): Result {
    const values = c.values;
    if (values.length === 0) throw new InvalidArgumentError(`${c.op} needs at least one value`);
    let delta = 0;
    for (const value of values) {
      this.checkValue(value);
      delta += value.length + LIST_ITEM_OVERHEAD_BYTES;
    }
    const front = c.op === 'lpush';
    const stored = this.ks.stored(c.key);
    if (stored !== undefined && stored.expiresAtMs > now) {
      const list = stored.value;
      if (!(list instanceof ListValue)) throw wrongType(c.key, typeOf(list), 'list');
      this.checkBudget(delta);
      this.ks.beginChange(stored, list);
      for (const value of values) {
        if (front) list.pushFront(value);
        else list.pushBack(value);
      }
      this.ks.endChange(stored, list);
      return count(list.length);
    }
    const keyBytes = this.checkKey(c.key);
    this.checkBudget(delta + keyBytes + KEY_OVERHEAD_BYTES - (stored === undefined ? 0 : stored.bytes));
    if (stored !== undefined) this.ks.remove(stored);
    const list = new ListValue(this.ks.arena, values.length);
    for (const value of values) {
      if (front) list.pushFront(value);
      else list.pushBack(value);
    }
    this.ks.create(c.key, keyBytes, list, NO_EXPIRY);
    return count(list.length);
  }

  private pop(c: PopCommand, now: number): Result {
    const n = requireInt(c.count ?? 0, 'count', 0) || 1;
    const e = this.ks.live(c.key, now);
    if (e === undefined) return { kind: 'values', values: [] };
    const list = e.value;
    if (!(list instanceof ListValue)) throw wrongType(c.key, typeOf(list), 'list');
    const take = Math.min(n, list.length);
    const values = new Array<Uint8Array>(take);
    this.ks.beginChange(e, list);
    for (let i = 0; i < take; i++) values[i] = (c.op === 'lpop' ? list.popFront() : list.popBack()) as Uint8Array;
    this.ks.endChange(e, list);
    if (list.length === 0) this.ks.remove(e);
    return { kind: 'values', values };
  }

  private hset(c: HSetCommand, now: number): Result {
    const fields = c.fields;
    if (fields.length !== 1) return this.hsetMany(c, now, this.ks.stored(c.key));
    // The common case, in functions small enough for V8 to inline: one field into a live hash. The
    // pair and its value are read before the key's lookup, so that the CPU fetches them (the
    // command may be cold) while the lookup runs rather than after it.
    const pair = fields[0] as readonly [string, Uint8Array];
    const field = pair[0];
    const value = pair[1];
    const length = value.length;
    const stored = this.ks.stored(c.key);
    if (stored !== undefined && stored.expiresAtMs > now) {
      const hash = stored.value;
      if (hash instanceof HashValue) return this.hsetOne(stored, hash, field, value, length);
    }
    return this.hsetMany(c, now, stored);
  }

  /** HSet of one field into a live hash: the field is looked up once, for the checks and the write. `length` is value.length. */
  private hsetOne(live: KeyEntry, hash: HashValue, field: string, value: Uint8Array, length: number): Result {
    const e = hash.find(field);
    if (e < 0) return this.hsetNewField(live, hash, field, value);
    this.checkHeldField(field);
    this.checkValue(value);
    const delta = length - hash.lengthAt(e);
    if (this.budgeted()) this.checkBudget(delta);
    this.ks.overwriteHashField(live, hash, e, value, delta);
    return count(0);
  }

  private hsetNewField(live: KeyEntry, hash: HashValue, field: string, value: Uint8Array): Result {
    this.checkField(field);
    this.checkValue(value);
    if (this.budgeted()) this.checkBudget(fieldBytes(field, value.length));
    this.ks.beginChange(live, hash);
    hash.add(field, value);
    this.ks.endHashChange(live, hash);
    return count(1);
  }

  /** HSet in general: several fields, or a key that is not a live hash (`stored` is the key's entry, even if expired). */
  private hsetMany(c: HSetCommand, now: number, stored: KeyEntry | undefined): Result {
    const fields = c.fields;
    const n = fields.length;
    if (n === 0) throw new InvalidArgumentError('hset needs at least one field');
    const live = stored !== undefined && stored.expiresAtMs > now ? stored : undefined;
    const hash = live !== undefined && live.value instanceof HashValue ? live.value : undefined;
    // Index loops, not for-of destructuring: this is a hot path, and each pair is a tuple.
    for (let i = 0; i < n; i++) {
      const pair = fields[i] as readonly [string, Uint8Array];
      if (hash === undefined || hash.find(pair[0]) < 0) this.checkField(pair[0]);
      else this.checkHeldField(pair[0]);
      this.checkValue(pair[1]);
    }
    if (live !== undefined && hash === undefined) throw wrongType(c.key, typeOf(live.value), 'hash');
    // The budget needs the net growth, which depends on which fields exist, also earlier in this command.
    let keyBytes = 0;
    let delta = 0;
    if (live === undefined) {
      keyBytes = this.checkKey(c.key);
      delta = keyBytes + KEY_OVERHEAD_BYTES - (stored === undefined ? 0 : stored.bytes);
    }
    if (this.budgeted()) {
      const pending = n > 1 ? new Map<string, number>() : undefined;
      for (let i = 0; i < n; i++) {
        const [field, value] = fields[i] as readonly [string, Uint8Array];
        const old = pending?.get(field) ?? hash?.valueLength(field);
        delta += old === undefined ? fieldBytes(field, value.length) : value.length - old;
        pending?.set(field, value.length);
      }
      this.checkBudget(delta);
    }
    let added = 0;
    if (live !== undefined && hash !== undefined) {
      this.ks.beginChange(live, hash);
      for (let i = 0; i < n; i++) {
        const pair = fields[i] as readonly [string, Uint8Array];
        if (hash.set(pair[0], pair[1])) added++;
      }
      this.ks.endHashChange(live, hash);
    } else {
      if (stored !== undefined) this.ks.remove(stored);
      const fresh = new HashValue(this.ks.arena);
      for (let i = 0; i < n; i++) {
        const pair = fields[i] as readonly [string, Uint8Array];
        if (fresh.set(pair[0], pair[1])) added++;
      }
      this.ks.create(c.key, keyBytes, fresh, NO_EXPIRY);
    }
    return count(added);
  }

  private keys(c: KeysCommand, now: number): Result {
    const limit = requireInt(c.limit ?? 0, 'limit', 0) || DEFAULT_KEYS_LIMIT;
    if (limit > MAX_KEYS_LIMIT) throw new InvalidArgumentError(`limit ${limit} is above the maximum of ${MAX_KEYS_LIMIT}`);
    const match = compileGlob(c.pattern === undefined || c.pattern === '' ? '*' : c.pattern);
    const cursor = c.cursor ?? '';
    let from = 0;
    if (cursor !== '') {
      from = /^(0|[1-9][0-9]{0,9})$/.test(cursor) ? Number(cursor) : -1;
      if (from < 0 || from >= 0x1_0000_0000) throw new InvalidArgumentError(`cursor '${cursor}' is not one this server returned`);
    }
    const page = this.ks.scanPage(from, limit, limit * KEYS_WORK_FACTOR, match, now);
    return { kind: 'keys', keys: page.keys, nextCursor: page.next < 0 ? '' : String(page.next) };
  }

  private evict(c: EvictCommand): Result {
    let n = 0;
    for (const target of c.keys) {
      const e = this.ks.stored(target.key);
      if (e !== undefined && this.ks.fingerprint(e) === target.fingerprint) {
        this.ks.remove(e);
        n++;
      }
    }
    return count(n);
  }

  private txn(c: TxnCommand, now: number, mode: Mode): Result {
    if (this.inTxn) throw new InvalidArgumentError('a Txn cannot contain a Txn');
    let succeeded = true;
    for (const compare of c.compares) {
      if (!this.compare(compare, now)) {
        succeeded = false;
        break;
      }
    }
    const branch = succeeded ? c.success : c.failure;
    for (const op of branch) {
      if ((op as Command).op === 'txn' || (op as Command).op === 'expireSweep' || (op as Command).op === 'evict') {
        throw new InvalidArgumentError(`'${op.op}' cannot be part of a Txn`);
      }
    }
    if (mode !== 'apply') {
      if (!branch.every(isReadOnly)) throw new InvalidArgumentError('a Txn with writes must go through the log, not read()');
    } else {
      this.ks.beginUndo();
    }
    const usedBefore = this.ks.memoryUsed;
    const results: Result[] = [];
    this.inTxn = true;
    try {
      branch.forEach((op, i) => {
        try {
          results.push(this.exec(op, now, mode));
        } catch (error) {
          if (!(error instanceof StateError)) throw error;
          throw errorFromCode(error.code, `txn ${succeeded ? 'success' : 'failure'} op ${i} (${op.op}): ${error.message}`);
        }
      });
      this.inTxn = false;
      if (mode === 'apply') this.checkBudget(this.ks.memoryUsed - usedBefore, usedBefore);
    } catch (error) {
      this.inTxn = false;
      if (mode === 'apply') this.ks.rollbackUndo();
      throw error;
    }
    if (mode === 'apply') this.ks.commitUndo();
    return { kind: 'txn', succeeded, results };
  }

  private compare(c: Compare, now: number): boolean {
    const e = this.ks.live(c.key, now);
    switch (c.target) {
      case 'value':
        return e !== undefined && e.value instanceof Uint8Array && holds(c.op, compareBytes(e.value, c.value));
      case 'type':
        return (e === undefined ? 'none' : typeOf(e.value)) === c.type ? c.op === 'eq' : c.op === 'ne';
      case 'length': {
        const v = e?.value;
        const length = v === undefined ? 0 : v instanceof Uint8Array ? v.length : v instanceof ListValue ? v.length : v.size;
        return holds(c.op, length - c.length);
      }
    }
  }

  private expiryAt(now: number, ttlMs: number): number {
    const at = now + ttlMs;
    if (!Number.isSafeInteger(at)) throw new InvalidArgumentError(`ttlMs ${ttlMs} puts the expiry past the largest time`);
    return at;
  }

  /** UTF-8 length of a key about to be created, within the limit. */
  private checkKey(key: string): number {
    const n = utf8Length(key);
    if (n < 0) throw new InvalidArgumentError('key is not valid Unicode (lone surrogate)');
    if (n > this.config.maxKeyBytes) throw new InvalidArgumentError(`key is ${n} bytes; the limit is ${this.config.maxKeyBytes}`);
    return n;
  }

  private checkField(field: string): void {
    const n = utf8Length(field);
    if (n < 0) throw new InvalidArgumentError('hash field is not valid Unicode (lone surrogate)');
    if (n > this.config.maxKeyBytes) throw new InvalidArgumentError(`hash field is ${n} bytes; the limit is ${this.config.maxKeyBytes}`);
  }

  /**
   * checkField for a field the hash holds: it is valid Unicode (it was
   * checked when added), so only its length can fail, if the limit was
   * lowered since; a field of at most a third of the limit in UTF-16 code
   * units fits without counting its UTF-8 bytes.
   */
  private checkHeldField(field: string): void {
    if (field.length * 3 > this.config.maxKeyBytes) this.checkField(field);
  }

  private checkValue(value: Uint8Array): void {
    if (value.length > this.config.maxValueBytes) throw this.valueTooLarge(value.length);
  }

  /** checkValue's error, built apart so that the check stays small enough for V8 to inline into the write paths. */
  private valueTooLarge(length: number): InvalidArgumentError {
    return new InvalidArgumentError(`value is ${length} bytes; the limit is ${this.config.maxValueBytes}`);
  }

  /** Whether writes are checked against a budget here (not inside a Txn, which is checked as a whole). */
  private budgeted(): boolean {
    return !this.inTxn && this.config.maxMemoryBytes > 0 && this.config.eviction === 'noeviction';
  }

  /**
   * Refuses a write that grows memory use past the budget when eviction is
   * off. Writes that shrink or keep it pass even over budget (e.g. after a
   * lower budget was configured), so the store can always be cleaned up.
   */
  private checkBudget(delta: number, base = this.ks.memoryUsed): void {
    if (delta <= 0 || !this.budgeted()) return;
    const max = this.config.maxMemoryBytes;
    if (base + delta > max) {
      throw new ResourceExhaustedError(
        `memory budget of ${max} bytes would be exceeded (${base} used, this write adds ${delta}); eviction is off`,
      );
    }
  }
}
