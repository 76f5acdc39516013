/**
 * The quorumkv.v1 messages as @grpc/proto-loader hands them over with the
 * project's LOADER_OPTIONS (field names as in the .proto, 64-bit integers as
 * numbers, enums as their names, defaults filled in, oneof case names set).
 * Requests are what the client sends; only the fields it sets are listed.
 * Internal to src/client: the public API speaks camelCase types.
 */

export type WireConsistency = 'LINEARIZABLE' | 'SERIALIZABLE';
export type WireValueType = 'NONE' | 'STRING' | 'LIST' | 'HASH';
export type WireCondition = 'ALWAYS' | 'IF_ABSENT' | 'IF_PRESENT';
export type WireCompareOp = 'EQUAL' | 'NOT_EQUAL' | 'LESS' | 'LESS_OR_EQUAL' | 'GREATER' | 'GREATER_OR_EQUAL';
export type WireEventType = 'PUT' | 'DELETE' | 'EXPIRE' | 'EVICT';
export type WireRole = 'FOLLOWER' | 'PRE_CANDIDATE' | 'CANDIDATE' | 'LEADER';
export type WireMemberKind = 'VOTER' | 'LEARNER';

/** The fields every request may carry: a read's consistency, a write's session. */
export interface WireRequest {
  [field: string]: unknown;
  consistency?: WireConsistency;
  client_id?: string;
  sequence?: number;
}

export interface WireFound {
  readonly found: boolean;
  readonly value: Uint8Array;
}

export interface WireSetResponse {
  readonly applied: boolean;
  readonly previous_found: boolean;
  readonly previous: Uint8Array;
}

export interface WireKeysResponse {
  readonly keys: readonly string[];
  readonly next_cursor: string;
}

/** The KV responses, by the Txn oneof case that carries each. */
export interface WireResponses {
  get: WireFound;
  set: WireSetResponse;
  delete: { readonly deleted: number };
  exists: { readonly count: number };
  expire: { readonly applied: boolean };
  ttl: { readonly ttl_ms: number };
  type: { readonly type: WireValueType };
  keys: WireKeysResponse;
  size: { readonly keys: number };
  clear: { readonly deleted: number };
  lpush: { readonly length: number };
  rpush: { readonly length: number };
  lpop: { readonly values: readonly Uint8Array[] };
  rpop: { readonly values: readonly Uint8Array[] };
  lindex: WireFound;
  lset: Record<string, never>;
  lrange: { readonly values: readonly Uint8Array[] };
  llen: { readonly length: number };
  hset: { readonly added: number };
  hget: WireFound;
  hdel: { readonly deleted: number };
  hgetall: { readonly fields: Readonly<Record<string, Uint8Array>> };
  hlen: { readonly length: number };
}

export type WireResponseOp = { [K in keyof WireResponses]: { readonly response: K } & { readonly [P in K]: WireResponses[K] } }[keyof WireResponses];

export interface WireTxnResponse {
  readonly succeeded: boolean;
  readonly responses: readonly WireResponseOp[];
}

export interface WireWatchEvent {
  readonly index: number;
  readonly type: WireEventType;
  readonly key: string;
  readonly value: Uint8Array;
  readonly value_type: WireValueType;
}

export interface WireStatus {
  readonly id: string;
  readonly cluster_id: string;
  readonly role: WireRole;
  readonly term: number;
  readonly leader_id: string;
  readonly commit_index: number;
  readonly applied_index: number;
  readonly log_first_index: number;
  readonly log_last_index: number;
  readonly snapshot_index: number;
  readonly keys: number;
  readonly memory_used_bytes: number;
  readonly memory_limit_bytes: number;
  readonly state_digest: string;
  readonly client_address: string;
  readonly leader_client_address: string;
}

export interface WireMember {
  readonly id: string;
  readonly peer_address: string;
  readonly client_address: string;
  readonly kind: WireMemberKind;
  readonly leader: boolean;
  readonly match_index: number;
  readonly lag_entries: number;
}

export interface WireMembers {
  readonly members: readonly WireMember[];
  readonly leader_id: string;
  readonly answered_by: string;
}

export interface WireMembershipChange {
  readonly index: number;
  readonly members: readonly WireMember[];
}

export interface WireTransfer {
  readonly leader_id: string;
  readonly term: number;
}

export interface WireSnapshot {
  readonly index: number;
  readonly term: number;
  readonly size_bytes: number;
}

export interface WireBackupChunk {
  readonly offset: number;
  readonly data: Uint8Array;
  readonly index: number;
  readonly term: number;
  readonly size_bytes: number;
}
