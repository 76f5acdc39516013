/**
 * quorumkv serve — run one node.
 * quorumkv dev   — a local three-node cluster on loopback, for trying things out.
 * quorumkv certs — a CA and node/client certificates for a dev or docker-compose cluster.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig, usage } from '../config/config.ts';
import { createLogger } from './logger.ts';
import { SERVE_NODE_FLAGS } from './node-flags.ts';
import { startNode } from '../server/node.ts';
import { CertsError, makeCerts } from '../tls/certs.ts';
import { silenceIpServerNameWarning } from './tls-warnings.ts';

const HELP = `usage:
  quorumkv serve [flags]            run one node (quorumkv serve --help lists the flags)
  quorumkv dev [--nodes 3] [--data-dir ./data] [--tls]
                                    a local cluster on 127.0.0.1: client ports 7001.., peer 7101.., http 7201..;
                                    --tls makes certificates in DATA-DIR/certs and runs every port with TLS
  quorumkv certs [--out ./certs] [--nodes n1,n2,n3] [--clients admin,...] [--hosts HOST,...] [--days 825] [--new-ca]
                                    a CA (reused if --out has one) and certificates: ID.pem/ID-key.pem per node
                                    (CN=ID, OU=node, SANs localhost, 127.0.0.1, ID and --hosts), NAME.pem per client (OU=client)`;

const DEV_OPTIONS = {
  nodes: { type: 'string', default: '3' },
  'data-dir': { type: 'string', default: './data' },
  tls: { type: 'boolean', default: false },
} as const;

const CERTS_OPTIONS = {
  out: { type: 'string', default: './certs' },
  nodes: { type: 'string', default: 'n1,n2,n3' },
  clients: { type: 'string', default: '' },
  hosts: { type: 'string', default: '' },
  days: { type: 'string', default: '825' },
  'new-ca': { type: 'boolean', default: false },
} as const;

function list(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** parseArgs for a subcommand: --help prints the usage, a bad option fails with it. */
function parseOptions<T extends ParseArgsConfig['options']>(argv: string[], options: T): ReturnType<typeof parseArgs<{ args: string[]; options: T; strict: true }>>['values'] {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(HELP);
    process.exit(0);
  }
  try {
    return parseArgs({ args: argv, options, strict: true }).values;
  } catch (error) {
    fail(`${(error as Error).message}\n${HELP}`);
  }
}

async function certs(argv: string[]): Promise<void> {
  const values = parseOptions(argv, CERTS_OPTIONS);
  const days = Number(values.days);
  try {
    const result = await makeCerts({ outDir: values.out, nodes: list(values.nodes), clients: list(values.clients), hosts: list(values.hosts), days, newCa: values['new-ca'] });
    console.log(`${result.caCreated ? 'made a new CA' : 'signed with the existing CA'}: ${result.caFile} (key ${result.caKeyFile}, keep it private)`);
    for (const [id, files] of result.nodes) console.log(`node ${id}: ${files.certFile} ${files.keyFile}`);
    for (const [name, files] of result.clients) console.log(`client ${name}: ${files.certFile} ${files.keyFile}`);
  } catch (error) {
    fail(error instanceof CertsError ? error.message : String(error));
  }
}

async function serve(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage());
    return;
  }
  let config;
  try {
    config = loadConfig(argv);
  } catch (error) {
    fail(error instanceof ConfigError ? error.message : String(error));
  }
  const logger = createLogger(config.logLevel, config.logFormat, { nodeId: config.id });
  let node;
  try {
    node = await startNode(config, logger);
  } catch (error) {
    logger.flush();
    fail(`cannot start node ${config.id}: ${(error as Error).message}`);
  }
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    node.stop().then(
      () => {
        logger.info({}, 'stopped cleanly');
        logger.flush();
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // SIGHUP re-reads certificates (and other reloadable files) without a restart; a failed reload keeps the old ones.
  process.on('SIGHUP', () => {
    if (stopping) return;
    logger.info({ signal: 'SIGHUP' }, 'reloading');
    node.reload();
  });
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // A node that lost a part it needs (a client thread, its state restore) must not linger half-alive: stop, and exit non-zero for the supervisor.
  void node.failed.then((error) => {
    if (stopping) return;
    stopping = true;
    logger.fatal({ err: error.message }, 'node failed: stopping');
    const exit = () => {
      logger.flush();
      process.stderr.write(`quorumkv: node ${config.id} failed: ${error.message}\n`);
      process.exit(1);
    };
    node.stop().then(exit, exit);
  });
}

/** Runs `--nodes` serve processes with pretty, prefixed logs, and stops them all on Ctrl-C. */
async function dev(argv: string[]): Promise<void> {
  const values = parseOptions(argv, DEV_OPTIONS);
  const count = Number(values.nodes);
  if (!Number.isInteger(count) || count < 1 || count > 7) fail('--nodes must be from 1 to 7');
  const dataDir = resolve(values['data-dir']);
  const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const certsDir = join(dataDir, 'certs');
  if (values.tls) {
    try {
      await makeCerts({ outDir: certsDir, nodes: ids, clients: ['admin'] });
    } catch (error) {
      fail(error instanceof CertsError ? error.message : String(error));
    }
  }
  const tlsFlags = (id: string): string[] =>
    values.tls ? ['--cert', join(certsDir, `${id}.pem`), '--key', join(certsDir, `${id}-key.pem`), '--ca', join(certsDir, 'ca.pem')] : [];
  const initialCluster = ids.map((id, i) => `${id}=127.0.0.1:${7101 + i}`).join(',');
  // This module runs from src/cli/ or from its bundle in dist/<build id>/: both two levels below the repository.
  const bin = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'quorumkv.js');
  const children: ChildProcess[] = [];
  const colors = [36, 33, 35, 32, 34, 31, 37];
  ids.forEach((id, i) => {
    const dir = join(dataDir, id);
    mkdirSync(dir, { recursive: true });
    const child = spawn(
      process.execPath,
      [
        ...SERVE_NODE_FLAGS,
        bin,
        'serve',
        '--id', id,
        '--data-dir', dir,
        '--client-addr', `127.0.0.1:${7001 + i}`,
        '--peer-addr', `127.0.0.1:${7101 + i}`,
        '--http-addr', `127.0.0.1:${7201 + i}`,
        '--initial-cluster', initialCluster,
        '--log-format', 'pretty',
        ...tlsFlags(id),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const prefix = `\x1b[${colors[i % colors.length]}m${id}\x1b[0m │ `;
    for (const stream of [child.stdout, child.stderr]) {
      if (stream !== null) createInterface({ input: stream }).on('line', (line) => process.stdout.write(`${prefix}${line}\n`));
    }
    child.on('exit', (code, signal) => {
      process.stdout.write(`${prefix}exited (${signal ?? code})\n`);
      if (!stoppingAll && code !== 0) stopAll(1);
    });
    children.push(child);
  });
  const endpoints = ids.map((_, i) => `127.0.0.1:${7001 + i}`).join(',');
  const ca = join(certsDir, 'ca.pem');
  setTimeout(() => {
    if (values.tls) {
      console.log(`
quorumkv dev cluster with TLS: ${count} node(s), data under ${dataDir}, certificates in ${certsDir}
  status page:  http://127.0.0.1:7201/ (plain HTTP)
  try:
    npx qkv --cacert ${ca} --endpoints ${endpoints} set greeting hello
    npx qkv --cacert ${ca} --cert ${join(certsDir, 'admin.pem')} --key ${join(certsDir, 'admin-key.pem')} get greeting
    grpcurl -cacert ${ca} 127.0.0.1:7001 list
    grpcurl -cacert ${ca} -d '{"key":"greeting"}' 127.0.0.1:7002 quorumkv.v1.KV/Get
  Ctrl-C stops the cluster (data is kept; delete ${dataDir} to start afresh).
`);
      return;
    }
    console.log(`
quorumkv dev cluster: ${count} node(s), data under ${dataDir}
  status page:  http://127.0.0.1:7201/
  try:
    npx qkv --endpoints ${endpoints} set greeting hello
    npx qkv get greeting
    npx qkv cluster members
    grpcurl -plaintext 127.0.0.1:7001 list
    grpcurl -plaintext -d '{"key":"greeting"}' 127.0.0.1:7002 quorumkv.v1.KV/Get
  Ctrl-C stops the cluster (data is kept; delete ${dataDir} to start afresh).
`);
  }, 1500).unref();
  let stoppingAll = false;
  const stopAll = (code: number) => {
    if (stoppingAll) return;
    stoppingAll = true;
    let running = children.filter((c) => c.exitCode === null && c.signalCode === null).length;
    if (running === 0) process.exit(code);
    for (const child of children) {
      child.once('exit', () => {
        if (--running === 0) process.exit(code);
      });
      child.kill('SIGTERM');
    }
  };
  process.on('SIGINT', () => stopAll(0));
  process.on('SIGTERM', () => stopAll(0));
}

function fail(message: string): never {
  process.stderr.write(`quorumkv: ${message}\n`);
  process.exit(1);
}

silenceIpServerNameWarning();
const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'serve':
    await serve(rest);
    break;
  case 'dev':
    await dev(rest);
    break;
  case 'certs':
    await certs(rest);
    break;
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    console.log(HELP);
    break;
  default:
    process.stderr.write(`quorumkv: unknown command '${command}'\n${HELP}\n`);
    process.exit(2);
}
