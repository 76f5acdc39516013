/**
 * QuorumClient: typed access to a quorumkv cluster's KV and Cluster
 * services, with endpoint failover, leader hints, safe retries and
 * exactly-once writes (see retry.ts and sessions.ts for the rules).
 */
import * as grpc from '@grpc/grpc-js';
import type { ClusterMethod } from '../proto/loader.ts';
import { bearerToken } from './auth.ts';
import { clusterMethod, kvMethod, serverStream, unary } from './calls.ts';
import {
  toBackupChunk,
  toMember,
  toMembershipChange,
  toStatus,
  type BackupChunk,
  type LeadershipTransfer,
  type Membership,
  type MembershipChange,
  type NodeStatus,
  type SnapshotInfo,
} from './cluster.ts';
import { Endpoints } from './endpoints.ts';
import { fromCallError } from './errors.ts';
import {
  checkUint,
  codecOf,
  decodeTxnResponse,
  encodeCompare,
  encodeTxnOp,
  writes,
  type Compare,
  type Consistency,
  type FieldsInput,
  type KeysPage,
  type Op,
  type OpName,
  type OpOf,
  type OpResult,
  type OpResults,
  type SetCondition,
  type SetResult,
  type ValueType,
} from './operations.ts';
import { DEFAULT_RETRY_POLICY, withRetries, type CallKind, type RetryPolicy } from './retry.ts';
import { SessionPool } from './sessions.ts';
import { tlsCredentials, type ClientTls } from './tls.ts';
import { text, type Value } from './values.ts';
import { resumableWatch, type WatchEvent, type WatchOptions } from './watch.ts';
import type { WireBackupChunk, WireMembers, WireMembershipChange, WireRequest, WireSnapshot, WireStatus, WireTransfer, WireTxnResponse } from './wire.ts';

export interface QuorumClientOptions {
  /** Client addresses (HOST:PORT) of some or all members; more are learned from leader hints. */
  readonly endpoints: readonly string[];
  /** Overall deadline of one call, retries included (default 10 s). */
  readonly timeoutMs?: number;
  /** Deadline of one attempt (default 5 s, at most timeoutMs). */
  readonly attemptTimeoutMs?: number;
  /** Channel credentials (default: insecure, or from `tls`). */
  readonly credentials?: grpc.ChannelCredentials;
  /** TLS to a cluster started with --cert/--key/--ca: its CA, and a client certificate if it wants one. */
  readonly tls?: ClientTls;
  /** Default consistency of reads (default 'linearizable'). */
  readonly consistency?: Consistency;
  /** Retry bounds: most attempts per call, and the backoff between rounds. */
  readonly retry?: Partial<Pick<RetryPolicy, 'maxAttempts' | 'initialBackoffMs' | 'maxBackoffMs'>>;
  /** The session id for exactly-once writes (default: a random UUID per client). */
  readonly clientId?: string;
  /** Extra grpc-js channel options. */
  readonly channelOptions?: grpc.ChannelOptions;
  /** A bearer token of the cluster's auth file, sent with every call (use TLS: it is a password). */
  readonly token?: string;
}

export interface CallOptions {
  /** Overrides the client's timeoutMs for this call. */
  readonly timeoutMs?: number;
  /** Cancels the call (it then fails with CANCELLED). */
  readonly signal?: AbortSignal;
}

export interface ReadOptions extends CallOptions {
  readonly consistency?: Consistency;
}

export interface SetOptions extends CallOptions {
  /** Time to live in ms; 0 or omitted: none (the old expiry is removed unless keepTtl). */
  readonly ttlMs?: number;
  readonly condition?: SetCondition;
  /** Keep the key's current expiry (SET KEEPTTL). */
  readonly keepTtl?: boolean;
}

export interface KeysOptions extends ReadOptions {
  /** Glob: * ? [abc] [a-z] [^a], \ escapes. Omitted: every key. */
  readonly pattern?: string;
  /** Most keys in the page (0: the server's default). */
  readonly limit?: number;
  /** The previous page's nextCursor. */
  readonly cursor?: string;
}

export interface ScanOptions extends ReadOptions {
  readonly pattern?: string;
  /** Keys asked for per page (0: the server's default). */
  readonly pageSize?: number;
}

export interface TxnRequest {
  /** Guards; the success branch runs when all hold (or there are none). */
  readonly compares?: readonly Compare[];
  readonly success?: readonly Op[];
  readonly failure?: readonly Op[];
}

export interface TxnResult {
  /** True when every compare held and the success branch ran. */
  readonly succeeded: boolean;
  /** One result per operation of the branch that ran. */
  readonly results: OpResult[];
}

export interface NewMember {
  readonly id: string;
  readonly peerAddress: string;
  readonly clientAddress: string;
}

export interface StatusOptions extends CallOptions {
  /** Ask this endpoint only (no failover): each node describes itself. */
  readonly endpoint?: string;
}

/**
 * Channel defaults: a node that restarts is dialled again within 2 s (grpc-js
 * would otherwise back off up to 2 minutes, failing calls fast meanwhile),
 * and answers are not capped at 4 MiB (an LRange of 1 MiB values can be larger).
 */
const CHANNEL_DEFAULTS: grpc.ChannelOptions = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
  'grpc.max_receive_message_length': -1,
};

const CONSISTENCY = { linearizable: 'LINEARIZABLE', serializable: 'SERIALIZABLE' } as const;

function list<T>(items: T | readonly T[]): readonly T[] {
  return Array.isArray(items) ? (items as readonly T[]) : [items as T];
}

export class QuorumClient {
  private readonly endpoints: Endpoints;
  private readonly policy: RetryPolicy;
  private readonly sessions: SessionPool;
  private readonly consistency: Consistency;

  constructor(options: QuorumClientOptions) {
    const timeoutMs = options.timeoutMs ?? DEFAULT_RETRY_POLICY.timeoutMs;
    checkPositive('timeoutMs', timeoutMs);
    const attemptTimeoutMs = Math.min(options.attemptTimeoutMs ?? DEFAULT_RETRY_POLICY.attemptTimeoutMs, timeoutMs);
    checkPositive('attemptTimeoutMs', attemptTimeoutMs);
    this.policy = { ...DEFAULT_RETRY_POLICY, ...options.retry, timeoutMs, attemptTimeoutMs };
    checkPositive('retry.maxAttempts', this.policy.maxAttempts);
    if (options.credentials !== undefined && options.tls !== undefined) throw new RangeError('give credentials or tls, not both');
    const credentials = options.credentials ?? (options.tls === undefined ? grpc.credentials.createInsecure() : tlsCredentials(options.tls));
    this.endpoints = new Endpoints(options.endpoints, credentials, {
      ...CHANNEL_DEFAULTS,
      ...options.channelOptions,
      ...(options.token === undefined ? {} : { interceptors: [bearerToken(options.token)] }),
    });
    this.sessions = new SessionPool(options.clientId);
    this.consistency = options.consistency ?? 'linearizable';
  }

  /** The endpoint the next call starts at (the last one that answered, or the leader last hinted at). */
  get endpoint(): string {
    return this.endpoints.preferred;
  }

  /** This client's session id, sent as client_id with every write. */
  get clientId(): string {
    return this.sessions.baseId;
  }

  /** Closes every channel; calls in flight fail, later calls throw. */
  close(): void {
    this.endpoints.close();
  }

  // --- strings and keys ------------------------------------------------

  /** The string value of a key; null when missing. WRONGTYPE (FAILED_PRECONDITION) for a list or hash. */
  get(key: string, options?: ReadOptions): Promise<Uint8Array | null> {
    return this.op({ op: 'get', key }, options);
  }

  /** get(), decoded as UTF-8. */
  async getString(key: string, options?: ReadOptions): Promise<string | null> {
    const value = await this.get(key, options);
    return value === null ? null : text(value);
  }

  set(key: string, value: Value, options: SetOptions = {}): Promise<SetResult> {
    const { ttlMs, condition, keepTtl } = options;
    return this.op({ op: 'set', key, value, ...defined({ ttlMs, condition, keepTtl }) }, options);
  }

  /** Deletes keys of any type; answers how many existed. */
  del(keys: string | readonly string[], options?: CallOptions): Promise<number> {
    return this.op({ op: 'del', keys: list(keys) }, options);
  }

  /** How many of the keys exist (a key given twice counts twice). */
  exists(keys: string | readonly string[], options?: ReadOptions): Promise<number> {
    return this.op({ op: 'exists', keys: list(keys) }, options);
  }

  /** Sets a key's time to live (0 removes it); false when the key is missing. */
  expire(key: string, ttlMs: number, options?: CallOptions): Promise<boolean> {
    return this.op({ op: 'expire', key, ttlMs }, options);
  }

  /** Removes a key's expiry; false when the key is missing or had none. */
  persist(key: string, options?: CallOptions): Promise<boolean> {
    return this.expire(key, 0, options);
  }

  /** Milliseconds left; -1: no expiry; -2: missing. */
  ttl(key: string, options?: ReadOptions): Promise<number> {
    return this.op({ op: 'ttl', key }, options);
  }

  type(key: string, options?: ReadOptions): Promise<ValueType> {
    return this.op({ op: 'type', key }, options);
  }

  /** One page of the keys matching a pattern. */
  keys(options: KeysOptions = {}): Promise<KeysPage> {
    const { pattern, limit, cursor } = options;
    return this.op({ op: 'keys', ...defined({ pattern, limit, cursor }) }, options);
  }

  /** Every key matching a pattern, following cursors page by page. Keys present for the whole scan come exactly once. */
  async *scan(options: ScanOptions = {}): AsyncGenerator<string, void, undefined> {
    let cursor: string | null = '';
    while (cursor !== null) {
      const page: KeysPage = await this.keys({ ...options, limit: options.pageSize ?? 0, cursor });
      yield* page.keys;
      cursor = page.nextCursor;
    }
  }

  /** The number of keys. */
  size(options?: ReadOptions): Promise<number> {
    return this.op({ op: 'size' }, options);
  }

  /** Deletes every key; answers how many there were. */
  clear(options?: CallOptions): Promise<number> {
    return this.op({ op: 'clear' }, options);
  }

  // --- lists -------------------------------------------------------------

  /** Prepends values one after the other (pushing a, b, c leaves c first); answers the new length. */
  lpush(key: string, values: Value | readonly Value[], options?: CallOptions): Promise<number> {
    return this.op({ op: 'lpush', key, values: list(values) }, options);
  }

  /** Appends values; answers the new length. */
  rpush(key: string, values: Value | readonly Value[], options?: CallOptions): Promise<number> {
    return this.op({ op: 'rpush', key, values: list(values) }, options);
  }

  /** Removes and returns up to `count` (default 1) values from the head; empty when the key is missing. */
  lpop(key: string, count?: number, options?: CallOptions): Promise<Uint8Array[]> {
    return this.op({ op: 'lpop', key, ...defined({ count }) }, options);
  }

  /** Removes and returns up to `count` (default 1) values from the tail, tail first. */
  rpop(key: string, count?: number, options?: CallOptions): Promise<Uint8Array[]> {
    return this.op({ op: 'rpop', key, ...defined({ count }) }, options);
  }

  /** The element at an index (negative from the tail); null when outside the list or missing. */
  lindex(key: string, index: number, options?: ReadOptions): Promise<Uint8Array | null> {
    return this.op({ op: 'lindex', key, index }, options);
  }

  /** Replaces the element at an index; OUT_OF_RANGE outside the list or when the key is missing. */
  async lset(key: string, index: number, value: Value, options?: CallOptions): Promise<void> {
    await this.op({ op: 'lset', key, index, value }, options);
  }

  /** Elements start..stop, inclusive, negative from the tail (0, -1: all). */
  lrange(key: string, start: number, stop: number, options?: ReadOptions): Promise<Uint8Array[]> {
    return this.op({ op: 'lrange', key, start, stop }, options);
  }

  llen(key: string, options?: ReadOptions): Promise<number> {
    return this.op({ op: 'llen', key }, options);
  }

  // --- hashes ------------------------------------------------------------

  /** Sets fields; answers how many were new. */
  hset(key: string, fields: FieldsInput, options?: CallOptions): Promise<number> {
    return this.op({ op: 'hset', key, fields }, options);
  }

  hget(key: string, field: string, options?: ReadOptions): Promise<Uint8Array | null> {
    return this.op({ op: 'hget', key, field }, options);
  }

  /** Deletes fields; answers how many existed. */
  hdel(key: string, fields: string | readonly string[], options?: CallOptions): Promise<number> {
    return this.op({ op: 'hdel', key, fields: list(fields) }, options);
  }

  hgetall(key: string, options?: ReadOptions): Promise<Map<string, Uint8Array>> {
    return this.op({ op: 'hgetall', key }, options);
  }

  hlen(key: string, options?: ReadOptions): Promise<number> {
    return this.op({ op: 'hlen', key }, options);
  }

  // --- transactions and watches ---------------------------------------------

  /**
   * Runs one branch atomically, chosen by the compares. A Txn with a write
   * goes through the log with a session (exactly once); a read-only one
   * honours `consistency` and is retried as a read.
   */
  async txn(request: TxnRequest, options: ReadOptions = {}): Promise<TxnResult> {
    const success = request.success ?? [];
    const failure = request.failure ?? [];
    const wire: WireRequest = {
      compares: (request.compares ?? []).map(encodeCompare),
      success: success.map(encodeTxnOp),
      failure: failure.map(encodeTxnOp),
    };
    const method = kvMethod('Txn');
    const response = writes([...success, ...failure])
      ? await this.sessions.run((s) => this.call<WireTxnResponse>('write', method, { ...wire, client_id: s.clientId, sequence: s.sequence }, options))
      : await this.call<WireTxnResponse>('read', method, { ...wire, consistency: CONSISTENCY[options.consistency ?? this.consistency] }, options);
    return { succeeded: response.succeeded, results: response.responses.map((r) => decodeTxnResponse(r as never)) };
  }

  /**
   * The changes to a key (or, with prefix, to every key under it), in log
   * order, across reconnects with no gap and no repeat (see watch.ts). Ends
   * when the signal fires or the loop breaks; throws when the cluster stays
   * unreachable past the retry budget or refuses (OUT_OF_RANGE: fromIndex
   * compacted away).
   */
  watch(key: string, options: WatchOptions = {}): AsyncGenerator<WatchEvent, void, undefined> {
    return resumableWatch(
      {
        endpoints: this.endpoints,
        policy: this.policy,
        open: (address, request) => serverStream(this.endpoints.client(address), kvMethod('Watch'), request),
        startIndex: async (signal) => {
          try {
            const status = await this.status(signal === undefined ? {} : { signal });
            return status.appliedIndex + 1;
          } catch {
            return 0;
          }
        },
      },
      key,
      options,
    );
  }

  // --- cluster administration ---------------------------------------------------

  /** The asked node's view of itself: role, term, leader, log positions, digest. */
  async status(options: StatusOptions = {}): Promise<NodeStatus> {
    const method = clusterMethod('Status');
    if (options.endpoint !== undefined) {
      const endpoint = options.endpoint;
      const deadline = Date.now() + (options.timeoutMs ?? this.policy.timeoutMs);
      try {
        return toStatus(await unary<WireStatus>(this.endpoints.client(endpoint), method, {}, deadline, options.signal));
      } catch (error) {
        throw fromCallError(error, endpoint);
      }
    }
    return toStatus(await this.call<WireStatus>('read', method, {}, options));
  }

  async members(options?: CallOptions): Promise<Membership> {
    const w = await this.call<WireMembers>('read', clusterMethod('Members'), {}, options);
    return { members: w.members.map(toMember), leaderId: w.leader_id, answeredBy: w.answered_by };
  }

  /** Adds a member as a learner; promote it once it has caught up. */
  addMember(member: NewMember, options?: CallOptions): Promise<MembershipChange> {
    const request = { id: member.id, peer_address: member.peerAddress, client_address: member.clientAddress };
    return this.membership('AddMember', request, options);
  }

  removeMember(id: string, options?: CallOptions): Promise<MembershipChange> {
    return this.membership('RemoveMember', { id }, options);
  }

  /** Makes a caught-up learner a voter (FAILED_PRECONDITION naming its lag until then). */
  promoteMember(id: string, options?: CallOptions): Promise<MembershipChange> {
    return this.membership('PromoteMember', { id }, options);
  }

  async transferLeadership(id: string, options?: CallOptions): Promise<LeadershipTransfer> {
    const w = await this.call<WireTransfer>('admin', clusterMethod('TransferLeadership'), { id }, options);
    return { leaderId: w.leader_id, term: w.term };
  }

  /** Takes a snapshot on the node asked now. */
  async snapshot(options?: CallOptions): Promise<SnapshotInfo> {
    const w = await this.call<WireSnapshot>('admin', clusterMethod('Snapshot'), {}, options);
    return { index: w.index, term: w.term, sizeBytes: w.size_bytes };
  }

  /**
   * The latest snapshot file of a node, in chunks. Opening fails over like a
   * read until the first chunk arrives; a break after that throws (the
   * stream cannot resume mid-file).
   */
  async *backup(options: CallOptions = {}): AsyncGenerator<BackupChunk, void, undefined> {
    const method = clusterMethod('Backup');
    const opened = await this.retrying('read', options, async (address, deadline) => {
      const call = serverStream(this.endpoints.client(address), method, {});
      const iterator = call[Symbol.asyncIterator]() as AsyncIterator<WireBackupChunk>;
      const timer = setTimeout(() => call.cancel(), Math.max(0, deadline - Date.now()));
      try {
        return { call, iterator, first: await iterator.next() };
      } catch (error) {
        call.cancel();
        throw error;
      } finally {
        clearTimeout(timer);
      }
    });
    const { call, iterator } = opened;
    const onAbort = (): void => call.cancel();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      for (let next = opened.first; next.done !== true; next = await iterator.next()) yield toBackupChunk(next.value);
    } catch (error) {
      throw fromCallError(error, this.endpoints.preferred);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
  }

  // --- plumbing ------------------------------------------------------------

  /** Runs one KV operation: reads with the chosen consistency, writes in a session. */
  private async op<K extends OpName>(op: OpOf<K>, options: ReadOptions = {}): Promise<OpResults[K]> {
    const codec = codecOf<K>(op.op as K);
    const request = codec.encode(op);
    const method = kvMethod(codec.method);
    const response = codec.write
      ? await this.sessions.run((s) => this.call<never>('write', method, { ...request, client_id: s.clientId, sequence: s.sequence }, options))
      : await this.call<never>('read', method, { ...request, consistency: CONSISTENCY[options.consistency ?? this.consistency] }, options);
    return codec.decode(response);
  }

  private async membership(name: ClusterMethod, request: object, options?: CallOptions): Promise<MembershipChange> {
    return toMembershipChange(await this.call<WireMembershipChange>('admin', clusterMethod(name), request, options));
  }

  private call<Res>(kind: CallKind, method: grpc.MethodDefinition<unknown, unknown>, request: object, options: CallOptions = {}): Promise<Res> {
    return this.retrying(kind, options, (address, deadline) => unary<Res>(this.endpoints.client(address), method, request, deadline, options.signal));
  }

  private retrying<T>(kind: CallKind, options: CallOptions, attempt: (address: string, deadline: number) => Promise<T>): Promise<T> {
    let policy = this.policy;
    if (options.timeoutMs !== undefined) {
      checkPositive('timeoutMs', options.timeoutMs);
      policy = { ...policy, timeoutMs: options.timeoutMs, attemptTimeoutMs: Math.min(policy.attemptTimeoutMs, options.timeoutMs) };
    }
    return withRetries(this.endpoints, policy, kind, attempt, options.signal);
  }
}

function checkPositive(name: string, n: number): void {
  checkUint(name, n);
  if (n === 0) throw new RangeError(`${name} must be positive`);
}

/** The entries whose value is defined (exactOptionalPropertyTypes: an optional field is absent, never undefined). */
function defined<T extends Record<string, unknown>>(fields: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v;
  return out as { [K in keyof T]?: Exclude<T[K], undefined> };
}
