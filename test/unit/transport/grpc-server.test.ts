import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { GRPC_SERVER_DEFAULTS, closeGrpcServer } from '../../../src/transport/grpc-server.ts';
import { RAFT_SERVICE, SEND_PATH, passBuffer } from '../../../src/transport/service.ts';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A server with channelz off whose Send streams never end by themselves (like Raft's). */
async function serverWithOpenStream(address: string): Promise<{ server: grpc.Server; port: number; streamEnded: Promise<grpc.ServiceError | null> }> {
  let received: () => void = () => {};
  const gotMessage = new Promise<void>((resolve) => (received = resolve));
  const server = new grpc.Server(GRPC_SERVER_DEFAULTS);
  server.addService(RAFT_SERVICE, {
    Send: (call: grpc.ServerReadableStream<Buffer, Buffer>) => call.on('data', () => received()),
    InstallSnapshot: () => {},
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error))),
  );
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanups.push(() => {
    client.close();
    server.forceShutdown();
  });
  const streamEnded = new Promise<grpc.ServiceError | null>((resolve) => {
    const call = client.makeClientStreamRequest(SEND_PATH, passBuffer, passBuffer, (error) => resolve(error));
    call.write(Buffer.from([1]));
  });
  await gotMessage;
  return { server, port, streamEnded };
}

describe('closeGrpcServer', () => {
  it('cuts a stream that never ends and resolves, with channelz off (where forceShutdown alone leaves it open)', async () => {
    const { server, port, streamEnded } = await serverWithOpenStream('127.0.0.1:0');
    await closeGrpcServer(server, '127.0.0.1:0', port, 0);
    const error = await streamEnded;
    expect(error?.code).toBe(grpc.status.CANCELLED);
  });

  it('lets the stream run for the grace time before cutting it', async () => {
    const { server, port, streamEnded } = await serverWithOpenStream('127.0.0.1:0');
    let settled = false;
    void streamEnded.then(() => (settled = true));
    const closed = closeGrpcServer(server, '127.0.0.1:0', port, 300);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(false);
    await closed;
    expect((await streamEnded)?.code).toBe(grpc.status.CANCELLED);
  });
});
