/**
 * The TypeScript client and qkv against a real cluster: failover when the
 * leader dies, writes applied exactly once through retries, and the CLI's
 * one-shot commands.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuorumClient } from '../../src/client/index.ts';
import { REPO_ROOT, TestCluster } from '../support/cluster-harness.ts';

const run = promisify(execFile);
let cluster: TestCluster;
let client: QuorumClient;

beforeAll(async () => {
  cluster = await TestCluster.start({ size: 3 });
  client = new QuorumClient({ endpoints: cluster.specs.map((s) => `127.0.0.1:${s.clientPort}`), timeoutMs: 20_000 });
}, 60_000);

afterAll(async () => {
  client?.close();
  await cluster?.stop();
});

describe('QuorumClient against a real cluster', () => {
  it('keeps every write exactly once while the leader is killed under it', async () => {
    const key = 'appends';
    const writes = Array.from({ length: 150 }, (_, i) => `v${i}`);
    let killed = false;
    for (const [i, value] of writes.entries()) {
      if (i === 50) {
        // Kill the leader mid-stream; the client must find the new one and retry with its session.
        const leader = await cluster.waitForLeader();
        await cluster.kill(leader);
        killed = true;
      }
      await client.rpush(key, value);
    }
    expect(killed).toBe(true);
    const list = (await client.lrange(key, 0, -1)).map((v) => Buffer.from(v).toString());
    expect(list).toEqual(writes);
  }, 90_000);

  it('reads its own writes through any endpoint, and serializable reads converge', async () => {
    await client.set('greeting', 'hello');
    expect(await client.getString('greeting')).toBe('hello');
    await cluster.waitForConvergence();
    expect(await client.getString('greeting', { consistency: 'serializable' })).toBe('hello');
  }, 30_000);
});

describe('qkv against a real cluster', () => {
  const qkv = async (...args: string[]): Promise<{ stdout: string; code: number }> => {
    const endpoints = cluster.runningIds().map((id) => `127.0.0.1:${cluster.spec(id).clientPort}`).join(',');
    try {
      const { stdout } = await run(process.execPath, [join(REPO_ROOT, 'bin', 'qkv.js'), '--endpoints', endpoints, ...args]);
      return { stdout, code: 0 };
    } catch (error) {
      const failed = error as { stdout?: string; stderr?: string; code?: number };
      return { stdout: `${failed.stdout ?? ''}${failed.stderr ?? ''}`, code: failed.code ?? -1 };
    }
  };

  it('runs commands and prints results like redis-cli', async () => {
    expect(await qkv('set', 'cli', 'value')).toEqual({ stdout: 'OK\n', code: 0 });
    expect((await qkv('get', 'cli')).stdout).toBe('value\n');
    expect((await qkv('rpush', 'cli-list', 'a', 'b')).stdout).toBe('(integer) 2\n');
    expect((await qkv('lrange', 'cli-list', '0', '-1')).stdout).toBe('1) a\n2) b\n');
    expect((await qkv('--json', 'get', 'cli')).stdout.trim()).toBe('{"utf8":"value"}');
    const wrong = await qkv('lpush', 'cli', 'x');
    expect(wrong.code).toBe(1);
    expect(wrong.stdout).toMatch(/\(error\) FAILED_PRECONDITION: WRONGTYPE/);
    const members = await qkv('cluster', 'members');
    expect(members.stdout).toMatch(/n1\s+voter/);
  }, 60_000);
});
