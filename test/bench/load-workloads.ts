/**
 * What the load generator sends: per workload, a weighted mix of operation
 * kinds, each a gRPC method plus a request encoder. The same workload names
 * mean the same thing for quorumkv and for etcd, so their figures compare.
 *
 * Requests are encoded once per distinct (key, variant) and then reused, so
 * the generator spends no CPU on protobuf in the steady state: a get of key
 * 17 is the same bytes every time.
 */
import type * as grpc from '@grpc/grpc-js';
import { loadProtos } from '../../src/proto/loader.ts';
import { loadEtcdProtos } from './etcd-proto.ts';

export const WORKLOADS = ['put', 'get', 'get-serializable', 'mixed', 'list', 'hash', 'txn'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];
export type SystemName = 'quorumkv' | 'etcd';

export const WORKLOAD_HELP: Readonly<Record<WorkloadName, string>> = {
  put: 'Set (etcd Put) of a random key',
  get: 'linearizable Get (etcd Range) of a random preloaded key',
  'get-serializable': 'serializable Get (etcd Range serializable=true), answered by the node asked',
  mixed: '90% linearizable gets, 10% puts',
  list: '50% RPush of one value, 50% LPop, on random lists (quorumkv only)',
  hash: '50% HSet of one field, 50% linearizable HGet, on random preloaded hashes (quorumkv only)',
  txn: 'a Txn of --txn-ops Sets (etcd Txn of Puts) on consecutive keys',
};

export interface WorkloadOptions {
  readonly workload: WorkloadName;
  readonly valueBytes: number;
  readonly keys: number;
  /** Sets per Txn (the txn workload). */
  readonly txnOps: number;
  /** Fields per hash (the hash workload). */
  readonly hashFields: number;
}

/** One kind of request in a workload's mix. */
export interface OpKind {
  /** The name figures are reported under: put, get, rpush, lpop, hset, hget, txn. */
  readonly name: string;
  /** Relative frequency in the mix. */
  readonly weight: number;
  /** The gRPC method path, e.g. /quorumkv.v1.KV/Set. */
  readonly path: string;
  /** Distinct requests per key (hash fields); the generator picks one at random. */
  readonly variants: number;
  /** The protobuf-encoded request for a key index and variant. */
  encode(keyIndex: number, variant: number): Buffer;
}

export interface Workload {
  readonly ops: readonly OpKind[];
  /** Run once per key before measuring (for reads of keys that must exist); null when none is needed. */
  readonly preload: OpKind | null;
  /** Which keyspace preload fills: workloads that share it share one preload. */
  readonly preloadSpace: string | null;
}

export class UnsupportedWorkloadError extends Error {
  constructor(system: SystemName, workload: WorkloadName) {
    super(`the ${workload} workload has no ${system} equivalent`);
    this.name = 'UnsupportedWorkloadError';
  }
}

export const stringKey = (i: number): string => `key-${i}`;
const listKey = (i: number): string => `list-${i}`;
const hashKey = (i: number): string => `hash-${i}`;
const field = (j: number): string => `f${j}`;

/** The same value bytes for every write: their content does not matter, only their size. */
function valueOf(bytes: number): Buffer {
  const value = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) value[i] = 0x61 + ((i * 7) % 26);
  return value;
}

type Serialize = (value: object) => Buffer;

function serializer(service: grpc.ServiceDefinition, method: string): { path: string; serialize: Serialize } {
  const definition = service[method];
  if (definition === undefined) throw new Error(`no method ${method} in the loaded service`);
  return { path: definition.path, serialize: definition.requestSerialize as Serialize };
}

export function workloadFor(system: SystemName, options: WorkloadOptions): Workload {
  return system === 'quorumkv' ? quorumkvWorkload(options) : etcdWorkload(options);
}

function quorumkvWorkload(options: WorkloadOptions): Workload {
  const service = loadProtos().kv as unknown as grpc.ServiceDefinition;
  const value = valueOf(options.valueBytes);
  const op = (name: string, weight: number, method: string, request: (i: number, variant: number) => object, variants = 1): OpKind => {
    const { path, serialize } = serializer(service, method);
    return { name, weight, path, variants, encode: (i, variant) => serialize(request(i, variant)) };
  };
  const put = (weight: number): OpKind => op('put', weight, 'Set', (i) => ({ key: stringKey(i), value }));
  const get = (weight: number, consistency: string): OpKind => op('get', weight, 'Get', (i) => ({ key: stringKey(i), consistency }));
  const strings = { preload: put(1), preloadSpace: 'strings' };
  switch (options.workload) {
    case 'put':
      return { ops: [put(1)], preload: null, preloadSpace: null };
    case 'get':
      return { ops: [get(1, 'LINEARIZABLE')], ...strings };
    case 'get-serializable':
      return { ops: [get(1, 'SERIALIZABLE')], ...strings };
    case 'mixed':
      return { ops: [get(90, 'LINEARIZABLE'), put(10)], ...strings };
    case 'list':
      return {
        ops: [op('rpush', 1, 'RPush', (i) => ({ key: listKey(i), values: [value] })), op('lpop', 1, 'LPop', (i) => ({ key: listKey(i), count: 1 }))],
        preload: null,
        preloadSpace: null,
      };
    case 'hash': {
      const fields = options.hashFields;
      const all = (): Record<string, Buffer> => Object.fromEntries(Array.from({ length: fields }, (_, j) => [field(j), value]));
      return {
        ops: [
          op('hset', 1, 'HSet', (i, j) => ({ key: hashKey(i), fields: { [field(j)]: value } }), fields),
          op('hget', 1, 'HGet', (i, j) => ({ key: hashKey(i), field: field(j), consistency: 'LINEARIZABLE' }), fields),
        ],
        preload: op('hset', 1, 'HSet', (i) => ({ key: hashKey(i), fields: all() })),
        preloadSpace: 'hashes',
      };
    }
    case 'txn': {
      const sets = (i: number): object[] => Array.from({ length: options.txnOps }, (_, j) => ({ set: { key: stringKey((i + j) % options.keys), value } }));
      return { ops: [op('txn', 1, 'Txn', (i) => ({ success: sets(i) }))], preload: null, preloadSpace: null };
    }
  }
}

function etcdWorkload(options: WorkloadOptions): Workload {
  const service = loadEtcdProtos().kv as unknown as grpc.ServiceDefinition;
  const value = valueOf(options.valueBytes);
  const key = (i: number): Buffer => Buffer.from(stringKey(i));
  const op = (name: string, weight: number, method: string, request: (i: number) => object): OpKind => {
    const { path, serialize } = serializer(service, method);
    return { name, weight, path, variants: 1, encode: (i) => serialize(request(i)) };
  };
  const put = (weight: number): OpKind => op('put', weight, 'Put', (i) => ({ key: key(i), value }));
  const range = (weight: number, serializable: boolean): OpKind => op('get', weight, 'Range', (i) => ({ key: key(i), serializable }));
  const strings = { preload: put(1), preloadSpace: 'strings' };
  switch (options.workload) {
    case 'put':
      return { ops: [put(1)], preload: null, preloadSpace: null };
    case 'get':
      return { ops: [range(1, false)], ...strings };
    case 'get-serializable':
      return { ops: [range(1, true)], ...strings };
    case 'mixed':
      return { ops: [range(90, false), put(10)], ...strings };
    case 'txn': {
      const puts = (i: number): object[] => Array.from({ length: options.txnOps }, (_, j) => ({ request_put: { key: key((i + j) % options.keys), value } }));
      return { ops: [op('txn', 1, 'Txn', (i) => ({ success: puts(i) }))], preload: null, preloadSpace: null };
    }
    case 'list':
    case 'hash':
      throw new UnsupportedWorkloadError('etcd', options.workload);
  }
}

/** Whether a workload can run against a system (etcd has no lists or hashes). */
export function supports(system: SystemName, workload: WorkloadName): boolean {
  return system === 'quorumkv' || (workload !== 'list' && workload !== 'hash');
}
