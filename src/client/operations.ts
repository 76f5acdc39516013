/**
 * The KV operations, each described once: which RPC carries it, whether it
 * writes (and so carries a session), how its arguments become a request and
 * how the answer becomes a result. QuorumClient's methods and Txn branches
 * both go through this table, so a single call and the same operation inside
 * a Txn cannot drift apart.
 */
import type { KvMethod } from '../proto/loader.ts';
import { invalidArgument } from './errors.ts';
import { plainBytes, toBytes, type Value } from './values.ts';
import type { WireCompareOp, WireCondition, WireRequest, WireResponses, WireValueType } from './wire.ts';

export type Consistency = 'linearizable' | 'serializable';
export type ValueType = 'none' | 'string' | 'list' | 'hash';
/** When a Set applies: always (SET), only when the key is missing (NX) or present (XX). */
export type SetCondition = 'always' | 'ifAbsent' | 'ifPresent';
/** Hash fields to set: a record or a map from field name to value. */
export type FieldsInput = Readonly<Record<string, Value>> | ReadonlyMap<string, Value>;

export interface SetResult {
  /** False when the condition did not hold. */
  readonly applied: boolean;
  /** Whether the key existed, with any type, before the Set. */
  readonly previousFound: boolean;
  /** The previous value when it was a string; null when the key was missing, empty when it held a list or hash. */
  readonly previous: Uint8Array | null;
}

export interface KeysPage {
  readonly keys: string[];
  /** Pass as `cursor` for the next page; null when the scan is complete. */
  readonly nextCursor: string | null;
}

/** One operation, as a Txn branch lists it (the client's methods build the same objects). */
export type Op =
  | { readonly op: 'get'; readonly key: string }
  | { readonly op: 'set'; readonly key: string; readonly value: Value; readonly ttlMs?: number; readonly condition?: SetCondition; readonly keepTtl?: boolean }
  | { readonly op: 'del'; readonly keys: readonly string[] }
  | { readonly op: 'exists'; readonly keys: readonly string[] }
  | { readonly op: 'expire'; readonly key: string; readonly ttlMs: number }
  | { readonly op: 'ttl'; readonly key: string }
  | { readonly op: 'type'; readonly key: string }
  | { readonly op: 'keys'; readonly pattern?: string; readonly limit?: number; readonly cursor?: string }
  | { readonly op: 'size' }
  | { readonly op: 'clear' }
  | { readonly op: 'lpush'; readonly key: string; readonly values: readonly Value[] }
  | { readonly op: 'rpush'; readonly key: string; readonly values: readonly Value[] }
  | { readonly op: 'lpop'; readonly key: string; readonly count?: number }
  | { readonly op: 'rpop'; readonly key: string; readonly count?: number }
  | { readonly op: 'lindex'; readonly key: string; readonly index: number }
  | { readonly op: 'lset'; readonly key: string; readonly index: number; readonly value: Value }
  | { readonly op: 'lrange'; readonly key: string; readonly start: number; readonly stop: number }
  | { readonly op: 'llen'; readonly key: string }
  | { readonly op: 'hset'; readonly key: string; readonly fields: FieldsInput }
  | { readonly op: 'hget'; readonly key: string; readonly field: string }
  | { readonly op: 'hdel'; readonly key: string; readonly fields: readonly string[] }
  | { readonly op: 'hgetall'; readonly key: string }
  | { readonly op: 'hlen'; readonly key: string };

export type OpName = Op['op'];
export type OpOf<K extends OpName> = Extract<Op, { readonly op: K }>;

/** What each operation answers. */
export interface OpResults {
  get: Uint8Array | null;
  set: SetResult;
  del: number;
  exists: number;
  expire: boolean;
  ttl: number;
  type: ValueType;
  keys: KeysPage;
  size: number;
  clear: number;
  lpush: number;
  rpush: number;
  lpop: Uint8Array[];
  rpop: Uint8Array[];
  lindex: Uint8Array | null;
  lset: null;
  lrange: Uint8Array[];
  llen: number;
  hset: number;
  hget: Uint8Array | null;
  hdel: number;
  hgetall: Map<string, Uint8Array>;
  hlen: number;
}

/** One answer of a Txn branch, tagged with the operation it answers. */
export type OpResult = { [K in OpName]: { readonly op: K; readonly result: OpResults[K] } }[OpName];

export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=';

/**
 * A Txn guard on one key: its string value, its type, its length (string
 * bytes, list length or hash field count) or whether it exists. Only == and
 * != apply to type and exists.
 */
export type Compare = { readonly key: string; readonly op?: CompareOp } & (
  | { readonly value: Value }
  | { readonly type: ValueType }
  | { readonly length: number }
  | { readonly exists: boolean }
);

/** The Txn oneof case (and response field) of each operation. */
type CaseOf<K extends OpName> = K extends 'del' ? 'delete' : K;

interface OpCodec<K extends OpName> {
  readonly method: KvMethod;
  readonly txnCase: CaseOf<K>;
  readonly write: boolean;
  encode(op: OpOf<K>): WireRequest;
  decode(response: WireResponses[CaseOf<K>]): OpResults[K];
}

type OpTable = { readonly [K in OpName]: OpCodec<K> };

const MAX_UINT32 = 2 ** 32 - 1;

/** A non-negative integer a uint64 field can carry exactly. */
export function checkUint(name: string, n: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(n) || n < 0 || n > max) throw invalidArgument(`${name} must be an integer from 0 to ${max} (got ${n})`);
  return n;
}

/** A signed integer (list indexes). */
export function checkInt(name: string, n: number): number {
  if (!Number.isSafeInteger(n)) throw invalidArgument(`${name} must be a safe integer (got ${n})`);
  return n;
}

const CONDITIONS: Readonly<Record<SetCondition, WireCondition>> = { always: 'ALWAYS', ifAbsent: 'IF_ABSENT', ifPresent: 'IF_PRESENT' };
const COMPARE_OPS: Readonly<Record<CompareOp, WireCompareOp>> = {
  '==': 'EQUAL',
  '!=': 'NOT_EQUAL',
  '<': 'LESS',
  '<=': 'LESS_OR_EQUAL',
  '>': 'GREATER',
  '>=': 'GREATER_OR_EQUAL',
};
const TO_WIRE_TYPE: Readonly<Record<ValueType, WireValueType>> = { none: 'NONE', string: 'STRING', list: 'LIST', hash: 'HASH' };

export function fromWireType(type: WireValueType): ValueType {
  return type.toLowerCase() as ValueType;
}

function found(response: { readonly found: boolean; readonly value: Uint8Array }): Uint8Array | null {
  return response.found ? plainBytes(response.value) : null;
}

function all(values: readonly Uint8Array[]): Uint8Array[] {
  return values.map(plainBytes);
}

function fieldsOf(fields: FieldsInput): Record<string, Uint8Array> {
  const entries = fields instanceof Map ? [...(fields as ReadonlyMap<string, Value>)] : Object.entries(fields as Readonly<Record<string, Value>>);
  if (entries.length === 0) throw invalidArgument('hset needs at least one field');
  // No prototype: a field may be named __proto__, which `{}[field] = value` would not store.
  const out = Object.create(null) as Record<string, Uint8Array>;
  for (const [field, value] of entries) out[field] = toBytes(value);
  return out;
}

function nonEmpty(op: string, what: string, list: readonly unknown[]): void {
  if (list.length === 0) throw invalidArgument(`${op} needs at least one ${what}`);
}

const length = (r: { readonly length: number }): number => r.length;

export const OPS: OpTable = {
  get: { method: 'Get', txnCase: 'get', write: false, encode: (o) => ({ key: o.key }), decode: found },
  set: {
    method: 'Set',
    txnCase: 'set',
    write: true,
    encode: (o) => {
      const ttlMs = checkUint('ttlMs', o.ttlMs ?? 0);
      if (o.keepTtl === true && ttlMs > 0) throw invalidArgument('set: keepTtl cannot be combined with ttlMs');
      return { key: o.key, value: toBytes(o.value), ttl_ms: ttlMs, condition: CONDITIONS[o.condition ?? 'always'], keep_ttl: o.keepTtl ?? false };
    },
    decode: (r) => ({ applied: r.applied, previousFound: r.previous_found, previous: r.previous_found ? plainBytes(r.previous) : null }),
  },
  del: {
    method: 'Delete',
    txnCase: 'delete',
    write: true,
    encode: (o) => (nonEmpty('del', 'key', o.keys), { keys: [...o.keys] }),
    decode: (r) => r.deleted,
  },
  exists: {
    method: 'Exists',
    txnCase: 'exists',
    write: false,
    encode: (o) => (nonEmpty('exists', 'key', o.keys), { keys: [...o.keys] }),
    decode: (r) => r.count,
  },
  expire: {
    method: 'Expire',
    txnCase: 'expire',
    write: true,
    encode: (o) => ({ key: o.key, ttl_ms: checkUint('ttlMs', o.ttlMs) }),
    decode: (r) => r.applied,
  },
  ttl: { method: 'Ttl', txnCase: 'ttl', write: false, encode: (o) => ({ key: o.key }), decode: (r) => r.ttl_ms },
  type: { method: 'Type', txnCase: 'type', write: false, encode: (o) => ({ key: o.key }), decode: (r) => fromWireType(r.type) },
  keys: {
    method: 'Keys',
    txnCase: 'keys',
    write: false,
    encode: (o) => ({ pattern: o.pattern ?? '', limit: checkUint('limit', o.limit ?? 0, MAX_UINT32), cursor: o.cursor ?? '' }),
    decode: (r) => ({ keys: [...r.keys], nextCursor: r.next_cursor === '' ? null : r.next_cursor }),
  },
  size: { method: 'Size', txnCase: 'size', write: false, encode: () => ({}), decode: (r) => r.keys },
  clear: { method: 'Clear', txnCase: 'clear', write: true, encode: () => ({}), decode: (r) => r.deleted },
  lpush: {
    method: 'LPush',
    txnCase: 'lpush',
    write: true,
    encode: (o) => (nonEmpty('lpush', 'value', o.values), { key: o.key, values: o.values.map(toBytes) }),
    decode: length,
  },
  rpush: {
    method: 'RPush',
    txnCase: 'rpush',
    write: true,
    encode: (o) => (nonEmpty('rpush', 'value', o.values), { key: o.key, values: o.values.map(toBytes) }),
    decode: length,
  },
  lpop: {
    method: 'LPop',
    txnCase: 'lpop',
    write: true,
    encode: (o) => ({ key: o.key, count: checkUint('count', o.count ?? 0, MAX_UINT32) }),
    decode: (r) => all(r.values),
  },
  rpop: {
    method: 'RPop',
    txnCase: 'rpop',
    write: true,
    encode: (o) => ({ key: o.key, count: checkUint('count', o.count ?? 0, MAX_UINT32) }),
    decode: (r) => all(r.values),
  },
  lindex: {
    method: 'LIndex',
    txnCase: 'lindex',
    write: false,
    encode: (o) => ({ key: o.key, index: checkInt('index', o.index) }),
    decode: found,
  },
  lset: {
    method: 'LSet',
    txnCase: 'lset',
    write: true,
    encode: (o) => ({ key: o.key, index: checkInt('index', o.index), value: toBytes(o.value) }),
    decode: () => null,
  },
  lrange: {
    method: 'LRange',
    txnCase: 'lrange',
    write: false,
    encode: (o) => ({ key: o.key, start: checkInt('start', o.start), stop: checkInt('stop', o.stop) }),
    decode: (r) => all(r.values),
  },
  llen: { method: 'LLen', txnCase: 'llen', write: false, encode: (o) => ({ key: o.key }), decode: length },
  hset: { method: 'HSet', txnCase: 'hset', write: true, encode: (o) => ({ key: o.key, fields: fieldsOf(o.fields) }), decode: (r) => r.added },
  hget: { method: 'HGet', txnCase: 'hget', write: false, encode: (o) => ({ key: o.key, field: o.field }), decode: found },
  hdel: {
    method: 'HDel',
    txnCase: 'hdel',
    write: true,
    encode: (o) => (nonEmpty('hdel', 'field', o.fields), { key: o.key, fields: [...o.fields] }),
    decode: (r) => r.deleted,
  },
  hgetall: {
    method: 'HGetAll',
    txnCase: 'hgetall',
    write: false,
    encode: (o) => ({ key: o.key }),
    decode: (r) => new Map(Object.entries(r.fields).map(([field, value]) => [field, plainBytes(value)])),
  },
  hlen: { method: 'HLen', txnCase: 'hlen', write: false, encode: (o) => ({ key: o.key }), decode: length },
};

/** The codec for one operation. The cast joins what TS cannot correlate across the union. */
export function codecOf<K extends OpName>(name: K): OpCodec<K> {
  return OPS[name] as unknown as OpCodec<K>;
}

const BY_CASE = new Map<string, OpName>(Object.entries(OPS).map(([name, codec]) => [codec.txnCase, name as OpName]));

/** A Txn branch's operation as a RequestOp. */
export function encodeTxnOp(op: Op): Record<string, WireRequest> {
  const codec = codecOf(op.op);
  return { [codec.txnCase]: codec.encode(op as never) };
}

/** A ResponseOp as the tagged result of the operation it answers. */
export function decodeTxnResponse(response: { readonly response: string } & Readonly<Record<string, unknown>>): OpResult {
  const name = BY_CASE.get(response.response);
  const body = response[response.response];
  if (name === undefined || body === undefined) throw new Error(`Txn answered with an unknown operation '${response.response}'`);
  return { op: name, result: codecOf(name).decode(body as never) } as OpResult;
}

export function encodeCompare(compare: Compare): WireRequest {
  const base = { key: compare.key, op: COMPARE_OPS[compare.op ?? '=='] };
  if ('value' in compare) return { ...base, value: toBytes(compare.value) };
  if ('type' in compare) return { ...base, type: TO_WIRE_TYPE[compare.type] };
  if ('length' in compare) return { ...base, length: checkUint('length', compare.length) };
  return { ...base, exists: compare.exists };
}

/** Whether a Txn holding these operations writes (and so goes through the log with a session). */
export function writes(ops: readonly Op[]): boolean {
  return ops.some((op) => codecOf(op.op).write);
}
