/** qkv's global options, read from the arguments before the command (and QUORUMKV_ENDPOINTS, QKV_TOKEN). */
import { UsageError } from './qkv-args.ts';

export const DEFAULT_ENDPOINT = '127.0.0.1:7001';

export interface GlobalOptions {
  readonly endpoints: string[];
  readonly json: boolean;
  readonly timeoutMs: number | undefined;
  /** Bearer token for a cluster with authentication on. */
  readonly token: string | undefined;
  readonly serializable: boolean;
  readonly yes: boolean;
  readonly help: boolean;
  /** TLS to the cluster: the CA file, and a client certificate and key (files) if given; null: plaintext. */
  readonly tls: { readonly ca: string; readonly cert?: string; readonly key?: string } | null;
  /** The command and its arguments (empty: start the REPL). */
  readonly command: string[];
}

const VALUED = new Set(['--endpoints', '--timeout', '--cacert', '--cert', '--key', '--token']);
/** The TLS options and the variables that stand in for them. */
const TLS_ENV: Readonly<Record<string, string>> = { '--cacert': 'QKV_CACERT', '--cert': 'QKV_CERT', '--key': 'QKV_KEY' };
const FLAGS = new Set(['--json', '--serializable', '--yes', '--help', '-h']);

export function parseGlobalOptions(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): GlobalOptions {
  let endpoints = env['QUORUMKV_ENDPOINTS'] ?? '';
  let timeoutMs: number | undefined;
  let token = env['QKV_TOKEN'] || undefined;
  const flags = new Set<string>();
  const tlsFiles = new Map<string, string>();
  for (const [flag, variable] of Object.entries(TLS_ENV)) {
    const value = env[variable];
    if (value !== undefined && value !== '') tlsFiles.set(flag, value);
  }
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-')) break;
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    if (FLAGS.has(name)) {
      if (eq > 0) throw new UsageError(`${name} takes no value`);
      flags.add(name === '-h' ? '--help' : name);
      continue;
    }
    if (!VALUED.has(name)) throw new UsageError(`unknown option '${name}'`);
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`${name} needs a value`);
    if (name === '--endpoints') {
      endpoints = value;
    } else if (name in TLS_ENV) {
      tlsFiles.set(name, value);
    } else if (name === '--token') {
      token = value;
    } else {
      const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
      if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--timeout must be a positive number of milliseconds (got '${value}')`);
      timeoutMs = n;
    }
  }
  const list = endpoints
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '');
  for (const e of list) if (!/^[^\s]+:\d+$/.test(e)) throw new UsageError(`endpoint '${e}' is not HOST:PORT`);
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) throw new UsageError('--token must be visible ASCII characters without spaces');
  return {
    endpoints: list.length === 0 ? [DEFAULT_ENDPOINT] : list,
    tls: tlsOptions(tlsFiles),
    json: flags.has('--json'),
    timeoutMs,
    token,
    serializable: flags.has('--serializable'),
    yes: flags.has('--yes'),
    help: flags.has('--help'),
    command: argv.slice(i),
  };
}

function tlsOptions(files: ReadonlyMap<string, string>): GlobalOptions['tls'] {
  const ca = files.get('--cacert');
  const cert = files.get('--cert');
  const key = files.get('--key');
  if ((cert === undefined) !== (key === undefined)) throw new UsageError(`--cert and --key go together (${cert === undefined ? '--cert' : '--key'} is missing)`);
  if (ca === undefined) {
    if (cert !== undefined) throw new UsageError('--cert needs --cacert: a client certificate is only sent over TLS');
    return null;
  }
  return { ca, ...(cert === undefined ? {} : { cert }), ...(key === undefined ? {} : { key }) };
}
