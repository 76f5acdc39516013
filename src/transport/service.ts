/**
 * The quorumkv.raft.v1.Raft service as grpc-js sees it. Messages cross the
 * gRPC layer as raw bytes: the sender encodes with codec.ts before write()
 * (so it knows each batch's size), and the receiver decodes in the handler
 * (so a malformed batch gets INVALID_ARGUMENT with a reason, not grpc-js's
 * generic deserialization error). Paths and streaming flags must match
 * raft.proto; the service test checks them against the loaded .proto.
 */
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

export const RAFT_SERVICE_NAME = 'quorumkv.raft.v1.Raft';
export const SEND_PATH = `/${RAFT_SERVICE_NAME}/Send`;
export const INSTALL_SNAPSHOT_PATH = `/${RAFT_SERVICE_NAME}/InstallSnapshot`;
export const FORWARD_PATH = `/${RAFT_SERVICE_NAME}/Forward`;

export const passBuffer = (bytes: Buffer): Buffer => bytes;

type RawMethod = MethodDefinition<Buffer, Buffer>;

const streaming = (path: string, originalName: string, responseStream: boolean): RawMethod => ({
  path,
  requestStream: true,
  responseStream,
  requestSerialize: passBuffer,
  requestDeserialize: passBuffer,
  responseSerialize: passBuffer,
  responseDeserialize: passBuffer,
  originalName,
});

export const RAFT_SERVICE: ServiceDefinition<{ Send: RawMethod; InstallSnapshot: RawMethod; Forward: RawMethod }> = {
  Send: streaming(SEND_PATH, 'send', false),
  InstallSnapshot: streaming(INSTALL_SNAPSHOT_PATH, 'installSnapshot', false),
  Forward: streaming(FORWARD_PATH, 'forward', true),
};
