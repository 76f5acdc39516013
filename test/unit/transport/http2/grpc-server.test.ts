/**
 * Http2GrpcServer (unary calls) against grpc-js's own Server: the same
 * handlers behind both, a grpc-js client, and the same outcome from each
 * (value, status, details, trailers, response headers).
 *
 * Transitional: it repeats part of fast-unary-server.test.ts, which goes
 * when this server replaces FastUnaryServer on the client port.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GRPC_SERVER_DEFAULTS } from '../../../../src/transport/grpc-server.ts';
import { Http2GrpcServer } from '../../../../src/transport/http2/grpc-server.ts';

const LIMIT = 1000;
const identity = (bytes: Buffer): Buffer => bytes;
const SERVICE: grpc.ServiceDefinition = {
  Unary: {
    path: '/test.Echo/Unary',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: (bytes: Buffer) => {
      if (bytes[0] === 0xff) throw new Error('undecodable');
      return bytes;
    },
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

const metadataOf = (entries: Record<string, string | Buffer>): grpc.Metadata => {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) metadata.set(key, value);
  return metadata;
};

const cancelled = new Set<string>();
const implementation = {
  Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void => {
    const text = call.request.toString();
    call.on('cancelled', () => cancelled.add(text));
    if (text === 'ok') callback(null, Buffer.from('fine'));
    else if (text === 'empty') callback(null, Buffer.alloc(0));
    else if (text === 'trailer') callback(null, Buffer.from('fine'), metadataOf({ 'x-trailer': 'yes', 'x-bytes-bin': Buffer.from([1, 2, 3]) }));
    else if (text === 'status') callback({ code: grpc.status.FAILED_PRECONDITION, details: 'not here: ü, 100% and\nnewline', metadata: metadataOf({ 'quorumkv-leader-id': 'n2' }) });
    else if (text === 'plain error') callback(new Error('a plain error'));
    else if (text === 'throw') throw new Error('thrown');
    else if (text === 'big answer') callback(null, Buffer.alloc(LIMIT + 1, 7));
    else if (text === 'initial metadata, then error') {
      call.sendMetadata(metadataOf({ 'x-initial': 'early' }));
      callback({ code: grpc.status.ABORTED, details: 'after the headers', metadata: metadataOf({ 'x-trailer': 'late' }) });
    } else if (text === 'metadata') callback(null, Buffer.from(JSON.stringify(call.metadata.toJSON())));
    else if (text === 'slow') setTimeout(() => callback(null, Buffer.from('late')), 500);
    else callback({ code: grpc.status.INVALID_ARGUMENT, details: `unknown request '${text}'` });
  },
} as grpc.UntypedServiceImplementation;

let own: { client: grpc.Client; server: Http2GrpcServer };
let reference: { client: grpc.Client; server: grpc.Server };

beforeAll(async () => {
  const server = new Http2GrpcServer({ maxReceiveBytes: LIMIT, maxSendBytes: LIMIT });
  server.addService(SERVICE, implementation);
  const port = await server.listen('127.0.0.1:0');
  own = { server, client: new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) };
  const grpcServer = new grpc.Server({ ...GRPC_SERVER_DEFAULTS, 'grpc.max_receive_message_length': LIMIT, 'grpc.max_send_message_length': LIMIT });
  grpcServer.addService(SERVICE, implementation);
  const grpcPort = await new Promise<number>((resolve, reject) => grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error))));
  reference = { server: grpcServer, client: new grpc.Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure()) };
});

afterAll(() => {
  own?.client.close();
  void own?.server.close();
  reference?.client.close();
  reference?.server.forceShutdown();
});

interface Outcome {
  value: string | null;
  code: grpc.status;
  details: string;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
}

const plain = (metadata: grpc.Metadata | undefined): Record<string, unknown> => {
  const map = { ...(metadata?.toJSON() ?? {}) } as Record<string, unknown>;
  delete map['date'];
  // Which encodings a server takes is its own business: ours takes identity only.
  delete map['grpc-accept-encoding'];
  delete map['grpc-encoding'];
  return map;
};

function call(client: grpc.Client, request: Buffer | string, metadata = new grpc.Metadata(), path = '/test.Echo/Unary'): Promise<Outcome> {
  return new Promise((resolve) => {
    let headers: Record<string, unknown> = {};
    let result: Omit<Outcome, 'trailers' | 'headers'> | null = null;
    let trailers: grpc.Metadata | undefined;
    let pending = 2;
    const finish = (): void => {
      if (--pending === 0 && result !== null) resolve({ ...result, headers, trailers: plain(trailers) });
    };
    const bytes = typeof request === 'string' ? Buffer.from(request) : request;
    const unary = client.makeUnaryRequest(path, identity, identity, bytes, metadata, (error, response) => {
      result = { value: response === undefined ? null : response.toString(), code: error?.code ?? grpc.status.OK, details: error?.details ?? 'OK' };
      finish();
    });
    unary.on('metadata', (m: grpc.Metadata) => (headers = plain(m)));
    unary.on('status', (status: grpc.StatusObject) => {
      trailers = status.metadata;
      finish();
    });
  });
}

async function both(request: Buffer | string, metadata?: grpc.Metadata, path?: string): Promise<Outcome> {
  const [mine, theirs] = await Promise.all([call(own.client, request, metadata, path), call(reference.client, request, metadata, path)]);
  expect(mine).toEqual(theirs);
  return mine;
}

describe('Http2GrpcServer answers unary calls as grpc-js does', () => {
  it('values, trailers, statuses with metadata, plain errors, a handler that throws', async () => {
    expect(await both('ok')).toMatchObject({ value: 'fine', code: grpc.status.OK });
    expect(await both('empty')).toMatchObject({ value: '' });
    expect((await both('trailer')).trailers).toMatchObject({ 'x-trailer': ['yes'] });
    expect(await both('status')).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, trailers: { 'quorumkv-leader-id': ['n2'] } });
    expect(await both('plain error')).toMatchObject({ code: grpc.status.UNKNOWN, details: 'a plain error' });
    expect(await both('throw')).toMatchObject({ code: grpc.status.UNKNOWN, details: 'Unknown error' });
    expect(await both('initial metadata, then error')).toMatchObject({ code: grpc.status.ABORTED, headers: { 'x-initial': ['early'] }, trailers: { 'x-trailer': ['late'] } });
  });

  it('the size limits, an undecodable request, an unknown method', async () => {
    expect(await both(Buffer.alloc(LIMIT + 1, 0x61))).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${LIMIT + 1} vs ${LIMIT})` });
    expect(await both('big answer')).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    expect(await both(Buffer.from([0xff]))).toMatchObject({ code: grpc.status.INTERNAL, details: 'Error deserializing request' });
    expect(await both('ok', undefined, '/test.Echo/Nothing')).toMatchObject({ code: grpc.status.UNIMPLEMENTED });
  });

  it('the metadata a handler sees, without transport headers', async () => {
    const outcome = await both('metadata', metadataOf({ 'x-custom': 'one', authorization: 'Bearer t', 'x-id-bin': Buffer.from([9]) }));
    const seen = JSON.parse(outcome.value ?? '{}') as Record<string, unknown>;
    expect(seen).toMatchObject({ 'x-custom': ['one'], authorization: ['Bearer t'] });
    for (const transport of ['te', 'content-type', 'grpc-accept-encoding']) expect(Object.keys(seen)).not.toContain(transport);
  });

  it('a client that cancels: the handler is told', async () => {
    const unary = own.client.makeUnaryRequest('/test.Echo/Unary', identity, identity, Buffer.from('slow'), () => {});
    await new Promise((resolve) => setTimeout(resolve, 50));
    unary.cancel();
    await expect.poll(() => cancelled.has('slow')).toBe(true);
    expect(await both('ok')).toMatchObject({ code: grpc.status.OK });
  });
});
