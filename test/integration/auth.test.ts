/**
 * Client authentication on a real three-node cluster started with
 * --auth-file: tokens, roles, calls through a follower, watches, health,
 * qkv --token and SIGHUP reload.
 *
 * --auth-file needs TLS, so the cluster runs with TLS; token clients trust
 * the CA and present no certificate, so the token is their only identity.
 * A follower forwards with its node certificate, and the leader takes the
 * user from quorumkv-forwarded-user.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuorumClient, QuorumError } from '../../src/client/index.ts';
import { loadProtos } from '../../src/proto/loader.ts';
import { MISSING_CREDENTIALS } from '../../src/server/auth.ts';
import { bytes, GrpcError, NodeClient, REPO_ROOT, sleep, TestCluster, text } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';

const run = promisify(execFile);
const TOKENS = { admin: 'admin-token-0001', app: 'app-token-0002', viewer: 'viewer-token-0003' };
const users = (tokens: typeof TOKENS) => ({
  users: [
    { name: 'root', role: 'admin', token: tokens.admin },
    { name: 'app', role: 'read-write', token: tokens.app },
    { name: 'viewer', role: 'read-only', token: tokens.viewer },
    { name: 'alice', role: 'read-only' },
  ],
});

let dir: string;
let authFile: string;
let cluster: TestCluster;
/** Trusts the cluster CA, presents no client certificate. */
let caOnly: grpc.ChannelCredentials;
let caFile: string;
let leader: string;
let follower: string;
const opened: { close(): void }[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'qkv-auth-it-'));
  authFile = join(dir, 'users.json');
  writeFileSync(authFile, JSON.stringify(users(TOKENS)));
  cluster = await TestCluster.start({ size: 3, tls: true, flags: ['--auth-file', authFile], token: TOKENS.admin });
  const certs = cluster.certs as NonNullable<TestCluster['certs']>;
  caFile = certs.caFile;
  caOnly = await certs.credentials(null);
  leader = await cluster.waitForLeader();
  follower = cluster.specs.map((s) => s.id).find((id) => id !== leader) as string;
}, 60_000);

afterAll(async () => {
  for (const client of opened.splice(0)) client.close();
  await cluster?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function address(id: string): string {
  return `127.0.0.1:${cluster.spec(id).clientPort}`;
}

/** A raw client of one node with a token (or none). */
function nodeClient(id: string, token: string | null): NodeClient {
  const client = new NodeClient(address(id), caOnly, token);
  opened.push(client);
  return client;
}

function client(id: string, token: string): QuorumClient {
  const c = new QuorumClient({ endpoints: [address(id)], token, tls: { ca: caFile }, timeoutMs: 10_000 });
  opened.push(c);
  return c;
}

async function refusal(call: Promise<unknown>): Promise<{ code: string; details: string }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof GrpcError) return { code: grpc.status[error.code], details: error.details };
    if (error instanceof QuorumError) return { code: error.code, details: error.details };
    throw error;
  }
  throw new Error('the call succeeded');
}

async function read(key: string): Promise<string | null> {
  const reply = await nodeClient(leader, TOKENS.admin).call('Get', { key });
  return reply['found'] === true ? text(reply['value']) : null;
}

describe('authentication', () => {
  it('refuses a call without a token, and one with an unknown token: UNAUTHENTICATED', async () => {
    expect(await refusal(nodeClient(leader, null).call('Get', { key: 'k' }))).toEqual({ code: 'UNAUTHENTICATED', details: MISSING_CREDENTIALS });
    expect(await refusal(nodeClient(leader, 'not-a-token').call('Set', { key: 'k', value: bytes('v') }))).toEqual({ code: 'UNAUTHENTICATED', details: 'unknown token' });
    expect(await refusal(nodeClient(follower, null).call('Status'))).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(await read('k')).toBeNull();
  });

  it('lets a read-only token read but not write: PERMISSION_DENIED, and nothing changes', async () => {
    await client(leader, TOKENS.app).set('ro-key', 'before');
    const viewer = client(leader, TOKENS.viewer);
    expect(await viewer.getString('ro-key')).toBe('before');
    expect((await viewer.status()).id).toBe(leader);
    expect(await refusal(viewer.set('ro-key', 'after'))).toEqual({ code: 'PERMISSION_DENIED', details: 'user viewer (read-only) may not call KV/Set; needs read-write' });
    expect(await refusal(viewer.txn({ success: [{ op: 'del', keys: ['ro-key'] }] }))).toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(await read('ro-key')).toBe('before');
  });

  it('keeps Clear and membership changes for admin: read-write is refused, admin may', async () => {
    const app = client(leader, TOKENS.app);
    await app.set('clear-me', 'x');
    expect(await refusal(app.clear())).toEqual({ code: 'PERMISSION_DENIED', details: 'user app (read-write) may not call KV/Clear; needs admin' });
    expect(await refusal(app.addMember({ id: 'n9', peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:2' }))).toEqual({
      code: 'PERMISSION_DENIED',
      details: 'user app (read-write) may not call Cluster/AddMember; needs admin',
    });
    expect(await refusal(app.snapshot())).toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(await read('clear-me')).toBe('x');
    expect((await client(leader, TOKENS.admin).members()).members.map((m) => m.id)).not.toContain('n9');

    const admin = client(leader, TOKENS.admin);
    expect((await admin.snapshot()).index).toBeGreaterThan(0);
    expect(await admin.clear()).toBeGreaterThan(0);
    expect(await read('clear-me')).toBeNull();
  });

  it('keeps the user\'s role through a follower: read-only cannot write there, read-write can, admin changes membership', async () => {
    const viewer = client(follower, TOKENS.viewer);
    expect(await refusal(viewer.set('via-follower', 'ro'))).toMatchObject({ code: 'PERMISSION_DENIED', details: expect.stringContaining('user viewer (read-only)') });
    expect(await read('via-follower')).toBeNull();

    // The follower forwards these to the leader on behalf of the user.
    await client(follower, TOKENS.app).set('via-follower', 'rw');
    expect(await read('via-follower')).toBe('rw');
    expect(await refusal(client(follower, TOKENS.app).removeMember(leader))).toMatchObject({ code: 'PERMISSION_DENIED' });
    const admin = client(follower, TOKENS.admin);
    const added = await admin.addMember({ id: 'n9', peerAddress: '127.0.0.1:1', clientAddress: '127.0.0.1:2' });
    expect(added.members.map((m) => m.id)).toContain('n9');
    const removed = await admin.removeMember('n9');
    expect(removed.members.map((m) => m.id)).not.toContain('n9');
  });

  it('takes the user from a client certificate: CN alice (read-only) reads, cannot write, also through a follower', async () => {
    const certs = cluster.certs as NonNullable<TestCluster['certs']>;
    const asAlice = new NodeClient(address(follower), await certs.credentials('alice'));
    const asStranger = new NodeClient(address(follower), await certs.credentials('mallory'));
    opened.push(asAlice, asStranger);
    await client(leader, TOKENS.app).set('cert-key', 'v1');
    expect(text((await asAlice.call('Get', { key: 'cert-key' }))['value'])).toBe('v1');
    expect(await refusal(asAlice.call('Set', { key: 'cert-key', value: bytes('v2') }))).toEqual({
      code: 'PERMISSION_DENIED',
      details: 'user alice (read-only) may not call KV/Set; needs read-write',
    });
    expect(await refusal(asStranger.call('Get', { key: 'cert-key' }))).toMatchObject({ code: 'UNAUTHENTICATED' });
    expect(await read('cert-key')).toBe('v1');
  });

  it('guards Watch: no token is refused, a read-only token watches', async () => {
    const refused = nodeClient(follower, null).watch({ key: 'watched' });
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      refused.on('error', () => {});
      refused.on('status', resolve);
    });
    expect(status).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: MISSING_CREDENTIALS });

    const viewer = client(follower, TOKENS.viewer);
    const controller = new AbortController();
    const events = viewer.watch('watched', { signal: controller.signal });
    const first = events.next();
    await sleep(300);
    await client(leader, TOKENS.app).set('watched', 'seen');
    const event = await first;
    controller.abort();
    expect(event.value).toMatchObject({ key: 'watched', type: 'put' });
  });

  it('leaves health open to probes without a token', async () => {
    const health = new (loadProtos().clients.health)(address(leader), caOnly);
    opened.push(health);
    const reply = await new Promise<Reply>((resolve, reject) =>
      (health as unknown as { Check(r: object, cb: (e: Error | null, r: Reply) => void): void }).Check({ service: '' }, (error, r) => (error === null ? resolve(r) : reject(error))),
    );
    expect(reply['status']).toBe('SERVING');
  });

  it('qkv sends --token or QKV_TOKEN', async () => {
    const qkv = async (args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        const { stdout, stderr } = await run(process.execPath, [join(REPO_ROOT, 'bin', 'qkv.js'), '--endpoints', address(follower), '--cacert', caFile, ...args], { env: { ...process.env, ...env } });
        return { code: 0, stdout, stderr };
      } catch (error) {
        const e = error as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    };
    expect(await qkv(['--token', TOKENS.app, 'set', 'cli-key', 'cli-value'])).toMatchObject({ code: 0, stdout: 'OK\n' });
    expect(await qkv(['get', 'cli-key'], { QKV_TOKEN: TOKENS.viewer })).toMatchObject({ code: 0, stdout: 'cli-value\n' });
    expect(await qkv(['cluster', 'members'], { QKV_TOKEN: TOKENS.viewer })).toMatchObject({ code: 0 });
    const refused = await qkv(['get', 'cli-key']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('UNAUTHENTICATED');
    const denied = await qkv(['--token', TOKENS.viewer, 'del', 'cli-key']);
    expect(denied.stderr).toContain('PERMISSION_DENIED: user viewer (read-only) may not call KV/Delete; needs read-write');
  }, 30_000);

  it('re-reads the auth file on SIGHUP: a rotated token works, the old one is refused', async () => {
    const rotated = { ...TOKENS, viewer: 'viewer-token-rotated' };
    writeFileSync(authFile, JSON.stringify(users(rotated)));
    for (const id of cluster.runningIds()) cluster.processes.get(id)?.child.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    let last: unknown = null;
    while (Date.now() < deadline) {
      try {
        await nodeClient(follower, rotated.viewer).call('Get', { key: 'k' });
        last = null;
        break;
      } catch (error) {
        last = error;
        await sleep(100);
      }
    }
    expect(last).toBeNull();
    expect(await refusal(nodeClient(follower, TOKENS.viewer).call('Get', { key: 'k' }))).toEqual({ code: 'UNAUTHENTICATED', details: 'unknown token' });

    // An invalid file is logged and ignored: the current users stay.
    writeFileSync(authFile, '{ "users": [ { "name": "x", "role": "owner", "token": "t" } ] }');
    cluster.processes.get(follower)?.child.kill('SIGHUP');
    await sleep(300);
    expect(cluster.isRunning(follower)).toBe(true);
    await nodeClient(follower, rotated.viewer).call('Get', { key: 'k' });
  }, 30_000);
});

describe('a bad auth file', () => {
  it('stops the node at start with a message naming the user and the field', async () => {
    const bad = join(dir, 'bad-users.json');
    writeFileSync(bad, JSON.stringify({ users: [{ name: 'root', role: 'admin', token: 't1' }, { name: 'ops', role: 'superuser', token: 't2' }] }));
    const started = run(process.execPath, [
      join(REPO_ROOT, 'bin', 'quorumkv.js'),
      'serve',
      '--data-dir', join(dir, 'bad-node'),
      '--client-addr', '127.0.0.1:0',
      '--peer-addr', '127.0.0.1:0',
      '--http-addr', '127.0.0.1:0',
      '--auth-file', bad,
      ...(await (cluster.certs as NonNullable<TestCluster['certs']>).serveFlags('n1')),
    ]);
    const failure = await started.then(
      () => null,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toContain(`users[1] (ops): role "superuser" is not one of read-only, read-write, admin`);
  }, 30_000);
});
