/**
 * The auth module on its own: the auth file's validation, the role table,
 * and who a call comes from (token, client certificate, a member forwarding
 * a user's call). Certificates here are the subject grpc-js hands over after
 * it verified one against the CA.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { Authenticator, AuthFileError, CLUSTER_ROLES, KV_ROLES, MISSING_CREDENTIALS, parseAuthFile } from '../../../src/server/auth.ts';
import type { CallCredentials } from '../../../src/server/auth.ts';
import { CLUSTER_METHODS, KV_METHODS } from '../../../src/proto/loader.ts';

const USERS = {
  users: [
    { name: 'root', role: 'admin', token: 'root-token-1' },
    { name: 'app', role: 'read-write', token: 'app-token-22' },
    { name: 'viewer', role: 'read-only', token: 'viewer-token-333' },
    { name: 'alice', role: 'read-only' },
  ],
};

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function authFile(contents: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'qkv-auth-'));
  dirs.push(dir);
  const path = join(dir, 'users.json');
  writeFileSync(path, typeof contents === 'string' ? contents : JSON.stringify(contents));
  return path;
}

function parse(contents: unknown): unknown {
  return parseAuthFile(JSON.stringify(contents), 'users.json');
}

function certificate(ou: string, cn: string): PeerCertificate {
  return { subject: { OU: ou, CN: cn } } as unknown as PeerCertificate;
}

function call(headers: Record<string, string>, cert: PeerCertificate | null = null): CallCredentials {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(headers)) metadata.set(key, value);
  return { metadata, certificate: cert };
}

function statusOf(run: () => unknown): { code: number; details: string } {
  try {
    run();
  } catch (error) {
    return error as { code: number; details: string };
  }
  throw new Error('expected a status error');
}

describe('parseAuthFile', () => {
  it('reads users with roles, tokens, and certificate-only users', () => {
    expect(parse(USERS)).toEqual([
      { name: 'root', role: 'admin', token: 'root-token-1' },
      { name: 'app', role: 'read-write', token: 'app-token-22' },
      { name: 'viewer', role: 'read-only', token: 'viewer-token-333' },
      { name: 'alice', role: 'read-only', token: null },
    ]);
  });

  it.each([
    ['an unknown role', { users: [{ name: 'bob', role: 'superuser', token: 't' }] }, /users\[0\] \(bob\): role "superuser" is not one of read-only, read-write, admin/],
    ['no role', { users: [{ name: 'bob', token: 't' }] }, /users\[0\] \(bob\): role undefined is not one of/],
    ['a duplicate name', { users: [{ name: 'bob', role: 'admin', token: 'a' }, { name: 'bob', role: 'admin', token: 'b' }] }, /users\[1\] \(bob\): the name is already used by users\[0\]/],
    ['a duplicate token', { users: [{ name: 'bob', role: 'admin', token: 'same' }, { name: 'eve', role: 'read-only', token: 'same' }] }, /users\[1\] \(eve\): the token is the same as user bob's/],
    ['an empty token', { users: [{ name: 'bob', role: 'admin', token: '' }] }, /users\[0\] \(bob\): token is empty/],
    ['a token with a space', { users: [{ name: 'bob', role: 'admin', token: 'a b' }] }, /users\[0\] \(bob\): token must be visible ASCII/],
    ['neither token nor name', { users: [{ role: 'admin' }] }, /users\[0\] has neither a token nor a name/],
    ['a name unusable as a certificate CN', { users: [{ name: 'bob smith', role: 'admin' }] }, /users\[0\]: name "bob smith" must be 1-128 letters/],
    ['a token without a name', { users: [{ role: 'admin', token: 'tok' }] }, /users\[0\]: name undefined must be/],
    ['an unknown field', { users: [{ name: 'bob', role: 'admin', tokens: 'x' }] }, /users\[0\] \(bob\): unknown field 'tokens'/],
    ['no users', { users: [] }, /"users" is empty/],
    ['users not a list', { users: {} }, /"users" must be a list/],
    ['an unknown setting', { users: [{ name: 'bob', role: 'admin', token: 't' }], roles: [] }, /unknown setting 'roles'/],
  ])('refuses %s, naming the user and the field', (_what, contents, message) => {
    expect(() => parse(contents)).toThrow(AuthFileError);
    expect(() => parse(contents)).toThrow(message);
  });

  it('never puts a token in an error message', () => {
    const contents = { users: [{ name: 'bob', role: 'admin', token: 'sekrit-1' }, { name: 'eve', role: 'nope', token: 'sekrit-2' }] };
    expect(() => parse(contents)).toThrow(/eve/);
    try {
      parse({ users: [{ name: 'bob', role: 'admin', token: 'sekrit-1' }, { name: 'eve', role: 'admin', token: 'sekrit-1' }] });
    } catch (error) {
      expect((error as Error).message).not.toContain('sekrit');
    }
  });

  it('refuses text that is not JSON, without quoting it (it may hold a token)', () => {
    expect(() => parseAuthFile('{ users: ', 'users.json')).toThrow('auth file users.json is not JSON (line 1)');
    expect(() => parseAuthFile('{\n "users": [\n  { "token": "a" "b" }\n] }', 'users.json')).toThrow('auth file users.json is not JSON (line 3)');
    expect(() => parseAuthFile('{ "users": [ { "token": sekrit } ] }', 'users.json')).toThrow(/^auth file users.json is not JSON$/);
  });
});

describe('the role table', () => {
  it('gives every KV and Cluster method a role', () => {
    expect(Object.keys(KV_ROLES).sort()).toEqual([...KV_METHODS].sort());
    expect(Object.keys(CLUSTER_ROLES).sort()).toEqual([...CLUSTER_METHODS].sort());
  });

  it('lets read-only read and watch, read-write write and Txn, and keeps Clear and cluster changes for admin', () => {
    const byRole = (table: Readonly<Record<string, string>>, role: string) => Object.keys(table).filter((m) => table[m] === role).sort();
    expect(byRole(KV_ROLES, 'read-only')).toEqual(['Exists', 'Get', 'HGet', 'HGetAll', 'HLen', 'Keys', 'LIndex', 'LLen', 'LRange', 'Size', 'Ttl', 'Type', 'Watch']);
    expect(byRole(KV_ROLES, 'read-write')).toEqual(['Delete', 'Expire', 'HDel', 'HSet', 'LPop', 'LPush', 'LSet', 'RPop', 'RPush', 'Set', 'Txn']);
    expect(byRole(KV_ROLES, 'admin')).toEqual(['Clear']);
    expect(byRole(CLUSTER_ROLES, 'read-only')).toEqual(['Members', 'Status']);
    expect(byRole(CLUSTER_ROLES, 'admin')).toEqual(['AddMember', 'Backup', 'PromoteMember', 'RemoveMember', 'Snapshot', 'TransferLeadership']);
  });
});

describe('Authenticator', () => {
  const members = new Set(['n1', 'n2', 'n3']);
  const open = (contents: unknown = USERS) => new Authenticator(authFile(contents), (id) => members.has(id));

  it('finds the user of a bearer token', () => {
    const auth = open();
    expect(auth.authenticate(call({ authorization: 'Bearer app-token-22' })).name).toBe('app');
    expect(auth.authenticate(call({ authorization: 'bearer viewer-token-333' })).name).toBe('viewer');
  });

  it('refuses a call without credentials, with an unknown token, or with a malformed header: UNAUTHENTICATED', () => {
    const auth = open();
    expect(statusOf(() => auth.authenticate(call({})))).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: MISSING_CREDENTIALS });
    expect(statusOf(() => auth.authenticate(call({ authorization: 'Bearer app-token-2' })))).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: 'unknown token' });
    expect(statusOf(() => auth.authenticate(call({ authorization: 'Basic YTpi' })))).toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: expect.stringMatching(/malformed authorization header/),
    });
  });

  it('finds the user of a verified client certificate by its CN', () => {
    const auth = open();
    expect(auth.authenticate(call({}, certificate('client', 'alice'))).name).toBe('alice');
    expect(statusOf(() => auth.authenticate(call({}, certificate('client', 'mallory'))))).toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: "client certificate CN 'mallory' names no user of the auth file",
    });
  });

  it('lets a current member read with its own node certificate (the --join cluster-id lookup), and nobody else', () => {
    const auth = open();
    expect(auth.check(call({}, certificate('node', 'n1')), 'Cluster', 'Status')).toMatchObject({ name: 'member n1', role: 'read-only' });
    expect(statusOf(() => auth.check(call({}, certificate('node', 'n1')), 'KV', 'Set'))).toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      details: 'user member n1 (read-only) may not call KV/Set; needs read-write',
    });
    expect(statusOf(() => auth.authenticate(call({}, certificate('node', 'n7'))))).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: MISSING_CREDENTIALS });
    // A member's identity forwarded by another member stays a member's, read-only.
    expect(auth.authenticate(call({ 'quorumkv-forwarded': '1', 'quorumkv-forwarded-user': 'member n1' }, certificate('node', 'n2'))).role).toBe('read-only');
    expect(statusOf(() => auth.authenticate(call({ 'quorumkv-forwarded': '1', 'quorumkv-forwarded-user': 'member n7' }, certificate('node', 'n2'))))).toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
    });
  });

  it('answers PERMISSION_DENIED naming the user, the method and the role it needs', () => {
    const auth = open();
    const viewer = call({ authorization: 'Bearer viewer-token-333' });
    const app = call({ authorization: 'Bearer app-token-22' });
    const root = call({ authorization: 'Bearer root-token-1' });
    expect(auth.check(viewer, 'KV', 'Get').name).toBe('viewer');
    expect(statusOf(() => auth.check(viewer, 'KV', 'Set'))).toEqual(
      expect.objectContaining({ code: grpc.status.PERMISSION_DENIED, details: 'user viewer (read-only) may not call KV/Set; needs read-write' }),
    );
    expect(auth.check(app, 'KV', 'Txn').name).toBe('app');
    expect(statusOf(() => auth.check(app, 'KV', 'Clear'))).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: 'user app (read-write) may not call KV/Clear; needs admin' });
    expect(statusOf(() => auth.check(app, 'Cluster', 'AddMember'))).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    expect(auth.check(app, 'Cluster', 'Status').name).toBe('app');
    expect(auth.check(root, 'KV', 'Clear').name).toBe('root');
    expect(auth.check(root, 'Cluster', 'RemoveMember').name).toBe('root');
  });

  it('believes the forwarded user only from a current member with a verified node certificate', () => {
    const auth = open();
    const forwarded = { 'quorumkv-forwarded': '1', 'quorumkv-forwarded-user': 'viewer' };
    expect(auth.authenticate(call(forwarded, certificate('node', 'n2'))).name).toBe('viewer');
    // The forwarded user keeps their own role on the leader.
    expect(statusOf(() => auth.check(call(forwarded, certificate('node', 'n2')), 'KV', 'Set'))).toMatchObject({ code: grpc.status.PERMISSION_DENIED });
    // No certificate, a client certificate, or a node that is not a member: the header is ignored and the call's own credentials count.
    expect(statusOf(() => auth.authenticate(call(forwarded)))).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: MISSING_CREDENTIALS });
    expect(auth.authenticate(call({ ...forwarded, 'quorumkv-forwarded-user': 'root' }, certificate('client', 'alice'))).name).toBe('alice');
    expect(auth.authenticate(call({ ...forwarded, 'quorumkv-forwarded-user': 'root', authorization: 'Bearer viewer-token-333' }, certificate('node', 'n9'))).name).toBe('viewer');
    // A member forwarding a user this node does not know.
    expect(statusOf(() => auth.authenticate(call({ ...forwarded, 'quorumkv-forwarded-user': 'ghost' }, certificate('node', 'n3'))))).toMatchObject({
      code: grpc.status.UNAUTHENTICATED,
      details: "member n3 forwarded a call of user 'ghost', who is not in this node's auth file",
    });
  });

  it('reloads the file, and keeps the old users when the new file is invalid', () => {
    const path = authFile(USERS);
    const auth = new Authenticator(path, () => false);
    writeFileSync(path, JSON.stringify({ users: [{ name: 'app', role: 'admin', token: 'rotated-token' }] }));
    expect(auth.reload()).toEqual({ users: 1 });
    expect(statusOf(() => auth.authenticate(call({ authorization: 'Bearer app-token-22' })))).toMatchObject({ details: 'unknown token' });
    expect(auth.check(call({ authorization: 'Bearer rotated-token' }), 'KV', 'Clear').name).toBe('app');
    writeFileSync(path, JSON.stringify({ users: [{ name: 'app', role: 'owner', token: 'x' }] }));
    expect(() => auth.reload()).toThrow(/role/);
    expect(auth.authenticate(call({ authorization: 'Bearer rotated-token' })).role).toBe('admin');
  });

  it('refuses to start on a missing or invalid file, naming it', () => {
    expect(() => new Authenticator('/nonexistent/users.json', () => false)).toThrow(/cannot read auth file \/nonexistent\/users.json/);
    expect(() => open({ users: [{ name: 'x', role: 'root', token: 't' }] })).toThrow(AuthFileError);
  });
});
