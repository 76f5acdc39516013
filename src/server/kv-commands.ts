/**
 * The KV API's requests and responses, translated to and from the state
 * machine's commands and results. Requests are validated here, before they
 * reach the log, so that bad input costs no entry and changes nothing.
 */
import type { ClientSession, Command, Compare, CompareOp, Result, SetCondition, TxnOpCommand } from '../state/index.ts';
import { DEFAULT_KEYS_LIMIT, InvalidArgumentError, MAX_KEYS_LIMIT, ResourceExhaustedError, StateError } from '../state/index.ts';
import type { KvMethod } from '../proto/loader.ts';

/** Limits every request is checked against. */
export interface RequestLimits {
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  /** Most keys, list elements or hash fields one answer may hold (--max-keys-per-call). */
  readonly maxKeysPerCall: number;
}

/** A message as proto-loader gives it (keepCase, enums as strings, 64-bit as numbers). */
export type ProtoMessage = Record<string, unknown>;

export type Consistency = 'LINEARIZABLE' | 'SERIALIZABLE';

export interface DecodedRequest {
  readonly command: Command;
  readonly write: boolean;
  readonly consistency: Consistency;
  readonly session: ClientSession | null;
}

/** A TTL longer than this (about 100 years) is a mistake, not a wish. */
export const MAX_TTL_MS = 100 * 365 * 24 * 60 * 60 * 1000;
/** Most elements one request may name (keys to delete, values to push, fields to set). */
export const MAX_ELEMENTS_PER_REQUEST = 100_000;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

function invalid(message: string): never {
  throw new InvalidArgumentError(message);
}

class Reader {
  constructor(
    readonly message: ProtoMessage,
    readonly limits: RequestLimits,
    private readonly where: string,
  ) {}

  key(field = 'key'): string {
    return this.checkKey(this.message[field], `${this.where}.${field}`);
  }

  checkKey(value: unknown, name: string): string {
    if (typeof value !== 'string') invalid(`${name} must be a string`);
    if (value.length === 0) invalid(`${name} must not be empty`);
    const bytes = encoder.encode(value).length;
    if (bytes > this.limits.maxKeyBytes) invalid(`${name} is ${bytes} bytes; the limit is ${this.limits.maxKeyBytes} (--max-key-bytes)`);
    return value;
  }

  keys(field = 'keys'): string[] {
    const list = this.list(field);
    if (list.length === 0) invalid(`${this.where}.${field} must name at least one key`);
    return list.map((k, i) => this.checkKey(k, `${this.where}.${field}[${i}]`));
  }

  value(field = 'value'): Uint8Array {
    return this.checkValue(this.message[field] ?? EMPTY, `${this.where}.${field}`);
  }

  checkValue(value: unknown, name: string): Uint8Array {
    if (!(value instanceof Uint8Array)) invalid(`${name} must be bytes`);
    if (value.length > this.limits.maxValueBytes) invalid(`${name} is ${value.length} bytes; the limit is ${this.limits.maxValueBytes} (--max-value-bytes)`);
    return value;
  }

  values(field = 'values'): Uint8Array[] {
    const list = this.list(field);
    if (list.length === 0) invalid(`${this.where}.${field} must hold at least one value`);
    return list.map((v, i) => this.checkValue(v, `${this.where}.${field}[${i}]`));
  }

  list(field: string): unknown[] {
    const value = this.message[field] ?? [];
    if (!Array.isArray(value)) invalid(`${this.where}.${field} must be a list`);
    if (value.length > MAX_ELEMENTS_PER_REQUEST) invalid(`${this.where}.${field} has ${value.length} elements; the limit is ${MAX_ELEMENTS_PER_REQUEST}`);
    return value;
  }

  int(field: string, min: number, max: number): number {
    const raw = this.message[field] ?? 0;
    const value = typeof raw === 'string' ? Number(raw) : raw;
    if (typeof value !== 'number' || !Number.isSafeInteger(value)) invalid(`${this.where}.${field} must be an integer`);
    if (value < min || value > max) invalid(`${this.where}.${field} is ${value}; it must be from ${min} to ${max}`);
    return value;
  }

  /** A count of elements to answer with (LPop, RPop): at least 1, at most --max-keys-per-call. */
  popCount(): number {
    const count = Math.max(1, this.int('count', 0, MAX_COUNT));
    const max = this.limits.maxKeysPerCall;
    if (count > max) invalid(`${this.where}.count is ${count}; the limit is ${max} (--max-keys-per-call)`);
    return count;
  }

  ttlMs(field = 'ttl_ms'): number {
    return this.int(field, 0, MAX_TTL_MS);
  }

  enumValue<T extends string>(field: string, allowed: Record<string, T>): T {
    const raw = this.message[field];
    const name = typeof raw === 'number' ? Object.keys(allowed)[raw] : raw;
    const value = typeof name === 'string' ? allowed[name] : undefined;
    if (value === undefined) invalid(`${this.where}.${field} '${String(raw)}' is not one of ${Object.keys(allowed).join(', ')}`);
    return value;
  }

  fieldsMap(field = 'fields'): [string, Uint8Array][] {
    const raw = this.message[field] ?? {};
    if (typeof raw !== 'object' || raw === null) invalid(`${this.where}.${field} must be a map`);
    const entries = Object.entries(raw as Record<string, unknown>);
    if (entries.length === 0) invalid(`${this.where}.${field} must hold at least one field`);
    if (entries.length > MAX_ELEMENTS_PER_REQUEST) invalid(`${this.where}.${field} has ${entries.length} fields; the limit is ${MAX_ELEMENTS_PER_REQUEST}`);
    return entries.map(([name, value]) => [this.checkField(name, `${this.where}.${field} key`), this.checkValue(value, `${this.where}.${field}['${name}']`)]);
  }

  checkField(value: unknown, name: string): string {
    if (typeof value !== 'string') invalid(`${name} must be a string`);
    const bytes = encoder.encode(value).length;
    if (bytes > this.limits.maxKeyBytes) invalid(`${name} is ${bytes} bytes; the limit is ${this.limits.maxKeyBytes} (--max-key-bytes)`);
    return value;
  }

  fieldNames(field = 'fields'): string[] {
    const list = this.list(field);
    if (list.length === 0) invalid(`${this.where}.${field} must name at least one field`);
    return list.map((f, i) => this.checkField(f, `${this.where}.${field}[${i}]`));
  }

  bool(field: string): boolean {
    const value = this.message[field] ?? false;
    if (typeof value !== 'boolean') invalid(`${this.where}.${field} must be a boolean`);
    return value;
  }

  str(field: string): string {
    const value = this.message[field] ?? '';
    if (typeof value !== 'string') invalid(`${this.where}.${field} must be a string`);
    return value;
  }

  consistency(): Consistency {
    return this.enumValue('consistency', { LINEARIZABLE: 'LINEARIZABLE', SERIALIZABLE: 'SERIALIZABLE' } as const);
  }

  session(): ClientSession | null {
    const clientId = this.message['client_id'] ?? '';
    const sequence = this.int('sequence', 0, Number.MAX_SAFE_INTEGER);
    if (typeof clientId !== 'string') invalid(`${this.where}.client_id must be a string`);
    if (clientId === '') {
      if (sequence !== 0) invalid(`${this.where}.sequence is set without a client_id`);
      return null;
    }
    if (clientId.length > 128) invalid(`${this.where}.client_id is ${clientId.length} characters; the limit is 128`);
    if (sequence === 0) invalid(`${this.where}.client_id is set, so sequence must be 1 or more`);
    return { clientId, sequence };
  }
}

const CONDITIONS: Record<string, SetCondition> = { ALWAYS: 'always', IF_ABSENT: 'ifAbsent', IF_PRESENT: 'ifPresent' };
const COMPARE_OPS: Record<string, CompareOp> = { EQUAL: 'eq', NOT_EQUAL: 'ne', LESS: 'lt', LESS_OR_EQUAL: 'le', GREATER: 'gt', GREATER_OR_EQUAL: 'ge' };
const VALUE_TYPES = { NONE: 'none', STRING: 'string', LIST: 'list', HASH: 'hash' } as const;
const MAX_INDEX = 2 ** 52;
const MAX_COUNT = 2 ** 32 - 1;

/** The single-key operations (everything but Txn and Watch), by RPC method name. */
const OPERATIONS: Record<string, { write: boolean; decode: (r: Reader) => TxnOpCommand }> = {
  Get: { write: false, decode: (r) => ({ op: 'get', key: r.key() }) },
  Set: {
    write: true,
    decode: (r) => {
      const ttlMs = r.ttlMs();
      const keepTtl = r.bool('keep_ttl');
      if (keepTtl && ttlMs > 0) invalid('Set takes ttl_ms or keep_ttl, not both');
      return { op: 'set', key: r.key(), value: r.value(), ttlMs, condition: r.enumValue('condition', CONDITIONS), keepTtl };
    },
  },
  Delete: { write: true, decode: (r) => ({ op: 'delete', keys: r.keys() }) },
  Exists: { write: false, decode: (r) => ({ op: 'exists', keys: r.keys() }) },
  Expire: { write: true, decode: (r) => ({ op: 'expire', key: r.key(), ttlMs: r.ttlMs() }) },
  Ttl: { write: false, decode: (r) => ({ op: 'ttl', key: r.key() }) },
  Type: { write: false, decode: (r) => ({ op: 'type', key: r.key() }) },
  Keys: {
    write: false,
    decode: (r) => {
      const pattern = r.str('pattern');
      if (pattern.length > 4096) invalid(`KeysRequest.pattern is ${pattern.length} characters; the limit is 4096`);
      const limit = keysLimit(r);
      const cursor = r.str('cursor');
      return { op: 'keys', pattern: pattern === '' ? '*' : pattern, ...(limit > 0 ? { limit } : {}), ...(cursor !== '' ? { cursor } : {}) };
    },
  },
  Size: { write: false, decode: () => ({ op: 'size' }) },
  Clear: { write: true, decode: () => ({ op: 'clear' }) },
  LPush: { write: true, decode: (r) => ({ op: 'lpush', key: r.key(), values: r.values() }) },
  RPush: { write: true, decode: (r) => ({ op: 'rpush', key: r.key(), values: r.values() }) },
  LPop: { write: true, decode: (r) => ({ op: 'lpop', key: r.key(), count: r.popCount() }) },
  RPop: { write: true, decode: (r) => ({ op: 'rpop', key: r.key(), count: r.popCount() }) },
  LIndex: { write: false, decode: (r) => ({ op: 'lindex', key: r.key(), index: r.int('index', -MAX_INDEX, MAX_INDEX) }) },
  LSet: { write: true, decode: (r) => ({ op: 'lset', key: r.key(), index: r.int('index', -MAX_INDEX, MAX_INDEX), value: r.value() }) },
  LRange: {
    write: false,
    decode: (r) => ({ op: 'lrange', key: r.key(), start: r.int('start', -MAX_INDEX, MAX_INDEX), stop: r.int('stop', -MAX_INDEX, MAX_INDEX) }),
  },
  LLen: { write: false, decode: (r) => ({ op: 'llen', key: r.key() }) },
  HSet: { write: true, decode: (r) => ({ op: 'hset', key: r.key(), fields: r.fieldsMap() }) },
  HGet: { write: false, decode: (r) => ({ op: 'hget', key: r.key(), field: r.checkField(r.str('field'), 'HGetRequest.field') }) },
  HDel: { write: true, decode: (r) => ({ op: 'hdel', key: r.key(), fields: r.fieldNames() }) },
  HGetAll: { write: false, decode: (r) => ({ op: 'hgetall', key: r.key() }) },
  HLen: { write: false, decode: (r) => ({ op: 'hlen', key: r.key() }) },
};

/**
 * A Keys page size: the request's, at most --max-keys-per-call (and the most
 * one page can hold); 0 asks for the default page, itself cut to the flag.
 */
function keysLimit(r: Reader): number {
  const limit = r.int('limit', 0, Number.MAX_SAFE_INTEGER);
  const flag = r.limits.maxKeysPerCall;
  const max = Math.min(flag, MAX_KEYS_LIMIT);
  if (limit > max) invalid(`KeysRequest.limit is ${limit}; the limit is ${max} (${max === flag ? '--max-keys-per-call' : 'the most one page holds'})`);
  if (limit === 0 && max < DEFAULT_KEYS_LIMIT) return max;
  return limit;
}

/**
 * Refuses a read's answer with more elements than --max-keys-per-call (LRange,
 * HGetAll, and those inside a read-only Txn). Writes are not checked: their
 * answer cannot be refused once they took effect, and pops are bounded by count.
 */
export function checkAnswerSize(method: string, result: Result, maxKeysPerCall: number): void {
  if (result.kind === 'txn') {
    for (const inner of result.results) checkAnswerSize(`${method} operation`, inner, maxKeysPerCall);
    return;
  }
  const size = result.kind === 'values' ? result.values.length : result.kind === 'fields' ? result.fields.length : 0;
  if (size <= maxKeysPerCall) return;
  const what = result.kind === 'values' ? 'elements; ask for a smaller range (start, stop)' : 'fields; read them with HGet, or split the hash';
  throw new ResourceExhaustedError(`${method} would answer with ${size} ${what}: the limit is ${maxKeysPerCall} (--max-keys-per-call)`);
}

/** RequestOp oneof case -> RPC method name. */
const TXN_CASES: Record<string, string> = {
  get: 'Get', set: 'Set', delete: 'Delete', exists: 'Exists', expire: 'Expire', ttl: 'Ttl', type: 'Type', keys: 'Keys', size: 'Size',
  clear: 'Clear', lpush: 'LPush', rpush: 'RPush', lpop: 'LPop', rpop: 'RPop', lindex: 'LIndex', lset: 'LSet', lrange: 'LRange',
  llen: 'LLen', hset: 'HSet', hget: 'HGet', hdel: 'HDel', hgetall: 'HGetAll', hlen: 'HLen',
};
const METHOD_TO_CASE: Record<string, string> = Object.fromEntries(Object.entries(TXN_CASES).map(([c, m]) => [m, c]));

/** Most operations one Txn may hold, in both branches together. */
export const MAX_TXN_OPS = 1000;

/** Translates a request of `method` into a command; throws InvalidArgumentError naming what is wrong. */
export function decodeRequest(method: KvMethod, message: ProtoMessage, limits: RequestLimits): DecodedRequest {
  const reader = new Reader(message, limits, `${method}Request`);
  if (method === 'Txn') return decodeTxn(reader, limits);
  const operation = OPERATIONS[method];
  if (operation === undefined) invalid(`${method} is not a single-key operation`);
  const command = operation.decode(reader);
  return {
    command,
    write: operation.write,
    consistency: operation.write ? 'LINEARIZABLE' : reader.consistency(),
    session: operation.write ? reader.session() : null,
  };
}

function decodeTxn(reader: Reader, limits: RequestLimits): DecodedRequest {
  const compares = reader.list('compares').map((c, i) => decodeCompare(c as ProtoMessage, limits, i));
  const branch = (name: 'success' | 'failure'): TxnOpCommand[] =>
    reader.list(name).map((op, i) => {
      const requestOp = op as ProtoMessage;
      const which = requestOp['request'];
      const method = typeof which === 'string' ? TXN_CASES[which] : undefined;
      if (method === undefined) invalid(`TxnRequest.${name}[${i}] holds no operation`);
      const inner = OPERATIONS[method];
      if (inner === undefined) invalid(`TxnRequest.${name}[${i}]: ${method} cannot be part of a Txn`);
      return inner.decode(new Reader((requestOp[which as string] ?? {}) as ProtoMessage, limits, `TxnRequest.${name}[${i}].${String(which)}`));
    });
  const success = branch('success');
  const failure = branch('failure');
  if (compares.length + success.length + failure.length > MAX_TXN_OPS) {
    invalid(`TxnRequest has ${compares.length + success.length + failure.length} compares and operations; the limit is ${MAX_TXN_OPS}`);
  }
  const write = [...success, ...failure].some((op) => OPERATIONS[METHOD_TO_OP_NAME[op.op] ?? '']?.write === true);
  return {
    command: { op: 'txn', compares, success, failure },
    write,
    consistency: write ? 'LINEARIZABLE' : reader.consistency(),
    session: write ? reader.session() : null,
  };
}

const METHOD_TO_OP_NAME: Record<string, string> = Object.fromEntries(Object.keys(OPERATIONS).map((method) => [method.toLowerCase(), method]));

function decodeCompare(message: ProtoMessage, limits: RequestLimits, i: number): Compare {
  const reader = new Reader(message, limits, `TxnRequest.compares[${i}]`);
  const key = reader.key();
  const op = reader.enumValue('op', COMPARE_OPS);
  switch (message['target']) {
    case 'value':
      return { target: 'value', key, op, value: reader.value() };
    case 'length':
      return { target: 'length', key, op, length: reader.int('length', 0, Number.MAX_SAFE_INTEGER) };
    case 'type': {
      if (op !== 'eq' && op !== 'ne') invalid(`TxnRequest.compares[${i}]: a type compare takes EQUAL or NOT_EQUAL`);
      return { target: 'type', key, op, type: reader.enumValue('type', VALUE_TYPES) };
    }
    case 'exists': {
      if (op !== 'eq' && op !== 'ne') invalid(`TxnRequest.compares[${i}]: an exists compare takes EQUAL or NOT_EQUAL`);
      // exists == true is "type is not none".
      const exists = reader.bool('exists');
      return { target: 'type', key, op: exists === (op === 'eq') ? 'ne' : 'eq', type: 'none' };
    }
    default:
      return invalid(`TxnRequest.compares[${i}] needs a target: value, type, length or exists`);
  }
}

// ---- Responses --------------------------------------------------------------

const TYPE_NAMES = { none: 'NONE', string: 'STRING', list: 'LIST', hash: 'HASH' } as const;

/** Turns a result into the RPC's response; an error result is thrown as its StateError. */
export function encodeResponse(method: string, result: Result): ProtoMessage {
  if (result.kind === 'error') throw result.error;
  switch (method) {
    case 'Get':
    case 'LIndex':
    case 'HGet':
      return expect(result, 'value', (r) => ({ found: r.found, value: r.value ?? EMPTY }));
    case 'Set':
      return expect(result, 'set', (r) => ({ applied: r.applied, previous_found: r.previousFound, previous: r.previous ?? EMPTY }));
    case 'Delete':
    case 'Clear':
    case 'HDel':
      return expect(result, 'count', (r) => ({ deleted: r.count }));
    case 'Exists':
      return expect(result, 'count', (r) => ({ count: r.count }));
    case 'Size':
      return expect(result, 'count', (r) => ({ keys: r.count }));
    case 'LPush':
    case 'RPush':
    case 'LLen':
    case 'HLen':
      return expect(result, 'count', (r) => ({ length: r.count }));
    case 'HSet':
      return expect(result, 'count', (r) => ({ added: r.count }));
    case 'Expire':
      return expect(result, 'applied', (r) => ({ applied: r.applied }));
    case 'Ttl':
      return expect(result, 'ttl', (r) => ({ ttl_ms: r.ttlMs }));
    case 'Type':
      return expect(result, 'type', (r) => ({ type: TYPE_NAMES[r.type] }));
    case 'Keys':
      return expect(result, 'keys', (r) => ({ keys: r.keys, next_cursor: r.nextCursor }));
    case 'LPop':
    case 'RPop':
    case 'LRange':
      return expect(result, 'values', (r) => ({ values: r.values }));
    case 'LSet':
      return {};
    case 'HGetAll':
      return expect(result, 'fields', (r) => ({ fields: Object.fromEntries(r.fields) }));
    default:
      throw new Error(`no response encoding for ${method}`);
  }
}

/** The Txn response: each operation's result under the oneof case of its request. */
export function encodeTxnResponse(command: Command, result: Result): ProtoMessage {
  if (result.kind === 'error') throw result.error;
  if (result.kind !== 'txn' || command.op !== 'txn') throw new Error(`expected a txn result, got ${result.kind}`);
  const ops = result.succeeded ? command.success : command.failure;
  const responses = result.results.map((inner, i) => {
    const method = METHOD_TO_OP_NAME[(ops[i] as TxnOpCommand).op] as string;
    const oneofCase = METHOD_TO_CASE[method] as string;
    return { [oneofCase]: encodeResponse(method, inner) };
  });
  return { succeeded: result.succeeded, responses };
}

function expect<K extends Result['kind']>(result: Result, kind: K, build: (r: Extract<Result, { kind: K }>) => ProtoMessage): ProtoMessage {
  if (result.kind !== kind) throw new Error(`expected a ${kind} result, got ${result.kind}`);
  return build(result as Extract<Result, { kind: K }>);
}

export function isStateError(error: unknown): error is StateError {
  return error instanceof StateError;
}
