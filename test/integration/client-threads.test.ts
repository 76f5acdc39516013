/**
 * A real three-node cluster whose nodes serve the client API from two worker
 * threads (--client-threads 2), with TLS and --auth-file: writes through the
 * leader and a follower, linearizable reads, Watch and its per-connection
 * limit, reflection, auth by token and by client certificate, a certificate
 * reload on SIGHUP, and a clean SIGTERM with a watch open.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MISSING_CREDENTIALS } from '../../src/server/auth.ts';
import { bytes, eventually, GrpcError, NodeClient, sleep, TestCluster, text } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';
import { listServices } from '../support/reflection.ts';

const TOKENS = { admin: 'admin-token-0001', app: 'app-token-0002', viewer: 'viewer-token-0003' };
const MAX_WATCHES = 2;

let dir: string;
let cluster: TestCluster;
let caOnly: grpc.ChannelCredentials;
let leader: string;
let follower: string;
const opened: { close(): void }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qkv-client-threads-it-'));
  const authFile = join(dir, 'users.json');
  writeFileSync(
    authFile,
    JSON.stringify({
      users: [
        { name: 'root', role: 'admin', token: TOKENS.admin },
        { name: 'app', role: 'read-write', token: TOKENS.app },
        { name: 'viewer', role: 'read-only', token: TOKENS.viewer },
        { name: 'alice', role: 'read-only' },
      ],
    }),
  );
  cluster = await TestCluster.start({
    size: 3,
    tls: true,
    token: TOKENS.admin,
    flags: ['--client-threads', '2', '--auth-file', authFile, '--max-watches-per-connection', String(MAX_WATCHES)],
  });
  caOnly = await (cluster.certs as NonNullable<TestCluster['certs']>).credentials(null);
  leader = await cluster.waitForLeader();
  follower = cluster.specs.map((s) => s.id).find((id) => id !== leader) as string;
}, 90_000);

afterAll(async () => {
  for (const client of opened.splice(0)) client.close();
  await cluster?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function address(id: string): string {
  return `127.0.0.1:${cluster.spec(id).clientPort}`;
}

/** A client of its own (its own connection), sending `token` unless null. */
function nodeClient(id: string, token: string | null = TOKENS.admin, credentials: grpc.ChannelCredentials = caOnly): NodeClient {
  const client = new NodeClient(address(id), credentials, token, { 'grpc.use_local_subchannel_pool': 1 });
  opened.push(client);
  return client;
}

async function refusal(call: Promise<unknown>): Promise<{ code: string; details: string }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof GrpcError) return { code: grpc.status[error.code], details: error.details };
    throw error;
  }
  throw new Error('the call succeeded');
}

/** The first status a stream ends with (data ignored). */
function streamStatus(stream: grpc.ClientReadableStream<Reply>): Promise<grpc.StatusObject> {
  return new Promise((resolve) => {
    stream.on('error', () => {});
    stream.on('data', () => {});
    stream.on('status', resolve);
  });
}

describe('client API from worker threads', () => {
  it('takes writes at the leader and through a follower, and every node reads them linearizably', async () => {
    expect((await nodeClient(leader).call('Set', { key: 'at-leader', value: bytes('1') }))['applied']).toBe(true);
    expect((await nodeClient(follower).call('Set', { key: 'via-follower', value: bytes('2') }))['applied']).toBe(true);
    for (const id of cluster.specs.map((s) => s.id)) {
      const client = nodeClient(id);
      expect(text((await client.call('Get', { key: 'at-leader' }))['value'])).toBe('1');
      expect(text((await client.call('Get', { key: 'via-follower' }))['value'])).toBe('2');
    }
  });

  it('answers many concurrent calls on several connections in the right order per key', async () => {
    const clients = [nodeClient(leader), nodeClient(leader), nodeClient(follower)];
    await Promise.all(clients.flatMap((client, c) => Array.from({ length: 40 }, (_, i) => client.call('Set', { key: `many-${c}-${i}`, value: bytes(`${c}:${i}`) }))));
    const reads = await Promise.all(clients.flatMap((client, c) => Array.from({ length: 40 }, (_, i) => client.call('Get', { key: `many-${c}-${i}` }))));
    expect(reads.map((r) => text(r['value']))).toEqual(clients.flatMap((_, c) => Array.from({ length: 40 }, (__, i) => `${c}:${i}`)));
  });

  it('keeps errors as the services make them: status and details', async () => {
    const wrongType = await refusal(nodeClient(leader).call('LPush', { key: 'at-leader', values: [bytes('x')] }));
    expect(wrongType.code).toBe('FAILED_PRECONDITION');
    const tooLong = await refusal(nodeClient(follower).call('Get', { key: 'k'.repeat(2000) }));
    expect(tooLong).toMatchObject({ code: 'INVALID_ARGUMENT', details: expect.stringContaining('--max-key-bytes') });
  });

  it('streams Watch events from a follower', async () => {
    const client = nodeClient(follower);
    const watch = client.watch({ key: 'watched' });
    const event = new Promise<Reply>((resolve) => watch.on('data', resolve));
    watch.on('error', () => {});
    await sleep(300);
    await nodeClient(leader).call('Set', { key: 'watched', value: bytes('seen') });
    expect(await event).toMatchObject({ key: 'watched', type: 'PUT' });
    expect(text((await event)['value'])).toBe('seen');
    watch.cancel();
  });

  it(`limits Watch streams per connection to --max-watches-per-connection (${MAX_WATCHES})`, async () => {
    const client = nodeClient(leader);
    const open = Array.from({ length: MAX_WATCHES }, (_, i) => client.watch({ key: `limit-${i}` }));
    for (const stream of open) stream.on('error', () => {});
    await sleep(300);
    const refused = await streamStatus(client.watch({ key: 'limit-extra' }));
    expect(refused.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused.details).toContain(`the limit is ${MAX_WATCHES} (--max-watches-per-connection)`);
    // Another connection has its own count.
    const other = nodeClient(leader).watch({ key: 'limit-other' });
    const otherStatus = streamStatus(other);
    // A cancelled watch gives its slot back.
    (open[0] as grpc.ClientReadableStream<Reply>).cancel();
    await sleep(300);
    const again = client.watch({ key: 'limit-again' });
    const againStatus = streamStatus(again);
    const event = new Promise<Reply>((resolve) => again.on('data', resolve));
    await sleep(500);
    await nodeClient(leader).call('Set', { key: 'limit-again', value: bytes('v') });
    expect((await event)['key']).toBe('limit-again');
    for (const stream of [...open, other, again]) stream.cancel();
    expect((await againStatus).code).toBe(grpc.status.CANCELLED);
    expect((await otherStatus).code).toBe(grpc.status.CANCELLED);
  });

  it('streams a Backup whole, past the stream buffer (so through drain): the chunks add up to the snapshot size', async () => {
    for (let i = 0; i < 3; i++) await nodeClient(leader).call('Set', { key: `big-${i}`, value: Buffer.alloc(900 * 1024, i) });
    await nodeClient(leader).call('Snapshot');
    const chunks: Reply[] = [];
    const backup = nodeClient(leader).backup();
    backup.on('data', (chunk: Reply) => chunks.push(chunk));
    const status = await new Promise<grpc.StatusObject>((resolve) => backup.on('status', resolve));
    expect(status.code).toBe(grpc.status.OK);
    const received = chunks.reduce((sum, chunk) => sum + (chunk['data'] as Uint8Array).length, 0);
    expect(received).toBe(Number(chunks[0]?.['size_bytes']));
    expect(received).toBeGreaterThan(3 * 900 * 1024);
  });

  it('answers server reflection from the worker threads', async () => {
    expect(await listServices(address(follower), caOnly)).toEqual(expect.arrayContaining(['quorumkv.v1.KV', 'quorumkv.v1.Cluster', 'grpc.health.v1.Health']));
  });

  it('authenticates as without threads: no token, a read-only token, a client certificate, through a follower', async () => {
    expect(await refusal(nodeClient(leader, null).call('Get', { key: 'k' }))).toEqual({ code: 'UNAUTHENTICATED', details: MISSING_CREDENTIALS });
    expect(await refusal(nodeClient(follower, 'not-a-token').call('Get', { key: 'k' }))).toEqual({ code: 'UNAUTHENTICATED', details: 'unknown token' });
    expect(await refusal(nodeClient(follower, TOKENS.viewer).call('Set', { key: 'ro', value: bytes('x') }))).toEqual({
      code: 'PERMISSION_DENIED',
      details: 'user viewer (read-only) may not call KV/Set; needs read-write',
    });
    // The follower forwards app's write to the leader for that user.
    expect((await nodeClient(follower, TOKENS.app).call('Set', { key: 'rw', value: bytes('y') }))['applied']).toBe(true);
    const asAlice = nodeClient(follower, null, await (cluster.certs as NonNullable<TestCluster['certs']>).credentials('alice'));
    expect(text((await asAlice.call('Get', { key: 'rw' }))['value'])).toBe('y');
    expect(await refusal(asAlice.call('Set', { key: 'rw', value: bytes('z') }))).toEqual({ code: 'PERMISSION_DENIED', details: 'user alice (read-only) may not call KV/Set; needs read-write' });
    const refusedWatch = await streamStatus(nodeClient(follower, null).watch({ key: 'k' }));
    expect(refusedWatch).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: MISSING_CREDENTIALS });
  });

  it('serves a re-issued certificate after SIGHUP, and keeps the old one when the new files are broken', async () => {
    const id = follower;
    const node = cluster.processes.get(id);
    if (node === undefined) throw new Error(`no ${id}`);
    const certs = cluster.certs as NonNullable<TestCluster['certs']>;
    const ca = readFileSync(certs.caFile);
    const files = await certs.node(id);
    const { clientPort } = cluster.spec(id);
    const before = await servedSerial(clientPort, ca);

    const good = readFileSync(files.certFile);
    writeFileSync(files.certFile, 'not a certificate\n');
    node.child.kill('SIGHUP');
    await eventually('the client threads log the failed reload', 10_000, async () => (node.output().includes('client thread TLS reload failed') ? true : undefined));
    expect(await servedSerial(clientPort, ca)).toBe(before);
    writeFileSync(files.certFile, good);

    const reissued = await certs.reissueNode(id);
    const expected = new X509Certificate(readFileSync(reissued.certFile)).serialNumber.toUpperCase();
    node.child.kill('SIGHUP');
    // Both threads: a few connections land on each.
    await eventually('every client thread serves the re-issued certificate', 10_000, async () => {
      const serials = await Promise.all(Array.from({ length: 8 }, () => servedSerial(clientPort, ca)));
      return serials.every((serial) => serial === expected) ? true : undefined;
    });
    expect(node.child.exitCode).toBeNull();
    expect((await nodeClient(id).call('Set', { key: 'after-reload', value: bytes('yes') }))['applied']).toBe(true);
  });

  it('stops cleanly on SIGTERM with a watch open: the stream ends, the process exits 0', async () => {
    const id = cluster.specs.map((s) => s.id).find((n) => n !== leader && n !== follower) as string;
    const watch = nodeClient(id).watch({ key: 'until-stop' });
    const ended = streamStatus(watch);
    await sleep(300);
    const exit = await cluster.kill(id, 'SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    expect((await ended).code).not.toBe(grpc.status.OK);
    expect(cluster.processes.get(id)?.output()).not.toContain('client thread failed');
  });
});

/** The serial number of the certificate a TLS port presents to a new connection. */
function servedSerial(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      const serial = socket.getPeerCertificate().serialNumber.toUpperCase();
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', reject);
  });
}
