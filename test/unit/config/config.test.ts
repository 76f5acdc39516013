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
    expect(config).toMatchObject({ snapshotEntries: 100_000, snapshotBytes: 64 * 1024 * 1024 });
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
});
