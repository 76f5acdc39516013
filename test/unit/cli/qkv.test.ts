/**
 * qkv end to end against scripted gRPC servers: one-shot commands (output,
 * --json, errors on stderr, exit codes) and the REPL driven through streams
 * (prompt, quoting, help, history, Ctrl-C, Ctrl-D).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../../src/cli/qkv-main.ts';
import { runRepl } from '../../../src/cli/qkv-repl.ts';
import { QuorumClient } from '../../../src/client/index.ts';
import { ServerPool, status, type Scripts } from '../client/scripted-server.ts';
import { memoryKv } from './memory-kv.ts';

const pool = new ServerPool();
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'qkv-test-'));
});
afterEach(() => {
  pool.closeAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Collects what is written to a stream. */
function sink(): PassThrough & { text(): string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return Object.assign(stream, { text: () => text });
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function qkv(argv: string[], options: { env?: Record<string, string>; input?: string; interactive?: boolean; onInterrupt?: (h: () => void) => () => void } = {}): Promise<Run> {
  const stdin = new PassThrough();
  const stdout = sink();
  const stderr = sink();
  if (options.input !== undefined) stdin.end(options.input);
  const code = await main({
    argv,
    env: { QKV_HISTORY_FILE: path.join(dir, 'history'), ...options.env },
    stdin,
    stdout,
    stderr,
    interactive: options.interactive ?? false,
    homeDir: dir,
    ...(options.onInterrupt === undefined ? {} : { onInterrupt: options.onInterrupt }),
  });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

async function server(scripts: Scripts = memoryKv()) {
  return pool.start(scripts);
}

describe('one-shot', () => {
  it('runs a command and prints like redis-cli', async () => {
    const node = await server();
    const e = ['--endpoints', node.address];
    expect(await qkv([...e, 'set', 'k', 'hello world'])).toEqual({ code: 0, stdout: 'OK\n', stderr: '' });
    expect(await qkv([...e, 'GET', 'k'])).toEqual({ code: 0, stdout: 'hello world\n', stderr: '' });
    expect(await qkv([...e, 'get', 'missing'])).toEqual({ code: 0, stdout: '(nil)\n', stderr: '' });
    expect((await qkv([...e, 'rpush', 'l', 'a', 'b'])).stdout).toBe('(integer) 2\n');
    expect((await qkv([...e, 'lrange', 'l', '0', '-1'])).stdout).toBe('1) a\n2) b\n');
    expect((await qkv([...e, 'hset', 'h', 'f', 'v'])).stdout).toBe('(integer) 1\n');
    expect((await qkv([...e, 'hgetall', 'h'])).stdout).toBe('f => v\n');
    expect((await qkv([...e, 'keys'])).stdout).toBe('1) h\n2) k\n3) l\n');
  });

  it('--json prints one document per result', async () => {
    const node = await server();
    const e = ['--json', '--endpoints', node.address];
    await qkv([...e, 'set', 'k', 'v']);
    expect((await qkv([...e, 'get', 'k'])).stdout).toBe('{"utf8":"v"}\n');
    expect((await qkv([...e, 'get', 'nope'])).stdout).toBe('null\n');
    expect((await qkv([...e, 'size'])).stdout).toBe('1\n');
  });

  it('reads the endpoints from QUORUMKV_ENDPOINTS', async () => {
    const node = await server();
    expect((await qkv(['size'], { env: { QUORUMKV_ENDPOINTS: node.address } })).stdout).toBe('(integer) 0\n');
  });

  it('prints a server error as one line on stderr and exits 1', async () => {
    const node = await server();
    await qkv(['--endpoints', node.address, 'rpush', 'l', 'a']);
    expect(await qkv(['--endpoints', node.address, 'get', 'l'])).toEqual({
      code: 1,
      stdout: '',
      stderr: "(error) FAILED_PRECONDITION: WRONGTYPE: key 'l' holds a list\n",
    });
  });

  it('bad usage prints the problem and the usage, and exits 2', async () => {
    const node = await server();
    expect(await qkv(['--endpoints', node.address, 'lrange', 'l', '0'])).toEqual({
      code: 2,
      stdout: '',
      stderr: '(error) lrange: missing STOP\nusage: lrange KEY START STOP\n',
    });
    expect(node.requests).toHaveLength(0);
    const bad = await qkv(['--timeout', 'soon', 'get', 'k']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--timeout must be a positive number of milliseconds (got 'soon')");
    expect((await qkv(['--endpoints', 'nohost', 'get', 'k'])).stderr).toContain("endpoint 'nohost' is not HOST:PORT");
  });

  it('help, help COMMAND and --help', async () => {
    expect((await qkv(['help'])).stdout).toContain('hset KEY FIELD VALUE [FIELD VALUE ...]');
    expect((await qkv(['--help'])).stdout).toContain('cluster backup FILE');
    expect((await qkv(['help', 'LPOP'])).stdout).toBe('usage: lpop KEY [COUNT]\n  Removes and returns the first value, or up to COUNT values as a list.\n');
    expect(await qkv(['help', 'frob'])).toMatchObject({ code: 2, stderr: "(error) unknown command 'frob' (try: help)\n" });
  });

  it('clear asks at a terminal, and --yes skips the question', async () => {
    const kv = memoryKv();
    const node = await server(kv);
    await qkv(['--endpoints', node.address, 'set', 'k', 'v']);
    const refused = await qkv(['--endpoints', node.address, 'clear'], { interactive: true, input: 'n\n' });
    expect(refused).toMatchObject({ code: 1, stderr: '(error) clear: not confirmed; nothing was deleted\n' });
    expect(refused.stdout).toContain('Delete every key in the cluster? [y/N] ');
    expect(kv.data.size).toBe(1);
    expect(await qkv(['--endpoints', node.address, '--yes', 'flushall'], { interactive: true })).toMatchObject({ code: 0, stdout: '(integer) 1\n' });
  });

  it('watch prints events until Ctrl-C', async () => {
    const node = await server({
      kv: {
        Watch: (call) => {
          call.write({ index: 4, type: 'PUT', key: 'k', value: Buffer.from('v'), value_type: 'STRING' });
          call.write({ index: 5, type: 'DELETE', key: 'k', value: Buffer.alloc(0), value_type: 'NONE' });
        },
      },
    });
    let interrupt = (): void => undefined;
    const run = qkv(['--endpoints', node.address, 'watch', 'k', '--from', '4'], {
      onInterrupt: (handler) => {
        interrupt = handler;
        return () => undefined;
      },
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    interrupt();
    expect(await run).toEqual({ code: 0, stdout: '4 PUT k v\n5 DELETE k\n', stderr: '' });
  });

  it('cluster backup writes the snapshot file, and nothing when the stream breaks', async () => {
    const file = Buffer.from('SQLite format 3\0...pages...');
    const node = await server({
      cluster: {
        Backup: (call) => {
          call.write({ offset: 0, data: file.subarray(0, 10), index: 7, term: 2, size_bytes: file.length });
          call.write({ offset: 10, data: file.subarray(10), index: 7, term: 2, size_bytes: file.length });
          call.end();
        },
      },
    });
    const target = path.join(dir, 'backup.db');
    const run = await qkv(['--endpoints', node.address, 'cluster', 'backup', target]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toBe(`file:  ${target}\nbytes: ${file.length}\nindex: 7\nterm:  2\n`);
    expect(readFileSync(target)).toEqual(file);

    const broken = await server({
      cluster: {
        Backup: (call) => {
          call.write({ offset: 0, data: file.subarray(0, 10), index: 7, term: 2, size_bytes: file.length });
          call.emit('error', status(grpc.status.INTERNAL, 'disk read failed'));
        },
      },
    });
    const other = path.join(dir, 'other.db');
    expect(await qkv(['--endpoints', broken.address, 'cluster', 'backup', other])).toMatchObject({ code: 1, stderr: '(error) INTERNAL: disk read failed\n' });
    expect(existsSync(other)).toBe(false);
    expect(existsSync(`${other}.partial`)).toBe(false);
  });
});

describe('TLS options', () => {
  it.each([
    [['--cert', 'c.pem', 'size'], '--cert and --key go together (--key is missing)'],
    [['--cert', 'c.pem', '--key', 'k.pem', 'size'], '--cert needs --cacert: a client certificate is only sent over TLS'],
  ])('%j is a usage error', async (argv, message) => {
    const run = await qkv(argv);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`(error) ${message}\n`);
  });

  it('names a CA file it cannot read', async () => {
    const run = await qkv(['size'], { env: { QKV_CACERT: path.join(dir, 'missing-ca.pem') } });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^\(error\) cannot read tls.ca .*missing-ca.pem: ENOENT/);
  });
});

describe('REPL', () => {
  it('runs lines until quit; quoting like redis-cli; errors do not end the session', async () => {
    const node = await server();
    const run = await qkv(['--endpoints', node.address], {
      input: ['set k "a b\\n"', 'get k', "set q 'it\\'s'", 'get q', 'set "open', 'lrange l 0', 'get', 'HELP get', 'quit', 'get k'].join('\n'),
    });
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n')).toEqual([
      'OK',
      '"a b\\n"',
      'OK',
      "it's",
      '(error) unbalanced quotes: a "double-quoted" argument is not closed',
      '(error) lrange: missing STOP',
      'usage: lrange KEY START STOP',
      '(error) get: missing KEY',
      'usage: get KEY',
      'usage: get KEY',
      '  The string value of a key; (nil) when missing.',
      '',
    ]);
  });

  it('ends at end of input (Ctrl-D) and saves history to QKV_HISTORY_FILE', async () => {
    const node = await server();
    const history = path.join(dir, 'history');
    await qkv(['--endpoints', node.address], { input: 'set a 1\n\nsize\n' });
    expect(readFileSync(history, 'utf8')).toBe('set a 1\nsize\n');
  });

  it('shows the endpoint in the prompt', async () => {
    const node = await server();
    const input = new PassThrough();
    const output = sink();
    const client = new QuorumClient({ endpoints: [node.address] });
    input.end('size\n');
    await runRepl({ input, output, terminal: false, showPrompt: true, historyFile: undefined, client, consistency: 'linearizable', json: false, yes: false });
    client.close();
    expect(output.text()).toBe(`${node.address}> (integer) 0\n${node.address}> `);
  });

  describe('at a terminal', () => {
    async function terminalSession(address: string, historyFile: string) {
      const input = new PassThrough();
      const output = sink();
      const client = new QuorumClient({ endpoints: [address] });
      const done = runRepl({ input, output, terminal: true, historyFile, client, consistency: 'linearizable', json: false, yes: false }).finally(() => client.close());
      const until = async (text: string): Promise<void> => {
        for (let i = 0; i < 200 && !output.text().includes(text); i++) await new Promise((resolve) => setTimeout(resolve, 10));
        expect(output.text()).toContain(text);
      };
      return { input, output, done, until };
    }

    it('recalls saved history with the up arrow', async () => {
      const kv = memoryKv();
      const node = await server(kv);
      const history = path.join(dir, 'history');
      writeFileSync(history, 'size\nset recalled yes\n');
      const session = await terminalSession(node.address, history);
      session.input.write('\x1b[A\r');
      await session.until('OK');
      session.input.end();
      await session.done;
      expect(kv.data.has('recalled')).toBe(true);
    });

    it('Ctrl-C stops a running watch and returns to the prompt; at the prompt it leaves', async () => {
      const kv = memoryKv();
      const node = await server({
        kv: { ...kv.kv, Watch: (call) => void call.write({ index: 9, type: 'PUT', key: 'w', value: Buffer.from('x'), value_type: 'STRING' }) },
      });
      const session = await terminalSession(node.address, path.join(dir, 'history'));
      session.input.write('watch w --from 9\r');
      await session.until('9 PUT w x');
      session.input.write('\x03');
      session.input.write('size\r');
      await session.until('(integer) 0');
      session.input.write('\x03');
      await expect(session.done).resolves.toBe(0);
    });

    it('clear asks for confirmation', async () => {
      const kv = memoryKv();
      const node = await server(kv);
      kv.data.set('k', { type: 'STRING', value: Buffer.from('v') });
      const session = await terminalSession(node.address, path.join(dir, 'history'));
      session.input.write('clear\r');
      await session.until('[y/N]');
      session.input.write('no\r');
      await session.until('not confirmed');
      expect(kv.data.size).toBe(1);
      session.input.write('clear\r');
      session.input.write('y\r');
      await session.until('(integer) 1');
      expect(session.output.text().split('[y/N]')).toHaveLength(3);
      expect(kv.data.size).toBe(0);
      session.input.end();
      await session.done;
    });
  });
});
