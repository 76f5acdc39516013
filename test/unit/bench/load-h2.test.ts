import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { RawHttp2Connection } from '../../bench/load-h2.ts';

const raw = (b: Buffer): Buffer => b;
const method = (path: string): grpc.MethodDefinition<Buffer, Buffer> => ({
  path,
  requestStream: false,
  responseStream: false,
  requestSerialize: raw,
  requestDeserialize: raw,
  responseSerialize: raw,
  responseDeserialize: raw,
});
const SERVICE = { Echo: method('/bench.Test/Echo'), Fail: method('/bench.Test/Fail'), Slow: method('/bench.Test/Slow') };

let server: grpc.Server | null = null;
let connection: RawHttp2Connection | null = null;

afterEach(() => {
  connection?.close();
  server?.forceShutdown();
  connection = server = null;
});

async function start(options: grpc.ServerOptions = {}): Promise<RawHttp2Connection> {
  server = new grpc.Server(options);
  server.addService(SERVICE, {
    Echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
    Fail: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) =>
      cb({ code: grpc.status.FAILED_PRECONDITION, details: `WRONGTYPE ${call.request.toString()} holds a list` }),
    Slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => setTimeout(() => cb(null, call.request), 50),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
  );
  connection = new RawHttp2Connection(`127.0.0.1:${port}`);
  await connection.ready(5000);
  return connection;
}

function call(c: RawHttp2Connection, path: string, message: Buffer): Promise<number> {
  return new Promise((resolve) => c.call(path, c.prepare(message), resolve));
}

describe('the load generator’s HTTP/2 client', () => {
  it('reads OK and error statuses, the same block twice from its memo', async () => {
    const c = await start();
    expect(await call(c, '/bench.Test/Echo', Buffer.from('hello'))).toBe(grpc.status.OK);
    expect(await call(c, '/bench.Test/Echo', Buffer.alloc(0))).toBe(grpc.status.OK);
    expect(await call(c, '/bench.Test/Fail', Buffer.from('k1'))).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await call(c, '/bench.Test/Fail', Buffer.from('k2'))).toBe(grpc.status.FAILED_PRECONDITION);
    expect(await call(c, '/bench.Test/Nope', Buffer.from('x'))).toBe(grpc.status.UNIMPLEMENTED);
  });

  it('keeps many calls in flight, queueing beyond the server’s stream limit', async () => {
    const c = await start({ 'grpc.max_concurrent_streams': 4 });
    const statuses = await Promise.all(Array.from({ length: 60 }, (_, i) => call(c, i % 2 ? '/bench.Test/Slow' : '/bench.Test/Echo', Buffer.from(`m${i}`))));
    expect(statuses.every((s) => s === grpc.status.OK)).toBe(true);
  });

  it('sends requests larger than the initial flow-control windows', async () => {
    const c = await start();
    const big = Buffer.alloc(300_000, 7);
    const statuses = await Promise.all([call(c, '/bench.Test/Echo', big), call(c, '/bench.Test/Echo', big), call(c, '/bench.Test/Echo', Buffer.from('small'))]);
    expect(statuses).toEqual([grpc.status.OK, grpc.status.OK, grpc.status.OK]);
  });

  it('fails calls in flight and later ones with UNAVAILABLE when the server goes away', async () => {
    const c = await start();
    const pending = call(c, '/bench.Test/Slow', Buffer.from('x'));
    await new Promise((resolve) => setTimeout(resolve, 10));
    server!.forceShutdown();
    expect(await pending).toBe(grpc.status.UNAVAILABLE);
    expect(await call(c, '/bench.Test/Echo', Buffer.from('y'))).toBe(grpc.status.UNAVAILABLE);
  });

  it('finishes calls in flight after a graceful GOAWAY and fails the ones after it', async () => {
    const c = await start();
    const pending = call(c, '/bench.Test/Slow', Buffer.from('x'));
    await new Promise((resolve) => setTimeout(resolve, 10));
    const shutdown = new Promise<void>((resolve) => server!.tryShutdown(() => resolve()));
    expect(await pending).toBe(grpc.status.OK);
    expect(await call(c, '/bench.Test/Echo', Buffer.from('y'))).toBe(grpc.status.UNAVAILABLE);
    c.close();
    await shutdown;
  });

  it('reports a connection that cannot be made', async () => {
    const c = new RawHttp2Connection('127.0.0.1:1');
    await expect(c.ready(2000)).rejects.toThrow(/127\.0\.0\.1:1/);
    c.close();
  });
});
