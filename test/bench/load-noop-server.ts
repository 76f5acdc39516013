/**
 * A server that answers every quorumkv.v1.KV unary call at once with an empty
 * response, and Cluster.Status as a one-node leader. It is the client port's
 * own server (Http2GrpcServer, src/transport/http2/), so `npm run bench --
 * cluster --noop-server` measures the ceiling of a node's client port on the
 * machine and what the load generator costs per call. Started
 * by the benchmark (never on its own): it prints its port on stdout and runs
 * until SIGTERM.
 */
import * as grpc from '@grpc/grpc-js';
import { CLUSTER_METHODS, KV_METHODS, loadProtos } from '../../src/proto/loader.ts';
import { Http2GrpcServer } from '../../src/transport/http2/grpc-server.ts';

export const NOOP_NODE_ID = 'noop';

function main(): void {
  const protos = loadProtos();
  const answer: grpc.handleUnaryCall<unknown, object> = (_call, callback) => callback(null, {});
  const unimplemented: grpc.handleUnaryCall<unknown, object> = (_call, callback) => callback({ code: grpc.status.UNIMPLEMENTED, details: 'no-op server' });
  const kv = Object.fromEntries(KV_METHODS.map((m) => [m, m === 'Watch' ? () => {} : answer]));
  const cluster = Object.fromEntries(CLUSTER_METHODS.map((m) => [m, m === 'Backup' ? () => {} : unimplemented]));
  cluster['Status'] = ((_call, callback) => callback(null, { id: NOOP_NODE_ID, role: 'LEADER', leader_id: NOOP_NODE_ID })) as grpc.handleUnaryCall<unknown, object>;
  const server = new Http2GrpcServer();
  server.addService(protos.kv, kv as grpc.UntypedServiceImplementation);
  server.addService(protos.cluster, cluster as grpc.UntypedServiceImplementation);
  server.listen('127.0.0.1:0').then(
    (port) => console.log(`port ${port}`),
    (error: Error) => {
      console.error(`no-op server: ${error.message}`);
      process.exit(1);
    },
  );
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) main();
