/**
 * The limits against abuse on a real node: watches per connection, streams
 * per connection (HTTP/2 SETTINGS), keys/elements/fields per answer, and the
 * request size. Each error names the limit and the flag that sets it.
 */
import { connect } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProtos } from '../../src/proto/loader.ts';
import { bytes, GrpcError, TestCluster } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';

let cluster: TestCluster;
let address: string;
const opened: grpc.Client[] = [];

beforeAll(async () => {
  cluster = await TestCluster.start({
    size: 1,
    flags: [
      '--max-watches-per-connection', '2',
      '--max-streams-per-connection', '7',
      '--max-keys-per-call', '5',
      '--max-key-bytes', '64',
      '--max-value-bytes', '1kb',
      '--max-request-bytes', '4kb',
    ],
  });
  address = `127.0.0.1:${cluster.spec('n1').clientPort}`;
}, 60_000);

afterAll(async () => {
  for (const client of opened.splice(0)) client.close();
  await cluster?.stop();
});

/** A KV client on its own HTTP/2 connection (grpc-js otherwise shares one connection per address). */
function connection(): grpc.Client {
  const client = new (loadProtos().clients.kv)(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  opened.push(client);
  return client;
}

function call(client: grpc.Client, method: string, request: object): Promise<Reply> {
  const fn = (client as unknown as Record<string, (r: object, cb: (e: grpc.ServiceError | null, r: Reply) => void) => void>)[method] as (
    r: object,
    cb: (e: grpc.ServiceError | null, r: Reply) => void,
  ) => void;
  return new Promise((resolve, reject) => fn.call(client, request, (error, reply) => (error === null ? resolve(reply) : reject(new GrpcError(error.code, error.details, error.metadata)))));
}

async function refusal(pending: Promise<unknown>): Promise<{ code: string; details: string }> {
  try {
    await pending;
  } catch (error) {
    if (error instanceof GrpcError) return { code: grpc.status[error.code], details: error.details };
    throw error;
  }
  throw new Error('the call succeeded');
}

function watch(client: grpc.Client, key: string): grpc.ClientReadableStream<Reply> {
  const stream = (client as unknown as { Watch(r: object): grpc.ClientReadableStream<Reply> }).Watch({ key });
  stream.on('error', () => {});
  return stream;
}

describe('limits', () => {
  it('refuses a watch past --max-watches-per-connection on that connection only, and frees the slot when one is cancelled', async () => {
    const writer = connection();
    /** A watch that is really open: it delivers the write made after it started. */
    const liveWatch = async (client: grpc.Client, key: string): Promise<grpc.ClientReadableStream<Reply>> => {
      const stream = watch(client, key);
      const event = new Promise<Reply>((resolve, reject) => {
        stream.once('data', resolve);
        stream.once('status', (status: grpc.StatusObject) => reject(new Error(`watch ended: ${status.details}`)));
      });
      // The watch may register after the first write; write until it sees one.
      for (let i = 0; ; i++) {
        await call(writer, 'Set', { key, value: bytes(`v${i}`) });
        const seen = await Promise.race([event, new Promise<null>((resolve) => setTimeout(() => resolve(null), 100))]);
        if (seen !== null) return stream;
      }
    };
    const first = connection();
    const a = await liveWatch(first, 'a');
    const b = await liveWatch(first, 'b');
    const third = await new Promise<grpc.StatusObject>((resolve) => watch(first, 'c').on('status', resolve));
    expect(third).toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: 'too many watches on this connection: the limit is 2 (--max-watches-per-connection); cancel one, or open another connection',
    });
    // Another connection has its own allowance.
    const other = await liveWatch(connection(), 'd');
    // The server frees a's slot once it hears of the cancel: until then a new watch may still be refused.
    a.cancel();
    let again: grpc.ClientReadableStream<Reply> | null = null;
    for (let attempt = 0; again === null && attempt < 50; attempt++) {
      again = await liveWatch(first, 'e').catch(() => null);
    }
    expect(again).not.toBeNull();
    for (const stream of [b, other, again]) stream?.cancel();
  });

  it('advertises --max-streams-per-connection as the HTTP/2 concurrent stream limit', async () => {
    const session = connect(`http://${address}`);
    try {
      const settings = await new Promise<{ maxConcurrentStreams?: number }>((resolve, reject) => {
        session.once('remoteSettings', resolve);
        session.once('error', reject);
      });
      expect(settings.maxConcurrentStreams).toBe(7);
    } finally {
      session.close();
    }
  });

  it('bounds Keys by --max-keys-per-call: a larger limit is INVALID_ARGUMENT, the default page is cut to it', async () => {
    const kv = connection();
    for (let i = 0; i < 8; i++) await call(kv, 'Set', { key: `key${i}`, value: bytes('v') });
    expect(await refusal(call(kv, 'Keys', { limit: 6 }))).toEqual({ code: 'INVALID_ARGUMENT', details: 'KeysRequest.limit is 6; the limit is 5 (--max-keys-per-call)' });
    const page = await call(kv, 'Keys', {});
    expect((page['keys'] as string[]).length).toBe(5);
    expect(page['next_cursor']).not.toBe('');
    expect(((await call(kv, 'Keys', { limit: 3 }))['keys'] as string[]).length).toBe(3);
  });

  it('refuses LRange and HGetAll answers larger than --max-keys-per-call, and pops of more', async () => {
    const kv = connection();
    await call(kv, 'RPush', { key: 'list', values: ['1', '2', '3', '4', '5', '6'].map(bytes) });
    expect(await refusal(call(kv, 'LRange', { key: 'list', start: 0, stop: -1 }))).toEqual({
      code: 'RESOURCE_EXHAUSTED',
      details: 'LRange would answer with 6 elements; ask for a smaller range (start, stop): the limit is 5 (--max-keys-per-call)',
    });
    expect(((await call(kv, 'LRange', { key: 'list', start: 0, stop: 4 }))['values'] as Uint8Array[]).length).toBe(5);
    expect(await refusal(call(kv, 'LPop', { key: 'list', count: 6 }))).toEqual({ code: 'INVALID_ARGUMENT', details: 'LPopRequest.count is 6; the limit is 5 (--max-keys-per-call)' });
    expect(((await call(kv, 'LLen', { key: 'list' }))['length'] as number)).toBe(6);

    const fields = Object.fromEntries(['a', 'b', 'c', 'd', 'e', 'f'].map((f) => [f, bytes(f)]));
    await call(kv, 'HSet', { key: 'hash', fields });
    expect(await refusal(call(kv, 'HGetAll', { key: 'hash' }))).toMatchObject({ code: 'RESOURCE_EXHAUSTED', details: expect.stringContaining('HGetAll would answer with 6 fields') });
    const txn = { success: [{ request: 'hgetall', hgetall: { key: 'hash' } }] };
    expect(await refusal(call(kv, 'Txn', txn))).toMatchObject({ code: 'RESOURCE_EXHAUSTED', details: expect.stringContaining('(--max-keys-per-call)') });
  });

  it('refuses a message over --max-request-bytes with RESOURCE_EXHAUSTED naming the size limit', async () => {
    const kv = connection();
    expect(await refusal(call(kv, 'Set', { key: 'big', value: Buffer.alloc(8 * 1024) }))).toEqual({
      code: 'RESOURCE_EXHAUSTED',
      details: expect.stringMatching(/^Received message larger than max \(\d+ vs 4096\)$/),
    });
    // Within the request size but over the value size: INVALID_ARGUMENT naming that flag.
    expect(await refusal(call(kv, 'Set', { key: 'big', value: Buffer.alloc(2 * 1024) }))).toEqual({
      code: 'INVALID_ARGUMENT',
      details: 'SetRequest.value is 2048 bytes; the limit is 1024 (--max-value-bytes)',
    });
    expect((await call(kv, 'Get', { key: 'big' }))['found']).toBe(false);
  });
});
