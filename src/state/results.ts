/**
 * What apply() and read() answer. A command that fails answers an ErrorResult
 * rather than throwing: the failure is a deterministic outcome of the log, as
 * much as a success is, and a session records it the same way.
 *
 * Byte strings in results are shared with the state: treat them as read-only.
 */
import type { StateError } from './errors.ts';
import type { ValueType } from './values.ts';

/** LSet. */
export interface OkResult {
  readonly kind: 'ok';
}

/** Get, LIndex, HGet. */
export interface ValueResult {
  readonly kind: 'value';
  readonly found: boolean;
  /** null when not found. */
  readonly value: Uint8Array | null;
}

/** Set. */
export interface SetResult {
  readonly kind: 'set';
  readonly applied: boolean;
  /** Whether the key existed (with any type) before this Set. */
  readonly previousFound: boolean;
  /** The previous string value; null when missing or when the key held a list or hash. */
  readonly previous: Uint8Array | null;
}

/**
 * Delete (deleted), Exists (count), Size (keys), Clear (deleted), LPush/RPush
 * (length), LLen, HSet (added), HDel (deleted), HLen, expireSweep and evict (deleted).
 */
export interface CountResult {
  readonly kind: 'count';
  readonly count: number;
}

/** Expire. */
export interface AppliedResult {
  readonly kind: 'applied';
  readonly applied: boolean;
}

/** Ttl: -2 missing, -1 no expiry, else ms left. */
export interface TtlResult {
  readonly kind: 'ttl';
  readonly ttlMs: number;
}

/** Type. */
export interface TypeResult {
  readonly kind: 'type';
  readonly type: ValueType | 'none';
}

/** Keys: one page; nextCursor '' when the scan is complete. */
export interface KeysResult {
  readonly kind: 'keys';
  readonly keys: readonly string[];
  readonly nextCursor: string;
}

/** LPop, RPop, LRange. */
export interface ValuesResult {
  readonly kind: 'values';
  readonly values: readonly Uint8Array[];
}

/** HGetAll, in field insertion order. */
export interface FieldsResult {
  readonly kind: 'fields';
  readonly fields: readonly (readonly [string, Uint8Array])[];
}

/** Txn: which branch ran, and one result per op of that branch. */
export interface TxnResult {
  readonly kind: 'txn';
  readonly succeeded: boolean;
  readonly results: readonly Result[];
}

export interface ErrorResult {
  readonly kind: 'error';
  readonly error: StateError;
}

export type Result =
  | OkResult
  | ValueResult
  | SetResult
  | CountResult
  | AppliedResult
  | TtlResult
  | TypeResult
  | KeysResult
  | ValuesResult
  | FieldsResult
  | TxnResult
  | ErrorResult;

export const OK: OkResult = Object.freeze({ kind: 'ok' });
export const NOT_FOUND: ValueResult = Object.freeze({ kind: 'value', found: false, value: null });

/** Small counts are shared frozen objects: most writes answer one, and need not allocate it. */
const SMALL_COUNTS: readonly CountResult[] = Array.from({ length: 256 }, (_, n) => Object.freeze({ kind: 'count', count: n }));

export function count(n: number): CountResult {
  return SMALL_COUNTS[n] ?? { kind: 'count', count: n };
}

export function failure(error: StateError): ErrorResult {
  return { kind: 'error', error };
}
