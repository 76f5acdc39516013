/**
 * Http2GrpcServer against grpc-js's own Server: the same handlers behind
 * both, real gRPC on 127.0.0.1, and every outcome a grpc-js client sees
 * (value, status, details, trailers, response headers) must be the same.
 * Also what a handler sees (metadata, peer, deadline, cancel), and malformed
 * requests sent as raw HTTP/2.
 */
import * as http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UnaryCall } from '../../../../src/transport/http2/grpc-calls.ts';
import { Http2GrpcServer } from '../../../../src/transport/http2/grpc-server.ts';
import { GRPC_SERVER_DEFAULTS } from '../../../../src/transport/grpc-server.ts';

const MAX_RECEIVE = 1000;
const MAX_SEND = 1000;
const identity = (bytes: Buffer): Buffer => bytes;

const SERVICE: grpc.ServiceDefinition = {
  Unary: {
    path: '/test.Echo/Unary',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    // A request starting with 0xff cannot be decoded, as a malformed protobuf could not.
    requestDeserialize: (bytes: Buffer) => {
      if (bytes[0] === 0xff) throw new Error('undecodable');
      return bytes;
    },
    responseSerialize: identity,
    responseDeserialize: identity,
  },
  Stream: {
    path: '/test.Echo/Stream',
    requestStream: false,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

interface Seen {
  call: object;
  cancelled: boolean;
}

/** Handlers shared by both servers; what each call looked like is kept by request text. */
function handlers(seen: Map<string, Seen>): grpc.UntypedServiceImplementation {
  const unary = (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void => {
    const text = call.request.toString();
    const record: Seen = { call, cancelled: false };
    seen.set(text, record);
    call.on('cancelled', () => (record.cancelled = true));
    if (text === 'ok') callback(null, Buffer.from('fine'));
    else if (text === 'empty') callback(null, Buffer.alloc(0));
    else if (text === 'null trailer') (callback as unknown as (error: null, value: Buffer, trailer: null) => void)(null, Buffer.from('fine'), null);
    else if (text === 'initial metadata') {
      call.sendMetadata(metadataOf({ 'x-initial': 'early' }));
      callback(null, Buffer.from('fine'));
    } else if (text === 'initial metadata, then error') {
      call.sendMetadata(metadataOf({ 'x-initial': 'early' }));
      callback({ code: grpc.status.ABORTED, details: 'after the headers', metadata: metadataOf({ 'x-trailer': 'late' }) });
    } else if (text === 'trailer') callback(null, Buffer.from('fine'), metadataOf({ 'x-trailer': 'yes', 'x-bytes-bin': Buffer.from([1, 2, 3]) }));
    else if (text === 'status') callback({ code: grpc.status.FAILED_PRECONDITION, details: 'not here: ü, 100% and\nnewline', metadata: metadataOf({ 'quorumkv-leader-id': 'n2' }) });
    else if (text === 'plain error') callback(new Error('a plain error'));
    else if (text === 'throw') throw new Error('thrown by the handler');
    else if (text === 'big answer') callback(null, Buffer.alloc(MAX_SEND + 1, 7));
    else if (text === 'facts') {
      const deadline = call.getDeadline();
      callback(
        null,
        Buffer.from(
          JSON.stringify({
            metadata: call.metadata.toJSON(),
            peer: /^127\.0\.0\.1:\d+$/.test(call.getPeer()),
            deadlineIn: typeof deadline === 'number' && Number.isFinite(deadline) ? Math.round((deadline - Date.now()) / 1000) : String(deadline),
            path: call.getPath(),
            auth: call.getAuthContext(),
          }),
        ),
      );
    } else if (text.startsWith('slow')) setTimeout(() => callback(null, Buffer.from('late')), 600);
    else callback({ code: grpc.status.INVALID_ARGUMENT, details: `unknown request '${text}'` });
  };
  const stream = (call: grpc.ServerWritableStream<Buffer, Buffer>): void => {
    for (let i = 0; i < 3; i++) call.write(Buffer.from(`part ${i}`));
    call.end();
  };
  return { Unary: unary, Stream: stream } as grpc.UntypedServiceImplementation;
}

function metadataOf(entries: Record<string, string | Buffer>): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(entries)) metadata.set(key, value);
  return metadata;
}

interface Side {
  client: grpc.Client;
  port: number;
  seen: Map<string, Seen>;
  close: () => void;
}

async function startReference(): Promise<Side> {
  const seen = new Map<string, Seen>();
  const server = new grpc.Server({ ...GRPC_SERVER_DEFAULTS, 'grpc.max_receive_message_length': MAX_RECEIVE, 'grpc.max_send_message_length': MAX_SEND });
  server.addService(SERVICE, handlers(seen));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error === null ? resolve(bound) : reject(error))),
  );
  return { port, seen, client: new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()), close: () => server.forceShutdown() };
}

async function startOwn(): Promise<Side> {
  const seen = new Map<string, Seen>();
  const server = new Http2GrpcServer({ maxReceiveBytes: MAX_RECEIVE, maxSendBytes: MAX_SEND });
  server.addService(SERVICE, handlers(seen));
  const port = await server.listen('127.0.0.1:0');
  return { port, seen, client: new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()), close: () => void server.close() };
}

let fast: Side;
let reference: Side;

beforeAll(async () => {
  fast = await startOwn();
  reference = await startReference();
});

afterAll(() => {
  for (const side of [fast, reference]) {
    side?.client.close();
    side?.close();
  }
});

/** Everything a client learns from one unary call; `date` is left out, as it differs by the second. */
interface Outcome {
  value: string | null;
  code: grpc.status;
  details: string;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown>;
}

function plain(metadata: grpc.Metadata | undefined): Record<string, unknown> {
  const map = { ...(metadata?.toJSON() ?? {}) } as Record<string, unknown>;
  delete map['date'];
  // grpc-js also names the encoding of its answers (always identity); ours leaves it out, which means the same.
  delete map['grpc-encoding'];
  return map;
}

function call(side: Side, request: Buffer | string, options: { metadata?: grpc.Metadata; deadlineMs?: number; compress?: boolean } = {}): Promise<Outcome> {
  const client = options.compress === true ? new grpc.Client(`127.0.0.1:${side.port}`, grpc.credentials.createInsecure(), { 'grpc.default_compression_algorithm': 2 }) : side.client;
  return new Promise((resolve) => {
    let headers: Record<string, unknown> = {};
    let value: string | null = null;
    let code = grpc.status.UNKNOWN;
    let details = '';
    let pending = 2;
    const finish = (trailers: grpc.Metadata | undefined): void => {
      if (--pending > 0) return;
      if (client !== side.client) client.close();
      resolve({ value, code, details, headers, trailers: plain(trailers) });
    };
    let statusTrailers: grpc.Metadata | undefined;
    const deadline = options.deadlineMs === undefined ? Infinity : Date.now() + options.deadlineMs;
    const bytes = typeof request === 'string' ? Buffer.from(request) : request;
    const unary = client.makeUnaryRequest('/test.Echo/Unary', identity, identity, bytes, options.metadata ?? new grpc.Metadata(), { deadline }, (error, response) => {
      value = response === undefined ? null : response.toString();
      code = error?.code ?? grpc.status.OK;
      details = error?.details ?? 'OK';
      finish(statusTrailers);
    });
    unary.on('metadata', (metadata: grpc.Metadata) => (headers = plain(metadata)));
    unary.on('status', (status: grpc.StatusObject) => {
      statusTrailers = status.metadata;
      finish(statusTrailers);
    });
  });
}

async function both(request: Buffer | string, options: Parameters<typeof call>[2] = {}): Promise<Outcome> {
  const [mine, theirs] = await Promise.all([call(fast, request, options), call(reference, request, options)]);
  expect(mine).toEqual(theirs);
  return mine;
}

describe('Http2GrpcServer answers as grpc-js does', () => {
  it('gives unary handlers its own call objects', async () => {
    await call(fast, 'ok');
    expect(fast.seen.get('ok')?.call).toBeInstanceOf(UnaryCall);
  });

  it('a value, an empty value, and trailing metadata (text and binary)', async () => {
    expect(await both('ok')).toMatchObject({ value: 'fine', code: grpc.status.OK, details: 'OK' });
    expect(await both('empty')).toMatchObject({ value: '', code: grpc.status.OK });
    const outcome = await both('trailer');
    expect(outcome.trailers).toMatchObject({ 'x-trailer': ['yes'] });
    expect(Object.keys(outcome.trailers)).toContain('x-bytes-bin');
    expect(outcome.headers).toMatchObject({ 'content-type': ['application/grpc+proto'] });
  });

  it('a null trailer, and initial metadata sent by the handler before its answer or its error', async () => {
    expect(await both('null trailer')).toMatchObject({ value: 'fine', code: grpc.status.OK });
    expect((await both('initial metadata')).headers).toMatchObject({ 'x-initial': ['early'] });
    const failed = await both('initial metadata, then error');
    expect(failed).toMatchObject({ code: grpc.status.ABORTED, details: 'after the headers', headers: { 'x-initial': ['early'] }, trailers: { 'x-trailer': ['late'] } });
  });

  it('a status with details that need escaping and metadata', async () => {
    const outcome = await both('status');
    expect(outcome).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'not here: ü, 100% and\nnewline', value: null });
    expect(outcome.trailers).toMatchObject({ 'quorumkv-leader-id': ['n2'] });
  });

  it('an error without a code, and a handler that throws', async () => {
    expect(await both('plain error')).toMatchObject({ code: grpc.status.UNKNOWN, details: 'a plain error' });
    expect(await both('throw')).toMatchObject({ code: grpc.status.UNKNOWN, details: 'Unknown error' });
  });

  it('a request over the receive limit and an answer over the send limit: RESOURCE_EXHAUSTED naming the sizes', async () => {
    const tooBig = await both(Buffer.alloc(MAX_RECEIVE + 1, 0x61));
    expect(tooBig).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${MAX_RECEIVE + 1} vs ${MAX_RECEIVE})` });
    expect(await both(Buffer.alloc(MAX_RECEIVE, 0x61))).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    expect(await both('big answer')).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, details: `Sent message larger than max (${MAX_SEND + 6} vs. ${MAX_SEND})` });
  });

  it('a request the method cannot decode: INTERNAL', async () => {
    expect(await both(Buffer.from([0xff, 1, 2]))).toMatchObject({ code: grpc.status.INTERNAL, details: 'Error deserializing request' });
  });

  it('a compressed request, and a streaming method on the same server', async () => {
    expect(await both('ok', { compress: true })).toMatchObject({ value: 'fine', code: grpc.status.OK });
    const parts = await new Promise<string[]>((resolve, reject) => {
      const received: string[] = [];
      const stream = fast.client.makeServerStreamRequest('/test.Echo/Stream', identity, identity, Buffer.from('go'));
      stream.on('data', (part: Buffer) => received.push(part.toString()));
      stream.on('error', reject);
      stream.on('end', () => resolve(received));
    });
    expect(parts).toEqual(['part 0', 'part 1', 'part 2']);
  });

  it('what the handler sees: metadata without transport headers, the peer, the deadline, the path', async () => {
    const metadata = metadataOf({ 'x-custom': 'one', authorization: 'Bearer t0k3n', 'x-id-bin': Buffer.from([9, 8]) });
    const outcome = await both('facts', { metadata, deadlineMs: 30_000 });
    const facts = JSON.parse(outcome.value ?? '{}') as Record<string, unknown>;
    expect(facts).toMatchObject({ peer: true, deadlineIn: 30, path: '/test.Echo/Unary', auth: {} });
    const seenMetadata = facts['metadata'] as Record<string, unknown>;
    expect(seenMetadata).toMatchObject({ 'x-custom': ['one'], authorization: ['Bearer t0k3n'] });
    expect(Object.keys(seenMetadata)).toContain('x-id-bin');
    for (const transport of ['grpc-timeout', 'te', 'content-type', 'grpc-accept-encoding']) expect(Object.keys(seenMetadata)).not.toContain(transport);
    const noDeadline = JSON.parse((await both('facts')).value ?? '{}') as Record<string, unknown>;
    expect(noDeadline['deadlineIn']).toBe('Infinity');
  });

  it('a deadline that passes: DEADLINE_EXCEEDED, and the handler is told the call is cancelled', async () => {
    // The client's own timer ends the call (its details name the client's wait), so only the codes compare.
    const outcomes = await Promise.all([fast, reference].map((side) => call(side, 'slow deadline', { deadlineMs: 150 })));
    expect(outcomes.map((outcome) => outcome.code)).toEqual([grpc.status.DEADLINE_EXCEEDED, grpc.status.DEADLINE_EXCEEDED]);
    for (const side of [fast, reference]) {
      await expect.poll(() => side.seen.get('slow deadline')?.cancelled).toBe(true);
    }
  });

  it('a client that cancels: the handler sees cancelled, and the late answer goes nowhere', async () => {
    for (const side of [fast, reference]) {
      const unary = side.client.makeUnaryRequest('/test.Echo/Unary', identity, identity, Buffer.from('slow cancel'), () => {});
      await expect.poll(() => side.seen.has('slow cancel')).toBe(true);
      unary.cancel();
      await expect.poll(() => side.seen.get('slow cancel')?.cancelled).toBe(true);
    }
    // The late answers (600 ms after the calls) must not break the servers.
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(await both('ok')).toMatchObject({ code: grpc.status.OK });
  });
});

describe('Http2GrpcServer on malformed unary requests (raw HTTP/2)', () => {
  /** One call with a raw HTTP/2 client; `keepOpen` sends the body without ending the request. */
  function raw(body: Buffer, headers: http2.OutgoingHttpHeaders = {}, keepOpen = false): Promise<{ status: string; message: string }> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(`http://127.0.0.1:${fast.port}`);
      session.on('error', reject);
      const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', ...headers });
      stream.on('error', () => {});
      let status = '';
      let message = '';
      const take = (block: http2.IncomingHttpHeaders): void => {
        if (block['grpc-status'] !== undefined) {
          status = String(block['grpc-status']);
          message = decodeURIComponent(String(block['grpc-message'] ?? ''));
          // A request still open ends when the server resets it after its answer (or never): the status is what counts.
          if (keepOpen) stream.close();
        }
      };
      stream.on('response', take);
      stream.on('trailers', take);
      stream.on('data', () => {});
      stream.on('close', () => {
        session.destroy();
        resolve({ status, message });
      });
      if (keepOpen) stream.write(body);
      else stream.end(body);
    });
  }

  const framed = (text: string, flag = 0): Buffer => {
    const message = Buffer.from(text);
    const frame = Buffer.alloc(5 + message.length);
    frame[0] = flag;
    frame.writeUInt32BE(message.length, 1);
    message.copy(frame, 5);
    return frame;
  };

  it('no message, a truncated one, two, or a compressed flag with no encoding', async () => {
    expect(await raw(Buffer.alloc(0))).toEqual({ status: String(grpc.status.UNIMPLEMENTED), message: 'Received no request message for unary method /test.Echo/Unary' });
    expect(await raw(framed('ok').subarray(0, 6))).toMatchObject({ status: String(grpc.status.UNIMPLEMENTED), message: expect.stringContaining('truncated') });
    expect(await raw(Buffer.concat([framed('ok'), framed('ok')]))).toMatchObject({ status: String(grpc.status.UNIMPLEMENTED), message: expect.stringContaining('more than one') });
    expect(await raw(framed('ok', 1))).toMatchObject({ status: String(grpc.status.INTERNAL), message: expect.stringContaining('compressed') });
    expect(await raw(framed('ok'))).toEqual({ status: '0', message: 'OK' });
  });

  it("the server's own deadline, for a client that does not keep one: DEADLINE_EXCEEDED and the handler told", async () => {
    expect(await raw(framed('slow raw'), { 'grpc-timeout': '100m' })).toEqual({ status: String(grpc.status.DEADLINE_EXCEEDED), message: 'Deadline exceeded' });
    expect(fast.seen.get('slow raw')?.cancelled).toBe(true);
  });

  it('bytes past the declared message, with the request never ended: refused at once, not buffered', async () => {
    // A prefix declaring 2 bytes, then far more than the receive limit; the client never half-closes.
    const flood = Buffer.concat([framed('ok'), Buffer.alloc(MAX_RECEIVE * 4, 0x61)]);
    expect(await raw(flood, {}, true)).toMatchObject({ status: String(grpc.status.UNIMPLEMENTED), message: expect.stringContaining('more than one') });
  }, 10_000);

  it('a deadline too far away for a timer (over 2^31 ms): the call runs, and getDeadline still tells it', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => void warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      expect(await raw(framed('ok'), { 'grpc-timeout': '5000000S' })).toEqual({ status: '0', message: 'OK' });
      expect(await raw(framed('facts'), { 'grpc-timeout': '99999999H' })).toEqual({ status: '0', message: 'OK' });
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });

  it('a malformed grpc-timeout: INTERNAL naming the value', async () => {
    expect(await raw(framed('ok'), { 'grpc-timeout': 'soon' })).toEqual({ status: String(grpc.status.INTERNAL), message: 'Invalid grpc-timeout value "soon"' });
  });
});
