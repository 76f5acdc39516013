/**
 * etcd's KV and Maintenance services from the minimal etcd-kv.proto beside
 * this file. Member ids are random uint64s, beyond 2^53, so 64-bit integers
 * load as decimal strings here (quorumkv's loader makes them numbers).
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const ETCD_PROTO_FILE = join(import.meta.dirname, 'etcd-kv.proto');

export type EtcdKvMethod = 'Range' | 'Put' | 'Txn';

export interface EtcdProtos {
  readonly kv: grpc.ServiceDefinition<Record<EtcdKvMethod, grpc.UntypedHandleCall>>;
  readonly clients: {
    readonly kv: grpc.ServiceClientConstructor;
    readonly maintenance: grpc.ServiceClientConstructor;
  };
}

let loaded: EtcdProtos | undefined;

export function loadEtcdProtos(): EtcdProtos {
  if (loaded !== undefined) return loaded;
  const definition = protoLoader.loadSync(ETCD_PROTO_FILE, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  const root = grpc.loadPackageDefinition(definition) as unknown as { etcdserverpb: Record<string, grpc.ServiceClientConstructor> };
  const kv = root.etcdserverpb['KV'];
  const maintenance = root.etcdserverpb['Maintenance'];
  if (kv === undefined || maintenance === undefined) throw new Error(`${ETCD_PROTO_FILE} does not define etcdserverpb.KV and Maintenance`);
  loaded = { kv: kv.service as EtcdProtos['kv'], clients: { kv, maintenance } };
  return loaded;
}
