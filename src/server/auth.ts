/**
 * Client authentication on the client port: the auth file (users, roles,
 * tokens), who a call comes from (bearer token, verified client certificate,
 * or a member forwarding a user's call), and what each role may call. The
 * services wrap their handlers with guardService(); health and reflection
 * are never wrapped (probes and `grpcurl describe` need them).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { ClusterMethod, KvMethod } from '../proto/loader.ts';
import { FORWARDED_HEADER, FORWARDED_USER_HEADER } from './forwarder.ts';
import type { ForwardedFor } from './forwarder.ts';
import { statusError } from './grpc-status.ts';

export const ROLES = ['read-only', 'read-write', 'admin'] as const;
export type Role = (typeof ROLES)[number];

const RANK: Record<Role, number> = { 'read-only': 0, 'read-write': 1, admin: 2 };

/** The least role each method needs: the one table of who may call what. Typed exhaustively, so a new RPC cannot be added without a role. */
export const KV_ROLES: Readonly<Record<KvMethod, Role>> = {
  Get: 'read-only',
  Exists: 'read-only',
  Ttl: 'read-only',
  Type: 'read-only',
  Keys: 'read-only',
  Size: 'read-only',
  LIndex: 'read-only',
  LRange: 'read-only',
  LLen: 'read-only',
  HGet: 'read-only',
  HGetAll: 'read-only',
  HLen: 'read-only',
  Watch: 'read-only',
  Set: 'read-write',
  Delete: 'read-write',
  Expire: 'read-write',
  LPush: 'read-write',
  RPush: 'read-write',
  LPop: 'read-write',
  RPop: 'read-write',
  LSet: 'read-write',
  HSet: 'read-write',
  HDel: 'read-write',
  Txn: 'read-write',
  Clear: 'admin',
};

export const CLUSTER_ROLES: Readonly<Record<ClusterMethod, Role>> = {
  Status: 'read-only',
  Members: 'read-only',
  AddMember: 'admin',
  RemoveMember: 'admin',
  PromoteMember: 'admin',
  TransferLeadership: 'admin',
  Snapshot: 'admin',
  Backup: 'admin',
};

export type GuardedService = 'KV' | 'Cluster';

export function requiredRole(service: GuardedService, method: string): Role | undefined {
  const table: Readonly<Record<string, Role>> = service === 'KV' ? KV_ROLES : CLUSTER_ROLES;
  return table[method];
}

export function mayCall(role: Role, needed: Role): boolean {
  return RANK[role] >= RANK[needed];
}

export interface AuthUser {
  readonly name: string;
  readonly role: Role;
  /** null: the user authenticates with a client certificate only. */
  readonly token: string | null;
}

export class AuthFileError extends Error {
  readonly code = 'AUTH_FILE_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuthFileError';
  }
}

/** A user name is a certificate CN and a metadata value: keep it to plain characters. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/;
/** Tokens travel in an HTTP/2 header: visible ASCII, no spaces. */
const TOKEN_PATTERN = /^[\x21-\x7e]+$/;
const USER_FIELDS = new Set(['name', 'role', 'token']);

/** Validates the auth file's JSON; errors name the user (by position and name) and the field, never a token. */
export function parseAuthFile(text: string, source: string): AuthUser[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // Not the parser's message itself: V8 quotes the text around the error, which may be a token.
    const position = /at position (\d+)/.exec((error as Error).message);
    const line = position === null ? '' : ` (line ${text.slice(0, Number(position[1])).split('\n').length})`;
    throw new AuthFileError(`auth file ${source} is not JSON${line}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new AuthFileError(`auth file ${source} must hold an object { "users": [...] }`);
  for (const key of Object.keys(parsed)) if (key !== 'users') throw new AuthFileError(`auth file ${source}: unknown setting '${key}' (only "users")`);
  const list = (parsed as { users?: unknown }).users;
  if (!Array.isArray(list)) throw new AuthFileError(`auth file ${source}: "users" must be a list`);
  if (list.length === 0) throw new AuthFileError(`auth file ${source}: "users" is empty, so nobody could call anything`);

  const users: AuthUser[] = [];
  const names = new Map<string, number>();
  const tokens = new Map<string, string>();
  list.forEach((entry: unknown, i) => {
    const where = `auth file ${source}: users[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new AuthFileError(`${where} must be an object { "name", "role", "token" }`);
    const user = entry as Record<string, unknown>;
    const { name, role, token } = user;
    if ((name === undefined || name === '') && (token === undefined || token === '')) {
      throw new AuthFileError(`${where} has neither a token nor a name (a user without a token signs in with a client certificate whose CN is its name)`);
    }
    if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
      throw new AuthFileError(`${where}: name ${JSON.stringify(name)} must be 1-128 letters, digits, '.', '_', '@' or '-', starting with a letter or digit`);
    }
    const named = `${where} (${name})`;
    for (const key of Object.keys(user)) if (!USER_FIELDS.has(key)) throw new AuthFileError(`${named}: unknown field '${key}' (fields: name, role, token)`);
    if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) {
      throw new AuthFileError(`${named}: role ${JSON.stringify(role)} is not one of ${ROLES.join(', ')}`);
    }
    const first = names.get(name);
    if (first !== undefined) throw new AuthFileError(`${named}: the name is already used by users[${first}]`);
    names.set(name, i);
    let checkedToken: string | null = null;
    if (token !== undefined) {
      if (typeof token !== 'string') throw new AuthFileError(`${named}: token must be a string`);
      if (token === '') throw new AuthFileError(`${named}: token is empty (leave it out for a certificate-only user)`);
      if (!TOKEN_PATTERN.test(token)) throw new AuthFileError(`${named}: token must be visible ASCII characters without spaces`);
      const owner = tokens.get(token);
      if (owner !== undefined) throw new AuthFileError(`${named}: the token is the same as user ${owner}'s; every user needs their own`);
      tokens.set(token, name);
      checkedToken = token;
    }
    users.push({ name, role: role as Role, token: checkedToken });
  });
  return users;
}

export function loadAuthFile(path: string): AuthUser[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new AuthFileError(`cannot read auth file ${path}: ${(error as Error).message}`, { cause: error });
  }
  return parseAuthFile(text, path);
}

export const MISSING_CREDENTIALS = "missing credentials: send 'authorization: Bearer <token>' or a client certificate";

/** What a call presents: its metadata and, when TLS verified one, the peer's certificate. */
export interface CallCredentials {
  readonly metadata: grpc.Metadata;
  readonly certificate: PeerCertificate | null;
}

/**
 * Tokens are looked up by their SHA-256: the lookup's timing can tell an
 * attacker only about digests, which say nothing about a token's characters.
 */
const digest = (token: string): string => createHash('sha256').update(token).digest('base64');

/**
 * The users of one auth file, and the rules that find the user behind a
 * call. Reloadable: reload() swaps in the file's new contents, or keeps the
 * old ones when the new file is unreadable or invalid.
 */
export class Authenticator {
  private byName = new Map<string, AuthUser>();
  private byToken = new Map<string, AuthUser>();

  constructor(
    private readonly path: string,
    /** Whether an id is a member (voter or learner) of the current configuration. */
    private readonly isMember: (id: string) => boolean,
  ) {
    this.install(loadAuthFile(path));
  }

  get userCount(): number {
    return this.byName.size;
  }

  /** Re-reads the auth file (SIGHUP): the new users, or an error and the old users kept. */
  reload(): { users: number } {
    this.install(loadAuthFile(this.path));
    return { users: this.byName.size };
  }

  /** The user behind a call, or UNAUTHENTICATED. */
  authenticate(call: CallCredentials): AuthUser {
    const member = this.verifiedMember(call.certificate);
    const forwardedFor = member === null ? null : this.forwardedUser(call.metadata, member);
    if (forwardedFor !== null) return forwardedFor;
    const authorization = call.metadata.get('authorization');
    if (authorization.length > 0) return this.userOfToken(authorization);
    const certificate = call.certificate;
    if (certificate !== null && hasUnit(certificate, 'client')) {
      const name = commonName(certificate);
      const user = name === null ? undefined : this.byName.get(name);
      if (user === undefined) throw unauthenticated(`client certificate CN '${name ?? ''}' names no user of the auth file`);
      return user;
    }
    if (member !== null) return memberIdentity(member);
    throw unauthenticated(MISSING_CREDENTIALS);
  }

  /** UNAUTHENTICATED or PERMISSION_DENIED unless the call's user may call `service/method`; returns the user. */
  check(call: CallCredentials, service: GuardedService, method: string): AuthUser {
    const user = this.authenticate(call);
    const needed = requiredRole(service, method) ?? 'admin';
    if (!mayCall(user.role, needed)) {
      throw statusError(grpc.status.PERMISSION_DENIED, `user ${user.name} (${user.role}) may not call ${service}/${method}; needs ${needed}`);
    }
    return user;
  }

  /**
   * A follower has authorized the call already and names the user: believed
   * only from a verified node certificate of a current member. Anyone else's
   * call is authenticated on its own credentials.
   */
  private forwardedUser(metadata: grpc.Metadata, memberId: string): AuthUser | null {
    if (metadata.get(FORWARDED_HEADER).length === 0) return null;
    const [name] = metadata.get(FORWARDED_USER_HEADER);
    if (typeof name !== 'string') return null;
    if (name.startsWith(MEMBER_PREFIX) && this.isMember(name.slice(MEMBER_PREFIX.length))) return memberIdentity(name.slice(MEMBER_PREFIX.length));
    const user = this.byName.get(name);
    if (user === undefined) throw unauthenticated(`member ${memberId} forwarded a call of user '${name}', who is not in this node's auth file`);
    return user;
  }

  /** The member id of a verified node certificate (OU=node) whose CN is a current member; null otherwise. */
  private verifiedMember(certificate: PeerCertificate | null): string | null {
    if (certificate === null || !hasUnit(certificate, 'node')) return null;
    const id = commonName(certificate);
    return id !== null && this.isMember(id) ? id : null;
  }

  private userOfToken(values: grpc.MetadataValue[]): AuthUser {
    const [value] = values;
    const match = typeof value === 'string' && values.length === 1 ? /^Bearer +(\S+) *$/i.exec(value) : null;
    if (match === null) throw unauthenticated("malformed authorization header: expected one 'authorization: Bearer <token>'");
    const found = this.byToken.get(digest(match[1] as string));
    if (found === undefined) throw unauthenticated('unknown token');
    return found;
  }

  private install(users: readonly AuthUser[]): void {
    this.byName = new Map(users.map((u) => [u.name, u]));
    this.byToken = new Map(users.flatMap((user): [string, AuthUser][] => (user.token === null ? [] : [[digest(user.token), user]])));
  }
}

/** A user name never has a space, so a member's identity cannot be mistaken for a user of the auth file. */
const MEMBER_PREFIX = 'member ';

/**
 * A member calling with its own node certificate (the --join cluster-id
 * lookup): read-only, as it holds a replica of the data anyway.
 */
function memberIdentity(id: string): AuthUser {
  return { name: `${MEMBER_PREFIX}${id}`, role: 'read-only', token: null };
}

function unauthenticated(details: string) {
  return statusError(grpc.status.UNAUTHENTICATED, details);
}

function subjectField(certificate: PeerCertificate, field: 'CN' | 'OU'): string[] {
  const value = (certificate.subject as unknown as Record<string, string | string[] | undefined> | undefined)?.[field];
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

function hasUnit(certificate: PeerCertificate, unit: 'client' | 'node'): boolean {
  return subjectField(certificate, 'OU').includes(unit);
}

function commonName(certificate: PeerCertificate): string | null {
  const names = subjectField(certificate, 'CN');
  return names.length === 1 ? (names[0] as string) : null;
}

// ---- Wiring into the services ------------------------------------------------

/** The user each authenticated call came from, for the forwarder to pass on. */
const callUsers = new WeakMap<object, AuthUser>();

/** The user guardService() authenticated for this call; null when authentication is off. */
export function callUser(call: object): AuthUser | null {
  return callUsers.get(call) ?? null;
}

/** The parts of a grpc-js server call (unary or streaming) that carry credentials. */
export interface ServerCallLike {
  readonly metadata: grpc.Metadata;
  getAuthContext(): { readonly sslPeerCertificate?: PeerCertificate | undefined };
}

/** Who a follower forwards this call for: its authenticated user and the caller's authorization header; null when authentication is off. */
export function forwardedFor(call: ServerCallLike): ForwardedFor | null {
  const user = callUser(call);
  if (user === null) return null;
  const [authorization] = call.metadata.get('authorization');
  return { user: user.name, authorization: typeof authorization === 'string' ? authorization : null };
}

/** What the call presents: the metadata, and the peer certificate grpc-js verified against the CA (it hides unverified ones). */
export function callCredentials(call: ServerCallLike): CallCredentials {
  return { metadata: call.metadata, certificate: call.getAuthContext().sslPeerCertificate ?? null };
}


/**
 * Wraps every handler of a service so that it runs only for a user whose
 * role may call it; the others get UNAUTHENTICATED or PERMISSION_DENIED
 * before the handler sees the call. With no authenticator, the handlers are
 * returned as they are.
 */
export function guardService<T extends Record<string, grpc.UntypedHandleCall>>(
  service: GuardedService,
  definition: grpc.ServiceDefinition,
  handlers: T,
  auth: Authenticator | null,
): T {
  if (auth === null) return handlers;
  const guarded: Record<string, grpc.UntypedHandleCall> = {};
  for (const [method, handler] of Object.entries(handlers)) {
    const streaming = definition[method]?.responseStream === true;
    guarded[method] = ((call: ServerCallLike, callback?: grpc.sendUnaryData<unknown>) => {
      try {
        callUsers.set(call, auth.check(callCredentials(call), service, method));
      } catch (error) {
        const status = error as grpc.ServerErrorResponse;
        if (streaming) (call as grpc.ServerWritableStream<unknown, unknown>).emit('error', status);
        else callback?.(status);
        return;
      }
      (handler as (call: ServerCallLike, callback?: grpc.sendUnaryData<unknown>) => void)(call, callback);
    }) as grpc.UntypedHandleCall;
  }
  return guarded as T;
}
