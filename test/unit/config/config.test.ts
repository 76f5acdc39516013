import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseBytes } from '../../../src/config/config.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('loadConfig', () => {
  it('with no flags is a single-node cluster on 127.0.0.1:7001 with data in ./data', () => {
    const config = loadConfig([], {});
    expect(config).toMatchObject({ id: 'n1', dataDir: './data', clientAddr: '127.0.0.1:7001', peerAddr: '127.0.0.1:7101', httpAddr: '127.0.0.1:7201' });
    expect([...config.initialCluster]).toEqual([['n1', '127.0.0.1:7101']]);
    expect(config.join).toBeNull();
    expect(config).toMatchObject({ snapshotEntries: 10_000, snapshotBytes: 64 * 1024 * 1024 });
  });

  it('takes flags in both forms, and flags win over the environment, which wins over the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qkv-config-'));
    dirs.push(dir);
    const file = join(dir, 'node.json');
    writeFileSync(file, JSON.stringify({ 'data-dir': '/from-file', 'max-memory': '1mb', eviction: 'noeviction' }));
    const config = loadConfig(['--config', file, '--data-dir=/from-flag', '--id', 'n2', '--initial-cluster', 'n1=a:1,n2=b:2'], {
      QUORUMKV_DATA_DIR: '/from-env',
      QUORUMKV_MAX_MEMORY: '2mb',
    });
    expect(config.dataDir).toBe('/from-flag');
    expect(config.maxMemoryBytes).toBe(2 * 1024 * 1024);
    expect(config.eviction).toBe('noeviction');
    expect(config.id).toBe('n2');
    expect([...config.initialCluster.keys()]).toEqual(['n1', 'n2']);
  });

  it.each([
    [['--bogus', '1'], /unknown flag --bogus/],
    [['--client-addr', 'nope'], /--client-addr 'nope' is not HOST:PORT/],
    [['--client-addr', 'h:99999'], /not HOST:PORT/],
    [['--eviction', 'random'], /--eviction 'random' must be one of lru, noeviction/],
    [['--max-memory', '12 parsecs'], /not a size/],
    [['--id', 'n9', '--initial-cluster', 'n1=a:1'], /does not name this node/],
    [['--initial-cluster', 'n1=a:1,n1=b:2'], /names n1 twice/],
    [['--heartbeat-ms', '600'], /at least twice --heartbeat-ms/],
    [['--id', '../etc'], /--id/],
    [['--data-dir'], /needs a value/],
    [['--max-watches-per-connection', '0'], /--max-watches-per-connection '0' must be a whole number >= 1/],
    [['--max-keys-per-call', 'lots'], /--max-keys-per-call 'lots' must be a whole number >= 1/],
    [['--max-streams-per-connection', '-1'], /--max-streams-per-connection/],
    [['--snapshot-bytes', '0'], /--snapshot-bytes must be at least 1/],
  ])('refuses %j with a message naming the problem', (argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(ConfigError);
    expect(() => loadConfig(argv, {})).toThrow(message);
  });

  it('parses sizes with units', () => {
    expect(parseBytes('x', '512')).toBe(512);
    expect(parseBytes('x', '4kb')).toBe(4096);
    expect(parseBytes('x', '2GB')).toBe(2 * 1024 ** 3);
  });

  it('has the abuse limits on by default and authentication off', () => {
    const config = loadConfig([], {});
    expect(config).toMatchObject({ authFile: null, maxStreamsPerConnection: 100, maxWatchesPerConnection: 64, maxKeysPerCall: 10_000 });
  });

  it('reads the auth file and the limits from flags, the environment and the config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'qkv-config-'));
    dirs.push(dir);
    const file = join(dir, 'node.json');
    writeFileSync(file, JSON.stringify({ 'max-keys-per-call': 500, 'auth-file': '/etc/qkv/users.json' }));
    const tlsFlags = ['--cert', 'n1.pem', '--key', 'n1-key.pem', '--ca', 'ca.pem'];
    const config = loadConfig(['--config', file, '--max-watches-per-connection=8', ...tlsFlags], { QUORUMKV_MAX_STREAMS_PER_CONNECTION: '20' });
    expect(config).toMatchObject({ authFile: '/etc/qkv/users.json', maxStreamsPerConnection: 20, maxWatchesPerConnection: 8, maxKeysPerCall: 500 });
  });

  it('serves the client API on the main thread by default; --client-threads or its variable sets worker threads, up to a limit', () => {
    expect(loadConfig([], {}).clientThreads).toBe(0);
    expect(loadConfig(['--client-threads', '2'], {}).clientThreads).toBe(2);
    expect(loadConfig([], { QUORUMKV_CLIENT_THREADS: '3' }).clientThreads).toBe(3);
    expect(() => loadConfig(['--client-threads', '65'], {})).toThrow('--client-threads 65 is more than the limit of 64');
    expect(() => loadConfig(['--client-threads', '-1'], {})).toThrow('--client-threads');
  });

  it('refuses --auth-file without TLS: tokens must not travel in clear text', () => {
    expect(() => loadConfig(['--auth-file', 'users.json'], {})).toThrow('--auth-file needs TLS (--cert, --key, --ca): tokens must not cross the network in clear text');
  });
});

describe('TLS settings', () => {
  it('are off by default', () => {
    const config = loadConfig([], {});
    expect(config.tls).toBeNull();
    expect(config.clientCertAuth).toBe(false);
  });

  it('take --cert, --key and --ca together, from flags, the environment or the file', () => {
    expect(loadConfig(['--cert', 'n1.pem', '--key', 'n1-key.pem', '--ca', 'ca.pem'], {}).tls).toEqual({ certFile: 'n1.pem', keyFile: 'n1-key.pem', caFile: 'ca.pem' });
    const fromEnv = loadConfig([], { QUORUMKV_CERT: 'a.pem', QUORUMKV_KEY: 'a-key.pem', QUORUMKV_CA: 'ca.pem', QUORUMKV_CLIENT_CERT_AUTH: 'true' });
    expect(fromEnv.tls).toEqual({ certFile: 'a.pem', keyFile: 'a-key.pem', caFile: 'ca.pem' });
    expect(fromEnv.clientCertAuth).toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'qkv-config-'));
    dirs.push(dir);
    const file = join(dir, 'node.json');
    writeFileSync(file, JSON.stringify({ cert: 'f.pem', key: 'f-key.pem', ca: 'ca.pem', 'client-cert-auth': true }));
    const fromFile = loadConfig(['--config', file], {});
    expect(fromFile.tls?.certFile).toBe('f.pem');
    expect(fromFile.clientCertAuth).toBe(true);
  });

  it('read --client-cert-auth bare, or as =true / =false', () => {
    const tls = ['--cert', 'c', '--key', 'k', '--ca', 'ca'];
    expect(loadConfig([...tls, '--client-cert-auth'], {}).clientCertAuth).toBe(true);
    expect(loadConfig(['--client-cert-auth', ...tls], {}).clientCertAuth).toBe(true);
    expect(loadConfig([...tls, '--client-cert-auth=false'], {}).clientCertAuth).toBe(false);
    expect(loadConfig([...tls, '--client-cert-auth', 'false'], {}).clientCertAuth).toBe(false);
  });

  it.each([
    [['--cert', 'c.pem'], /--key and --ca missing/],
    [['--cert', 'c.pem', '--key', 'k.pem'], /TLS needs --cert, --key and --ca together: --ca missing/],
    [['--ca', 'ca.pem'], /--cert and --key missing/],
    [['--client-cert-auth'], /--client-cert-auth needs TLS/],
    [['--cert', 'c', '--key', 'k', '--ca', 'ca', '--client-cert-auth', 'yes'], /--client-cert-auth 'yes' must be true or false/],
  ])('refuse %j, naming what is missing', (argv, message) => {
    expect(() => loadConfig(argv, {})).toThrow(ConfigError);
    expect(() => loadConfig(argv, {})).toThrow(message);
  });
});
