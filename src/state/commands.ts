/**
 * The commands the state machine applies: every KV write and read of the
 * client API (API.md), a Txn of them, and the two internal deletions the
 * leader proposes (expireSweep for TTLs, evict for the memory budget).
 */
import type { ValueType } from './values.ts';

export type SetCondition = 'always' | 'ifAbsent' | 'ifPresent';

export interface GetCommand {
  readonly op: 'get';
  readonly key: string;
}

export interface SetCommand {
  readonly op: 'set';
  readonly key: string;
  readonly value: Uint8Array;
  /** Time to live in ms from the entry's time; 0 or absent: none. */
  readonly ttlMs?: number;
  /** Default 'always'. */
  readonly condition?: SetCondition;
  /** Keep the key's current expiry (exclusive with ttlMs). */
  readonly keepTtl?: boolean;
}

export interface DeleteCommand {
  readonly op: 'delete';
  readonly keys: readonly string[];
}

export interface ExistsCommand {
  readonly op: 'exists';
  readonly keys: readonly string[];
}

export interface ExpireCommand {
  readonly op: 'expire';
  readonly key: string;
  /** ms from the entry's time; 0 removes the expiry. */
  readonly ttlMs: number;
}

export interface TtlCommand {
  readonly op: 'ttl';
  readonly key: string;
}

export interface TypeCommand {
  readonly op: 'type';
  readonly key: string;
}

export interface KeysCommand {
  readonly op: 'keys';
  /** Glob (see glob.ts); '' or absent: '*'. */
  readonly pattern?: string;
  /** Most keys per page; 0 or absent: DEFAULT_KEYS_LIMIT. */
  readonly limit?: number;
  /** '' or absent: from the start; else a next_cursor from the previous page. */
  readonly cursor?: string;
}

export interface SizeCommand {
  readonly op: 'size';
}

export interface ClearCommand {
  readonly op: 'clear';
}

export interface PushCommand {
  readonly op: 'lpush' | 'rpush';
  readonly key: string;
  readonly values: readonly Uint8Array[];
}

export interface PopCommand {
  readonly op: 'lpop' | 'rpop';
  readonly key: string;
  /** How many to pop; 0 or absent: 1. */
  readonly count?: number;
}

export interface LIndexCommand {
  readonly op: 'lindex';
  readonly key: string;
  /** Negative counts from the end (-1 is the last). */
  readonly index: number;
}

export interface LSetCommand {
  readonly op: 'lset';
  readonly key: string;
  readonly index: number;
  readonly value: Uint8Array;
}

export interface LRangeCommand {
  readonly op: 'lrange';
  readonly key: string;
  /** Inclusive; negative counts from the end. */
  readonly start: number;
  readonly stop: number;
}

export interface LLenCommand {
  readonly op: 'llen';
  readonly key: string;
}

export interface HSetCommand {
  readonly op: 'hset';
  readonly key: string;
  /** (field, value) pairs; a field given twice takes the later value and counts once. */
  readonly fields: readonly (readonly [string, Uint8Array])[];
}

export interface HGetCommand {
  readonly op: 'hget';
  readonly key: string;
  readonly field: string;
}

export interface HDelCommand {
  readonly op: 'hdel';
  readonly key: string;
  readonly fields: readonly string[];
}

export interface HGetAllCommand {
  readonly op: 'hgetall';
  readonly key: string;
}

export interface HLenCommand {
  readonly op: 'hlen';
  readonly key: string;
}

export type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

/**
 * A Txn guard, evaluated at the entry's time:
 * - value: the key's string value against `value`, bytewise (lexicographic for
 *   lt/gt); false whatever the op when the key is missing or not a string;
 * - type: the key's type, 'none' when missing (op eq or ne only);
 * - length: the string's byte length, list length or hash field count, 0 when missing.
 */
export type Compare =
  | { readonly target: 'value'; readonly key: string; readonly op: CompareOp; readonly value: Uint8Array }
  | { readonly target: 'type'; readonly key: string; readonly op: 'eq' | 'ne'; readonly type: ValueType | 'none' }
  | { readonly target: 'length'; readonly key: string; readonly op: CompareOp; readonly length: number };

/** Every command that may appear inside a Txn. */
export type TxnOpCommand =
  | GetCommand
  | SetCommand
  | DeleteCommand
  | ExistsCommand
  | ExpireCommand
  | TtlCommand
  | TypeCommand
  | KeysCommand
  | SizeCommand
  | ClearCommand
  | PushCommand
  | PopCommand
  | LIndexCommand
  | LSetCommand
  | LRangeCommand
  | LLenCommand
  | HSetCommand
  | HGetCommand
  | HDelCommand
  | HGetAllCommand
  | HLenCommand;

/** All compares true: run `success`, else `failure`; either branch applies whole or not at all. */
export interface TxnCommand {
  readonly op: 'txn';
  readonly compares: readonly Compare[];
  readonly success: readonly TxnOpCommand[];
  readonly failure: readonly TxnOpCommand[];
}

/**
 * Internal, proposed by the leader from expiredKeys(): deletes each key that
 * is still expired at this entry's time (a key set again meanwhile survives).
 */
export interface ExpireSweepCommand {
  readonly op: 'expireSweep';
  readonly keys: readonly string[];
}

/** A key chosen for eviction and the fingerprint of its content when chosen. */
export interface EvictTarget {
  readonly key: string;
  readonly fingerprint: number;
}

/**
 * Internal, proposed by the leader from evictionCandidates(): deletes each key
 * whose content still has the fingerprint the leader saw, so a key written
 * between the choice and this entry is not lost.
 */
export interface EvictCommand {
  readonly op: 'evict';
  readonly keys: readonly EvictTarget[];
}

export type Command = TxnOpCommand | TxnCommand | ExpireSweepCommand | EvictCommand;

export type Op = Command['op'];

/** True for commands that never change the state (a Txn is read-only when both branches are). */
export function isReadOnly(command: Command): boolean {
  switch (command.op) {
    case 'get':
    case 'hget':
    case 'lindex':
    case 'exists':
    case 'ttl':
    case 'type':
    case 'keys':
    case 'size':
    case 'lrange':
    case 'llen':
    case 'hgetall':
    case 'hlen':
      return true;
    case 'txn':
      return command.success.every(isReadOnly) && command.failure.every(isReadOnly);
    default:
      return false;
  }
}
