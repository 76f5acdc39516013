/**
 * Flags, environment and an optional JSON file, merged into one validated
 * Config. Precedence: flag > environment (QUORUMKV_<FLAG>) > file > default.
 */
import { readFileSync } from 'node:fs';

export type EvictionPolicy = 'lru' | 'noeviction';
export type LogFormat = 'json' | 'pretty';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** PEM files for TLS: this node's certificate and key, and the CA every member and client certificate is checked against. */
export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

export interface Config {
  readonly id: string;
  readonly dataDir: string;
  readonly clientAddr: string;
  readonly peerAddr: string;
  readonly httpAddr: string;
  /** What other nodes and clients dial; differs from the listen address behind NAT or in containers. */
  readonly advertiseClientAddr: string;
  readonly advertisePeerAddr: string;
  /** Bootstrap members: id -> peer address; the same on every node. */
  readonly initialCluster: ReadonlyMap<string, string>;
  /** A name shared by one cluster's members: a data dir of another cluster is refused. */
  readonly clusterName: string;
  /** Client address of a running member, to start as a new member (after AddMember). */
  readonly join: string | null;
  /** Bytes of keys and values the state may hold; 0 means no budget. */
  readonly maxMemoryBytes: number;
  readonly eviction: EvictionPolicy;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly heartbeatMs: number;
  readonly electionMs: number;
  readonly snapshotEntries: number;
  readonly snapshotBytes: number;
  readonly snapshotKeepEntries: number;
  readonly maxKeyBytes: number;
  readonly maxValueBytes: number;
  readonly maxRequestBytes: number;
  readonly maxInflightAppends: number;
  readonly requestTimeoutMs: number;
  /** TLS on the client port and mutual TLS on the peer port; null: plaintext. */
  readonly tls: TlsFiles | null;
  /** With TLS: client certificates are required on the client port, not only checked when offered. */
  readonly clientCertAuth: boolean;
  /** Users, roles and tokens (JSON); null: no authentication. See src/server/auth.ts. */
  readonly authFile: string | null;
  /** HTTP/2 streams (calls) one client connection may have open at once. */
  readonly maxStreamsPerConnection: number;
  /** Watch streams one client connection may have open at once. */
  readonly maxWatchesPerConnection: number;
  /** Most keys, list elements or hash fields one answer may hold. */
  readonly maxKeysPerCall: number;
  /** Worker threads serving the client API (gRPC, HTTP/2, TLS); 0: the main thread serves it. */
  readonly clientThreads: number;
  /** TEST ONLY (chaos suite): a faults file the node watches; null, the default, in production. */
  readonly testFaultsFile: string | null;
}

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Kind = 'string' | 'address' | 'bytes' | 'count' | 'ms' | 'enum' | 'boolean';

interface FlagSpec {
  readonly flag: string;
  readonly kind: Kind;
  readonly help: string;
  readonly values?: readonly string[];
}

/** More threads than cores only add contention; this bounds a typo, not a machine. */
export const MAX_CLIENT_THREADS = 64;

/** Every `serve` flag; the environment variable is QUORUMKV_ + the flag in upper snake case. */
export const FLAGS: readonly FlagSpec[] = [
  { flag: 'id', kind: 'string', help: 'member id, e.g. n1 (default n1)' },
  { flag: 'data-dir', kind: 'string', help: 'SQLite database and snapshots (default ./data)' },
  { flag: 'client-addr', kind: 'address', help: 'KV, Cluster, health and reflection (default 127.0.0.1:7001)' },
  { flag: 'peer-addr', kind: 'address', help: 'Raft peer API (default 127.0.0.1:7101)' },
  { flag: 'http-addr', kind: 'address', help: '/metrics, /healthz and the status page (default 127.0.0.1:7201)' },
  { flag: 'advertise-client-addr', kind: 'address', help: 'client address others dial, when it differs' },
  { flag: 'advertise-peer-addr', kind: 'address', help: 'peer address others dial, when it differs' },
  { flag: 'initial-cluster', kind: 'string', help: 'bootstrap members: n1=HOST:PEERPORT,n2=...; the same on every node' },
  { flag: 'cluster-name', kind: 'string', help: 'shared by one cluster\'s members (default quorumkv)' },
  { flag: 'join', kind: 'address', help: 'client address of a running member: start as a new member' },
  { flag: 'max-memory', kind: 'bytes', help: 'memory budget for keys and values, e.g. 256mb (default 0: none)' },
  { flag: 'eviction', kind: 'enum', values: ['lru', 'noeviction'], help: 'what a full budget does (default lru)' },
  { flag: 'log-level', kind: 'enum', values: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], help: '(default info)' },
  { flag: 'log-format', kind: 'enum', values: ['json', 'pretty'], help: '(default json)' },
  { flag: 'heartbeat-ms', kind: 'ms', help: 'leader heartbeat interval, one Raft tick (default 100)' },
  { flag: 'election-ms', kind: 'ms', help: 'election timeout, randomized up to 2x (default 1000)' },
  { flag: 'snapshot-entries', kind: 'count', help: 'applied entries between snapshots (default 10000)' },
  { flag: 'snapshot-bytes', kind: 'bytes', help: 'applied log bytes between snapshots, if reached before --snapshot-entries (default 64mb)' },
  { flag: 'snapshot-keep-entries', kind: 'count', help: 'log entries kept behind a snapshot for slow followers (default 5000)' },
  { flag: 'max-key-bytes', kind: 'bytes', help: '(default 1kb)' },
  { flag: 'max-value-bytes', kind: 'bytes', help: '(default 1mb)' },
  { flag: 'max-request-bytes', kind: 'bytes', help: 'largest gRPC message accepted (default 4mb)' },
  { flag: 'max-inflight-appends', kind: 'count', help: 'AppendEntries in flight per follower (default 256)' },
  { flag: 'request-timeout-ms', kind: 'ms', help: 'how long a request may wait for commit (default 5000)' },
  { flag: 'cert', kind: 'string', help: 'this node\'s certificate (PEM; CN = --id, OU = node): TLS on, with --key and --ca' },
  { flag: 'key', kind: 'string', help: 'the private key of --cert (PEM)' },
  { flag: 'ca', kind: 'string', help: 'the CA certificate (PEM) peers and client certificates must chain to' },
  { flag: 'client-cert-auth', kind: 'boolean', help: 'with TLS: clients must present a certificate signed by --ca (default false)' },
  { flag: 'auth-file', kind: 'string', help: 'users, roles and tokens (JSON): turns on client authentication; needs TLS' },
  { flag: 'max-streams-per-connection', kind: 'count', help: 'concurrent calls per client connection (default 100)' },
  { flag: 'max-watches-per-connection', kind: 'count', help: 'concurrent Watch streams per client connection (default 64)' },
  { flag: 'max-keys-per-call', kind: 'count', help: 'most keys, list elements or hash fields in one answer (default 10000)' },
  { flag: 'client-threads', kind: 'count', help: `worker threads that serve the client API beside Raft (default 0: the main thread does; at most ${MAX_CLIENT_THREADS})` },
  { flag: 'config', kind: 'string', help: 'a JSON file with any of these settings (keys as the flags)' },
  // TEST ONLY: see src/server/fault-injection.ts.
  { flag: 'test-faults-file', kind: 'string', help: 'TEST ONLY, never in production: a JSON file of injected faults (clock offset, slow fsync, peer dial addresses) the node watches' },
];

export function envName(flag: string): string {
  return `QUORUMKV_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * Parses `serve` arguments (`--flag value` or `--flag=value`) with the
 * environment and the optional config file. Throws ConfigError naming the
 * setting and what is wrong.
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Config {
  const fromFlags = parseFlags(argv);
  const raw = new Map<string, string>();
  const configFile = fromFlags.get('config') ?? env[envName('config')];
  if (configFile !== undefined) {
    for (const [key, value] of readConfigFile(configFile)) raw.set(key, value);
  }
  for (const { flag } of FLAGS) {
    const value = env[envName(flag)];
    if (value !== undefined && value !== '') raw.set(flag, value);
  }
  for (const [key, value] of fromFlags) raw.set(key, value);
  return build(raw);
}

function parseFlags(argv: readonly string[]): Map<string, string> {
  const known = new Set(FLAGS.map((f) => f.flag));
  const booleans = new Set(FLAGS.filter((f) => f.kind === 'boolean').map((f) => f.flag));
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument '${arg}' (flags look like --data-dir DIR)`);
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (!known.has(name)) throw new ConfigError(`unknown flag --${name} (see quorumkv serve --help)`);
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else if (booleans.has(name) && (argv[i + 1] === undefined || argv[i + 1]?.startsWith('--') === true)) value = 'true';
    else {
      value = argv[++i];
      if (value === undefined) throw new ConfigError(`--${name} needs a value`);
    }
    out.set(name, value);
  }
  return out;
}

function readConfigFile(path: string): Map<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  const known = new Set(FLAGS.map((f) => f.flag));
  const out = new Map<string, string>();
  for (const [key, value] of Object.entries(parsed)) {
    if (!known.has(key) || key === 'config') throw new ConfigError(`config file ${path}: unknown setting '${key}'`);
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new ConfigError(`config file ${path}: '${key}' must be a string, a number or a boolean`);
    }
    out.set(key, String(value));
  }
  return out;
}

const BYTE_UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, k: 1024, mb: 1024 ** 2, m: 1024 ** 2, gb: 1024 ** 3, g: 1024 ** 3 };

export function parseBytes(name: string, text: string): number {
  const match = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = BYTE_UNITS[(match?.[2] ?? '').toLowerCase()];
  if (match === null || unit === undefined) throw new ConfigError(`--${name} '${text}' is not a size (e.g. 1048576, 512kb, 256mb, 2gb)`);
  const value = Number(match[1]) * unit;
  if (!Number.isSafeInteger(value)) throw new ConfigError(`--${name} '${text}' is too large`);
  return value;
}

function parseCount(name: string, text: string, min: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min) throw new ConfigError(`--${name} '${text}' must be a whole number >= ${min}`);
  return value;
}

/** host:port with a port in 0..65535 (0 asks the OS for a free one). */
export function parseAddress(name: string, text: string): string {
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text.trim());
  if (match === null || Number(match[2]) > 65535) throw new ConfigError(`--${name} '${text}' is not HOST:PORT`);
  return text.trim();
}

export function parseInitialCluster(text: string): Map<string, string> {
  const members = new Map<string, string>();
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError(`--initial-cluster: '${part}' is not ID=HOST:PORT`);
    const id = part.slice(0, eq);
    if (members.has(id)) throw new ConfigError(`--initial-cluster names ${id} twice`);
    members.set(id, parseAddress('initial-cluster', part.slice(eq + 1)));
  }
  if (members.size === 0) throw new ConfigError('--initial-cluster is empty');
  return members;
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

function build(raw: Map<string, string>): Config {
  const str = (flag: string, fallback: string) => raw.get(flag) ?? fallback;
  const addr = (flag: string, fallback: string) => parseAddress(flag, str(flag, fallback));
  const bytes = (flag: string, fallback: number) => (raw.has(flag) ? parseBytes(flag, raw.get(flag) as string) : fallback);
  const count = (flag: string, fallback: number, min: number) => (raw.has(flag) ? parseCount(flag, raw.get(flag) as string, min) : fallback);
  const boolean = (flag: string, fallback: boolean): boolean => {
    const value = raw.get(flag);
    if (value === undefined) return fallback;
    if (value === 'true' || value === 'false') return value === 'true';
    throw new ConfigError(`--${flag} '${value}' must be true or false`);
  };
  const oneOf = <T extends string>(flag: string, fallback: T): T => {
    const value = str(flag, fallback);
    const spec = FLAGS.find((f) => f.flag === flag);
    if (!spec?.values?.includes(value)) throw new ConfigError(`--${flag} '${value}' must be one of ${spec?.values?.join(', ')}`);
    return value as T;
  };

  const id = str('id', 'n1');
  if (!ID_PATTERN.test(id)) throw new ConfigError(`--id '${id}' must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  const clientAddr = addr('client-addr', '127.0.0.1:7001');
  const peerAddr = addr('peer-addr', '127.0.0.1:7101');
  const advertisePeerAddr = addr('advertise-peer-addr', peerAddr);
  const join = raw.has('join') ? parseAddress('join', raw.get('join') as string) : null;
  const initialCluster = raw.has('initial-cluster') ? parseInitialCluster(raw.get('initial-cluster') as string) : new Map([[id, advertisePeerAddr]]);
  if (join === null && !initialCluster.has(id)) {
    throw new ConfigError(`--initial-cluster does not name this node (--id ${id}); list it, or use --join to add it to a running cluster`);
  }
  for (const memberId of initialCluster.keys()) {
    if (!ID_PATTERN.test(memberId)) throw new ConfigError(`--initial-cluster member id '${memberId}' is not a valid id`);
  }
  const tls = tlsFiles(raw);
  const clientCertAuth = boolean('client-cert-auth', false);
  if (clientCertAuth && tls === null) throw new ConfigError('--client-cert-auth needs TLS: set --cert, --key and --ca');
  const authFile = raw.get('auth-file') || null;
  if (authFile !== null && tls === null) throw new ConfigError('--auth-file needs TLS (--cert, --key, --ca): tokens must not cross the network in clear text');
  const heartbeatMs = count('heartbeat-ms', 100, 1);
  const electionMs = count('election-ms', 1000, 1);
  if (electionMs < heartbeatMs * 2) throw new ConfigError(`--election-ms (${electionMs}) must be at least twice --heartbeat-ms (${heartbeatMs})`);
  const maxKeyBytes = bytes('max-key-bytes', 1024);
  const maxValueBytes = bytes('max-value-bytes', 1024 * 1024);
  const maxRequestBytes = bytes('max-request-bytes', 4 * 1024 * 1024);
  if (maxKeyBytes < 1 || maxValueBytes < 1) throw new ConfigError('--max-key-bytes and --max-value-bytes must be at least 1');
  const snapshotBytes = bytes('snapshot-bytes', 64 * 1024 * 1024);
  if (snapshotBytes < 1) throw new ConfigError('--snapshot-bytes must be at least 1');
  const clientThreads = count('client-threads', 0, 0);
  if (clientThreads > MAX_CLIENT_THREADS) throw new ConfigError(`--client-threads ${clientThreads} is more than the limit of ${MAX_CLIENT_THREADS}`);
  if (maxRequestBytes < maxValueBytes + maxKeyBytes) {
    throw new ConfigError(`--max-request-bytes (${maxRequestBytes}) must exceed --max-value-bytes + --max-key-bytes (${maxValueBytes + maxKeyBytes})`);
  }
  return {
    id,
    dataDir: str('data-dir', './data'),
    clientAddr,
    peerAddr,
    httpAddr: addr('http-addr', '127.0.0.1:7201'),
    advertiseClientAddr: addr('advertise-client-addr', clientAddr),
    advertisePeerAddr,
    initialCluster,
    clusterName: str('cluster-name', 'quorumkv'),
    join,
    maxMemoryBytes: bytes('max-memory', 0),
    eviction: oneOf<EvictionPolicy>('eviction', 'lru'),
    logLevel: oneOf<LogLevel>('log-level', 'info'),
    logFormat: oneOf<LogFormat>('log-format', 'json'),
    heartbeatMs,
    electionMs,
    // The design's default (ARCHITECTURE.md). A snapshot writes every key, so write-heavy
    // clusters with many keys may raise it (etcd 3.4 uses 100,000); snapshotBytes bounds the log meanwhile.
    snapshotEntries: count('snapshot-entries', 10_000, 1),
    snapshotBytes,
    snapshotKeepEntries: count('snapshot-keep-entries', 5_000, 0),
    maxKeyBytes,
    maxValueBytes,
    maxRequestBytes,
    maxInflightAppends: count('max-inflight-appends', 256, 1),
    requestTimeoutMs: count('request-timeout-ms', 5_000, 1),
    tls,
    clientCertAuth,
    authFile,
    maxStreamsPerConnection: count('max-streams-per-connection', 100, 1),
    maxWatchesPerConnection: count('max-watches-per-connection', 64, 1),
    maxKeysPerCall: count('max-keys-per-call', 10_000, 1),
    clientThreads,
    testFaultsFile: raw.get('test-faults-file') || null,
  };
}

/** --cert, --key and --ca go together: one alone would leave a port in plaintext by mistake. */
function tlsFiles(raw: Map<string, string>): TlsFiles | null {
  const given = (flag: string): string | undefined => {
    const value = raw.get(flag);
    return value === undefined || value === '' ? undefined : value;
  };
  const certFile = given('cert');
  const keyFile = given('key');
  const caFile = given('ca');
  if (certFile === undefined && keyFile === undefined && caFile === undefined) return null;
  const missing = (['cert', 'key', 'ca'] as const).filter((flag) => given(flag) === undefined);
  if (certFile === undefined || keyFile === undefined || caFile === undefined) {
    throw new ConfigError(`TLS needs --cert, --key and --ca together: ${missing.map((flag) => `--${flag}`).join(' and ')} missing`);
  }
  return { certFile, keyFile, caFile };
}

export function usage(): string {
  const lines = FLAGS.map(({ flag, help }) => `  --${flag.padEnd(24)} ${help}  [${envName(flag)}]`);
  return ['usage: quorumkv serve [flags]', '', ...lines].join('\n');
}
