/**
 * The client threads' forwarding, end to end in one process: real worker
 * threads serving gRPC on 127.0.0.1, a real grpc-js client, and handlers on
 * this (the main) thread that see what the workers forwarded. Proves that a
 * call's outcome (response, status, message, trailers, stream, cancel,
 * deadline) and the facts handlers read (metadata, peer, deadline, TLS peer
 * certificate) cross the thread boundary unchanged.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { askReflection } from '../../support/reflection.ts';
import { KV_METHODS, CLUSTER_METHODS, HEALTH_METHODS, loadProtos } from '../../../src/proto/loader.ts';
import { ClientThreads } from '../../../src/server/client-threads/client-threads.ts';
import type { ForwardedCall } from '../../../src/server/client-threads/forwarded-call.ts';
import { GRPC_SERVER_DEFAULTS } from '../../../src/transport/grpc-server.ts';
import { TestCerts } from '../../support/test-certs.ts';

type Message = Record<string, unknown>;
type UnaryCallback = (error: Partial<grpc.StatusObject> | null, value?: Message) => void;

const protos = loadProtos();
const logger = pino({ level: 'silent' });

/** What the handlers saw, for the tests to check. */
const seen: ForwardedCall[] = [];
let watchCancelled: () => void = () => {};
const watchCancels = new Promise<void>((resolve) => (watchCancelled = resolve));

function unimplemented(methods: readonly string[]): Record<string, grpc.UntypedHandleCall> {
  return Object.fromEntries(
    methods.map((method) => [method, ((_call: unknown, callback: UnaryCallback) => callback({ code: grpc.status.UNIMPLEMENTED, details: method })) as grpc.UntypedHandleCall]),
  );
}

const kv: Record<string, grpc.UntypedHandleCall> = {
  ...unimplemented(KV_METHODS),
  Get: ((call: ForwardedCall, callback: UnaryCallback) => {
    seen.push(call);
    const key = (call.request as Message)['key'] as string;
    if (key === 'missing') {
      const metadata = new grpc.Metadata();
      metadata.set('quorumkv-leader-id', 'n2');
      callback({ code: grpc.status.FAILED_PRECONDITION, details: `no key '${key}' here`, metadata });
    } else if (key === 'slow') {
      setTimeout(() => callback(null, { found: true, value: Buffer.from('late') }), 1500);
    } else {
      callback(null, { found: true, value: Buffer.from(`value of ${key}`) });
    }
  }) as unknown as grpc.UntypedHandleCall,
  Watch: ((call: ForwardedCall) => {
    seen.push(call);
    let index = 0;
    const timer = setInterval(() => call.write({ index: ++index, type: 'PUT', key: 'k', value: Buffer.from(String(index)), value_type: 'STRING' }), 10);
    call.on('cancelled', () => {
      clearInterval(timer);
      watchCancelled();
    });
  }) as unknown as grpc.UntypedHandleCall,
};
const cluster = unimplemented(CLUSTER_METHODS);
const health: Record<string, grpc.UntypedHandleCall> = {
  ...unimplemented(HEALTH_METHODS),
  // A stream that ends with a status after two messages.
  Watch: ((call: ForwardedCall) => {
    call.write({ status: 'SERVING' });
    call.write({ status: 'NOT_SERVING' });
    call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'enough' });
  }) as unknown as grpc.UntypedHandleCall,
};

function start(
  tls: Parameters<typeof ClientThreads.start>[0]['tls'] = null,
  onFatal: (error: Error) => void = (error) => {
    throw error;
  },
  threads = 2,
): Promise<ClientThreads> {
  return ClientThreads.start({
    threads,
    address: '127.0.0.1:0',
    serverOptions: { ...GRPC_SERVER_DEFAULTS, 'grpc.max_receive_message_length': 1024 * 1024 },
    tls,
    protos,
    implementations: { kv, cluster, health },
    logger,
    onFatal,
  });
}

function unary(client: grpc.Client, method: string, request: Message, options: { metadata?: grpc.Metadata; deadlineMs?: number } = {}): Promise<Message> {
  return new Promise((resolve, reject) => {
    const invoke = (client as unknown as Record<string, (...args: unknown[]) => void>)[method] as (...args: unknown[]) => void;
    const callOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
    invoke.call(client, request, options.metadata ?? new grpc.Metadata(), callOptions, (error: grpc.ServiceError | null, response: Message) =>
      error === null ? resolve(response) : reject(error),
    );
  });
}

describe('client threads, plaintext', () => {
  let threads: ClientThreads;
  let client: grpc.Client;
  let healthClient: grpc.Client;

  beforeAll(async () => {
    threads = await start();
    client = new protos.clients.kv(`127.0.0.1:${threads.port}`, grpc.credentials.createInsecure());
    healthClient = new protos.clients.health(`127.0.0.1:${threads.port}`, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    healthClient?.close();
    await threads?.stop(500);
  });

  it('answers a unary call with the handler response, and passes the metadata the services read', async () => {
    const metadata = new grpc.Metadata();
    metadata.set('authorization', 'Bearer secret');
    metadata.set('quorumkv-forwarded', '1');
    metadata.set('x-other', 'not passed');
    const response = await unary(client, 'Get', { key: 'a' }, { metadata, deadlineMs: 5000 });
    expect(response['found']).toBe(true);
    expect(Buffer.from(response['value'] as Uint8Array).toString()).toBe('value of a');
    const call = seen.at(-1) as ForwardedCall;
    expect(call.metadata.get('authorization')).toEqual(['Bearer secret']);
    expect(call.metadata.get('quorumkv-forwarded')).toEqual(['1']);
    expect(call.metadata.get('x-other')).toEqual([]);
    expect(call.getPeer()).toMatch(/^127\.0\.0\.1:\d+$/);
    const deadline = call.getDeadline();
    expect(deadline).toBeGreaterThan(Date.now());
    expect(deadline).toBeLessThanOrEqual(Date.now() + 5000);
    expect(call.getAuthContext()).toEqual({});
  });

  it('answers server reflection from the threads, built on the first call, for v1 and v1alpha', async () => {
    for (const version of ['v1', 'v1alpha'] as const) {
      const [list, kv] = await askReflection(`127.0.0.1:${threads.port}`, grpc.credentials.createInsecure(), [{ list_services: '' }, { file_containing_symbol: 'quorumkv.v1.KV' }], version);
      expect(list?.list_services_response?.service.map((x) => x.name).sort()).toEqual(['grpc.health.v1.Health', 'quorumkv.v1.Cluster', 'quorumkv.v1.KV']);
      expect(kv?.file_descriptor_response?.file_descriptor_proto.length).toBeGreaterThan(0);
    }
  });

  it('has no deadline when the client sets none', async () => {
    await unary(client, 'Get', { key: 'b' });
    expect((seen.at(-1) as ForwardedCall).getDeadline()).toBe(Infinity);
  });

  it('keeps an error status, its message and its trailing metadata', async () => {
    const error = (await unary(client, 'Get', { key: 'missing' }).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(error.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error.details).toBe("no key 'missing' here");
    expect(error.metadata.get('quorumkv-leader-id')).toEqual(['n2']);
  });

  it('answers methods the handlers refuse, e.g. UNIMPLEMENTED, as they refuse them', async () => {
    const error = (await unary(client, 'Set', { key: 'x' }).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(error.code).toBe(grpc.status.UNIMPLEMENTED);
    expect(error.details).toBe('Set');
  });

  it('ends a call with DEADLINE_EXCEEDED when the handler is slower than the deadline', async () => {
    const error = (await unary(client, 'Get', { key: 'slow' }, { deadlineMs: 200 }).catch((e: unknown) => e)) as grpc.ServiceError;
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    // The late answer is dropped; the connection still works.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await unary(client, 'Get', { key: 'c' }))['found']).toBe(true);
  });

  it('streams server messages, and tells the handler when the client cancels', async () => {
    const stream = (client as unknown as { Watch: (request: Message) => grpc.ClientReadableStream<Message> }).Watch({ key: 'k' });
    const events: Message[] = [];
    stream.on('error', () => {});
    await new Promise<void>((resolve) =>
      stream.on('data', (event: Message) => {
        events.push(event);
        if (events.length === 5) resolve();
      }),
    );
    expect(events.map((e) => e['index'])).toEqual([1, 2, 3, 4, 5]);
    stream.cancel();
    await watchCancels;
    const call = seen.at(-1) as ForwardedCall;
    expect(call.cancelled).toBe(true);
  });

  it('ends a stream with the status the handler emits after its messages', async () => {
    const stream = (healthClient as unknown as { Watch: (request: Message) => grpc.ClientReadableStream<Message> }).Watch({ service: '' });
    const statuses: unknown[] = [];
    stream.on('data', (message: Message) => statuses.push(message['status']));
    const error = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    expect(statuses).toEqual(['SERVING', 'NOT_SERVING']);
    expect(error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(error.details).toBe('enough');
  });

  it('serves many concurrent calls over several connections', async () => {
    const clients = Array.from({ length: 6 }, () => new protos.clients.kv(`127.0.0.1:${threads.port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
    try {
      const answers = await Promise.all(clients.flatMap((c, i) => Array.from({ length: 50 }, (_, j) => unary(c, 'Get', { key: `k${i}-${j}` }))));
      expect(answers.map((a) => Buffer.from(a['value'] as Uint8Array).toString())).toEqual(
        clients.flatMap((_, i) => Array.from({ length: 50 }, (__, j) => `value of k${i}-${j}`)),
      );
    } finally {
      for (const c of clients) c.close();
    }
  });
});

describe('client threads, TLS', () => {
  let dir: string;
  let threads: ClientThreads;
  let client: grpc.Client;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'qkv-client-threads-'));
    const certs = await TestCerts.create(dir);
    const files = await certs.node('n1');
    threads = await start({ files: { certFile: files.certFile, keyFile: files.keyFile, caFile: certs.caFile }, nodeId: 'n1', requireClientCertificate: false });
    client = new protos.clients.kv(`127.0.0.1:${threads.port}`, await certs.credentials('alice'));
  });

  afterAll(async () => {
    client?.close();
    await threads?.stop(500);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("passes the client certificate grpc-js verified, which auth reads the user's name from", async () => {
    await unary(client, 'Get', { key: 'tls' });
    const certificate = (seen.at(-1) as ForwardedCall).getAuthContext().sslPeerCertificate;
    expect(certificate?.subject.CN).toBe('alice');
    expect(certificate?.subject.OU).toBe('client');
    expect(Buffer.isBuffer(certificate?.raw)).toBe(true);
  });

  it('re-reads the TLS files on reload and keeps serving', async () => {
    threads.reload();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await unary(client, 'Get', { key: 'after-reload' }))['found']).toBe(true);
  });
});

describe('client threads, failures', () => {
  it('tells the node when a thread dies after the start', async () => {
    let fatal: (error: Error) => void = () => {};
    const failed = new Promise<Error>((resolve) => (fatal = resolve));
    // One thread: the threads share one listening fd, and a dead thread closes it under its siblings,
    // whose next epoll_ctl on it aborts the process (libuv) — the node is stopping then anyway, but
    // here the process is the test runner's.
    const threads = await start(null, fatal, 1);
    try {
      await threads.killThreadForTest(0);
      const error = await failed;
      expect(error.name).toBe('ClientThreadError');
      expect(error.message).toBe('client thread 0 failed: exited with code 1');
    } finally {
      await threads.stop(100);
    }
  });

  it('refuses to start on a port that is taken, naming it', async () => {
    const first = await start();
    try {
      const address = `127.0.0.1:${first.port}`;
      const error = await ClientThreads.start({
        threads: 1,
        address,
        serverOptions: GRPC_SERVER_DEFAULTS,
        tls: null,
        protos,
        implementations: { kv, cluster, health },
        logger,
        onFatal: () => {},
      }).catch((e: unknown) => e as Error);
      expect((error as Error).message).toMatch(new RegExp(`^cannot serve the client API on ${address}: client thread 0: .*EADDRINUSE`));
    } finally {
      await first.stop(100);
    }
  });
});
