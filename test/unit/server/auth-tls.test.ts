/**
 * The auth guard behind real TLS: certificates made with openssl for a test
 * CA, a gRPC server on 127.0.0.1 that requires and verifies client
 * certificates, and handlers wrapped with guardService(). Proves the
 * certificate paths of the contract: a client certificate's CN is its user,
 * and the forwarded user is believed only from a member's node certificate.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProtos } from '../../../src/proto/loader.ts';
import { Authenticator, callUser, guardService, MISSING_CREDENTIALS } from '../../../src/server/auth.ts';

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

let dir: string;
let server: grpc.Server;
let address: string;
const clients: grpc.Client[] = [];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A key and a certificate signed by the test CA, with `subject` and optional SANs. */
function issue(name: string, subject: string, altNames?: string): { key: Buffer; cert: Buffer } {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, altNames === undefined ? 'basicConstraints=CA:FALSE\n' : `basicConstraints=CA:FALSE\nsubjectAltName=${altNames}\n`);
  openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', ext);
  return { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.crt`)) };
}

let ca: Buffer;
let certs: Record<'alice' | 'mallory' | 'n2' | 'n9', { key: Buffer; cert: Buffer }>;

beforeAll(async () => {
  if (!hasOpenssl) return;
  dir = mkdtempSync(join(tmpdir(), 'qkv-auth-tls-'));
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=quorumkv test CA');
  ca = readFileSync(join(dir, 'ca.crt'));
  const serverCert = issue('server', '/OU=node/CN=n1', 'DNS:localhost,IP:127.0.0.1');
  certs = {
    alice: issue('alice', '/OU=client/CN=alice'),
    mallory: issue('mallory', '/OU=client/CN=mallory'),
    n2: issue('n2', '/OU=node/CN=n2'),
    n9: issue('n9', '/OU=node/CN=n9'),
  };
  const authFile = join(dir, 'users.json');
  writeFileSync(
    authFile,
    JSON.stringify({
      users: [
        { name: 'alice', role: 'read-only' },
        { name: 'app', role: 'read-write', token: 'app-token' },
      ],
    }),
  );
  const members = new Set(['n1', 'n2', 'n3']);
  const auth = new Authenticator(authFile, (id) => members.has(id));
  const protos = loadProtos();
  // Each handler answers with the user the guard found, so the test sees who the call counted as.
  const whoAmI = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
    callback(null, { found: true, value: Buffer.from(callUser(call)?.name ?? '(none)') });
  server = new grpc.Server();
  const handlers = {
    Get: whoAmI as grpc.UntypedHandleCall,
    Set: ((call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, { applied: callUser(call) !== null })) as grpc.UntypedHandleCall,
    Watch: ((call: grpc.ServerWritableStream<unknown, unknown>) => call.end()) as grpc.UntypedHandleCall,
  };
  server.addService(protos.kv, guardService('KV', protos.kv, handlers, auth));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createSsl(ca, [{ private_key: serverCert.key, cert_chain: serverCert.cert }], true), (error, p) =>
      error === null ? resolve(p) : reject(error),
    ),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  for (const client of clients.splice(0)) client.close();
  if (server !== undefined) await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function clientAs(who: keyof typeof certs): grpc.Client {
  const { key, cert } = certs[who];
  const client = new (loadProtos().clients.kv)(address, grpc.credentials.createSsl(ca, key, cert), {
    'grpc.use_local_subchannel_pool': 1,
    // The server certificate names localhost and 127.0.0.1; TLS SNI cannot carry an IP address.
    'grpc.ssl_target_name_override': 'localhost',
  });
  clients.push(client);
  return client;
}

function call(client: grpc.Client, method: 'Get' | 'Set', headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
  const fn = (client as unknown as Record<string, (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r: Record<string, unknown>) => void) => void>)[method];
  return new Promise((resolve, reject) => fn?.call(client, { key: 'k', value: Buffer.from('v') }, metadata, (error, reply) => (error === null ? resolve(reply) : reject(error))));
}

async function refusal(pending: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await pending;
  } catch (error) {
    const { code, details } = error as grpc.ServiceError;
    return { code, details };
  }
  throw new Error('the call succeeded');
}

const name = (reply: Record<string, unknown>): string => Buffer.from(reply['value'] as Uint8Array).toString();
const FORWARDED = { 'quorumkv-forwarded': '1' };

describe.skipIf(!hasOpenssl)('auth over TLS', () => {
  it('takes a client certificate\'s CN as the user, with that user\'s role', async () => {
    const alice = clientAs('alice');
    expect(name(await call(alice, 'Get'))).toBe('alice');
    expect(await refusal(call(alice, 'Set'))).toEqual({ code: grpc.status.PERMISSION_DENIED, details: 'user alice (read-only) may not call KV/Set; needs read-write' });
    expect(await refusal(call(clientAs('mallory'), 'Get'))).toEqual({ code: grpc.status.UNAUTHENTICATED, details: "client certificate CN 'mallory' names no user of the auth file" });
    // A token beside the certificate is the stronger statement: it wins.
    expect((await call(alice, 'Set', { authorization: 'Bearer app-token' }))['applied']).toBe(true);
  });

  it('believes quorumkv-forwarded-user only from a current member\'s node certificate', async () => {
    const n2 = clientAs('n2');
    expect(name(await call(n2, 'Get', { ...FORWARDED, 'quorumkv-forwarded-user': 'alice' }))).toBe('alice');
    expect((await call(n2, 'Set', { ...FORWARDED, 'quorumkv-forwarded-user': 'app' }))['applied']).toBe(true);
    expect(await refusal(call(n2, 'Set', { ...FORWARDED, 'quorumkv-forwarded-user': 'alice' }))).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    // n9 has a valid node certificate but is not a member; alice's client certificate is no node's.
    expect(await refusal(call(clientAs('n9'), 'Get', { ...FORWARDED, 'quorumkv-forwarded-user': 'app' }))).toEqual({ code: grpc.status.UNAUTHENTICATED, details: MISSING_CREDENTIALS });
    expect(name(await call(clientAs('alice'), 'Get', { ...FORWARDED, 'quorumkv-forwarded-user': 'app' }))).toBe('alice');
    // On its own, a member's node certificate may read (the --join lookup asks Status), not write.
    expect(name(await call(n2, 'Get'))).toBe('member n2');
    expect(await refusal(call(n2, 'Set'))).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
  });

  it('guards server streams too', async () => {
    const stream = (clientAs('n9') as unknown as { Watch(r: object): grpc.ClientReadableStream<unknown> }).Watch({ key: 'k' });
    stream.on('error', () => {});
    const status = await new Promise<grpc.StatusObject>((resolve) => stream.on('status', resolve));
    expect(status).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: MISSING_CREDENTIALS });
  });
});
