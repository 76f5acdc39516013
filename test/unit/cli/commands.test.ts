/**
 * The command table without a server: every command's usage errors name
 * the problem, and each command line makes the expected client call and
 * prints its answer (a recording stand-in for QuorumClient).
 */
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/cli/qkv-args.ts';
import { COMMANDS, lookup, type RunContext } from '../../../src/cli/qkv-commands.ts';
import { formatText } from '../../../src/cli/qkv-format.ts';
import { tokenize } from '../../../src/cli/qkv-tokenize.ts';
import type { QuorumClient } from '../../../src/client/index.ts';

function prepare(line: string) {
  const tokens = tokenize(line);
  const { command, nameTokens } = lookup(tokens.slice(0, 2).map((t) => new TextDecoder().decode(t)));
  return { command, invocation: command.prepare(tokens.slice(nameTokens)) };
}

function usageError(line: string): string {
  try {
    prepare(line);
  } catch (error) {
    if (error instanceof UsageError) return error.message;
    throw error;
  }
  throw new Error(`'${line}' parsed without error`);
}

const USAGE_ERRORS: [line: string, message: string][] = [
  ['get', 'missing KEY'],
  ['get a b', "unexpected argument 'b'"],
  ['get "\\xff"', 'KEY must be valid UTF-8'],
  ['set k', 'missing VALUE'],
  ['set k v nx xx', 'nx and xx cannot be combined'],
  ['set k v ex', 'missing SECONDS'],
  ['set k v ex 0', "SECONDS must be a positive integer (got '0')"],
  ['set k v px -5', "MS must be a positive integer (got '-5')"],
  ['set k v px 10 ex 1', 'ex given after px: give one expiry'],
  ['set k v --ttl 5 keepttl', 'keepttl cannot be combined with --ttl'],
  ['set k v frob', "unknown option 'frob'"],
  ['del', 'missing KEY'],
  ['exists', 'missing KEY'],
  ['expire k', 'missing MS'],
  ['expire k soon', "MS must be a non-negative integer (got 'soon')"],
  ['persist', 'missing KEY'],
  ['ttl', 'missing KEY'],
  ['type', 'missing KEY'],
  ['keys a b', "unexpected argument 'b'"],
  ['keys --limit', 'missing --limit value'],
  ['keys --limit x', "--limit value must be a non-negative integer (got 'x')"],
  ['keys --bogus', "unknown option '--bogus'"],
  ['size x', "unexpected argument 'x'"],
  ['clear now', "unexpected argument 'now'"],
  ['lpush l', 'missing VALUE'],
  ['rpush', 'missing KEY'],
  ['lpop l 0', "COUNT must be a positive integer (got '0')"],
  ['rpop l 1 2', "unexpected argument '2'"],
  ['lindex l x', "INDEX must be an integer (got 'x')"],
  ['lset l 1', 'missing VALUE'],
  ['lrange l 0', 'missing STOP'],
  ['llen', 'missing KEY'],
  ['hset h', 'missing FIELD'],
  ['hset h f', "field 'f' has no VALUE (fields and values come in pairs)"],
  ['hset h f v g', "field 'g' has no VALUE (fields and values come in pairs)"],
  ['hget h', 'missing FIELD'],
  ['hdel h', 'missing FIELD'],
  ['hgetall', 'missing KEY'],
  ['hlen', 'missing KEY'],
  ['watch', 'missing KEY (use "" --prefix to watch every key)'],
  ['watch k --from -1', "--from value must be a non-negative integer (got '-1')"],
  ['watch k j', "unexpected argument 'j'"],
  ['cluster status now', "unexpected argument 'now'"],
  ['cluster members x', "unexpected argument 'x'"],
  ['cluster add n4 h:7104', 'missing CLIENTADDR'],
  ['cluster remove', 'missing ID'],
  ['cluster promote', 'missing ID'],
  ['cluster transfer n1 n2', "unexpected argument 'n2'"],
  ['cluster snapshot now', "unexpected argument 'now'"],
  ['cluster backup', 'missing FILE'],
  ['cluster', 'cluster: missing subcommand (one of status, members, add, remove, promote, transfer, snapshot, backup)'],
  ['cluster frob', "cluster: unknown subcommand 'frob' (one of status, members, add, remove, promote, transfer, snapshot, backup)"],
  ['frob', "unknown command 'frob' (try: help)"],
];

describe('usage errors name the problem', () => {
  it.each(USAGE_ERRORS)('%s', (line, message) => {
    expect(usageError(line)).toBe(message);
  });

  it('every command has a usage error case above', () => {
    const covered = new Set(USAGE_ERRORS.map(([line]) => {
      try {
        return lookup(line.split(' ')).command.name;
      } catch {
        return '';
      }
    }));
    expect(COMMANDS.map((c) => c.name).filter((name) => !covered.has(name))).toEqual([]);
  });

  it('names and options are case-insensitive', () => {
    expect(prepare('GET k').command.name).toBe('get');
    expect(prepare('Cluster STATUS').command.name).toBe('cluster status');
    expect(prepare('SET k v NX PX 100 GET').command.name).toBe('set');
    expect(prepare('dbsize').command.name).toBe('size');
    expect(prepare('FLUSHALL --yes').command.name).toBe('clear');
  });
});

// --- calls ---------------------------------------------------------------------

interface Call {
  method: string;
  args: unknown[];
}

/** Bytes (alone or in an array) as text, so expectations read plainly. */
function readable(arg: unknown): unknown {
  if (arg instanceof Uint8Array) return new TextDecoder().decode(arg);
  return Array.isArray(arg) ? arg.map(readable) : arg;
}

/** A QuorumClient stand-in that records calls and answers from `answers`. */
function recordingClient(answers: Record<string, unknown>): { client: QuorumClient; calls: Call[] } {
  const calls: Call[] = [];
  const client = new Proxy(
    {},
    {
      get: (_target, method: string) =>
        (...args: unknown[]) => {
          calls.push({ method, args: args.map(readable) });
          const answer = answers[method];
          return typeof answer === 'function' ? answer(...args) : Promise.resolve(answer);
        },
    },
  ) as QuorumClient;
  return { client, calls };
}

async function run(line: string, answers: Record<string, unknown>, options: { confirm?: boolean; serializable?: boolean } = {}) {
  const { client, calls } = recordingClient(answers);
  const signal = new AbortController().signal;
  const ctx: RunContext = {
    client,
    consistency: options.serializable === true ? 'serializable' : 'linearizable',
    signal,
    confirm: () => Promise.resolve(options.confirm ?? true),
  };
  const out: string[] = [];
  for await (const reply of prepare(line).invocation(ctx)) out.push(formatText(reply));
  return { calls, out: out.join('\n') };
}

const b = (s: string): Uint8Array => new TextEncoder().encode(s);
const read = { consistency: 'linearizable', signal: expect.any(AbortSignal) };
const write = { signal: expect.any(AbortSignal) };

describe('each command calls the client and prints the answer', () => {
  it.each<[string, Record<string, unknown>, string, unknown[], string]>([
    ['get k', { get: b('v') }, 'get', ['k', read], 'v'],
    ['get k', { get: null }, 'get', ['k', read], '(nil)'],
    ['set k "a b"', { set: { applied: true, previousFound: false, previous: null } }, 'set', ['k', 'a b', { ...write, ttlMs: 0, condition: 'always', keepTtl: false }], 'OK'],
    ['set k v nx ex 2', { set: { applied: false, previousFound: true, previous: b('old') } }, 'set', ['k', 'v', { ...write, ttlMs: 2000, condition: 'ifAbsent', keepTtl: false }], '(nil)'],
    ['set k v xx keepttl get', { set: { applied: true, previousFound: true, previous: b('old') } }, 'set', ['k', 'v', { ...write, ttlMs: 0, condition: 'ifPresent', keepTtl: true }], 'old'],
    ['set k v --ttl 1500', { set: { applied: true, previousFound: false, previous: null } }, 'set', ['k', 'v', { ...write, ttlMs: 1500, condition: 'always', keepTtl: false }], 'OK'],
    ['del a b', { del: 2 }, 'del', [['a', 'b'], write], '(integer) 2'],
    ['exists a a', { exists: 2 }, 'exists', [['a', 'a'], read], '(integer) 2'],
    ['expire k 500', { expire: true }, 'expire', ['k', 500, write], '(integer) 1'],
    ['persist k', { persist: false }, 'persist', ['k', write], '(integer) 0'],
    ['ttl k', { ttl: -1 }, 'ttl', ['k', read], '(integer) -1'],
    ['type k', { type: 'list' }, 'type', ['k', read], 'list'],
    ['size', { size: 12 }, 'size', [read], '(integer) 12'],
    ['clear', { clear: 12 }, 'clear', [write], '(integer) 12'],
    ['lpush l a b', { lpush: 2 }, 'lpush', ['l', ['a', 'b'], write], '(integer) 2'],
    ['rpush l a', { rpush: 3 }, 'rpush', ['l', ['a'], write], '(integer) 3'],
    ['lpop l', { lpop: [b('a')] }, 'lpop', ['l', undefined, write], 'a'],
    ['lpop l', { lpop: [] }, 'lpop', ['l', undefined, write], '(nil)'],
    ['rpop l 2', { rpop: [b('z'), b('y')] }, 'rpop', ['l', 2, write], '1) z\n2) y'],
    ['lindex l -1', { lindex: b('z') }, 'lindex', ['l', -1, read], 'z'],
    ['lset l 0 q', { lset: undefined }, 'lset', ['l', 0, 'q', write], 'OK'],
    ['lrange l 0 -1', { lrange: [b('a'), b('b')] }, 'lrange', ['l', 0, -1, read], '1) a\n2) b'],
    ['llen l', { llen: 2 }, 'llen', ['l', read], '(integer) 2'],
    ['hget h f', { hget: b('v') }, 'hget', ['h', 'f', read], 'v'],
    ['hdel h f g', { hdel: 1 }, 'hdel', ['h', ['f', 'g'], write], '(integer) 1'],
    ['hgetall h', { hgetall: new Map([['f', b('v')]]) }, 'hgetall', ['h', read], 'f => v'],
    ['hlen h', { hlen: 1 }, 'hlen', ['h', read], '(integer) 1'],
    ['cluster remove n3', { removeMember: { index: 9, members: [] } }, 'removeMember', ['n3', write], 'index:   9\nmembers: (empty)'],
    ['cluster promote n4', { promoteMember: { index: 10, members: [] } }, 'promoteMember', ['n4', write], 'index:   10\nmembers: (empty)'],
    ['cluster transfer n2', { transferLeadership: { leaderId: 'n2', term: 7 } }, 'transferLeadership', ['n2', write], 'leader id: n2\nterm:      7'],
    ['cluster snapshot', { snapshot: { index: 30, term: 7, sizeBytes: 4096 } }, 'snapshot', [write], 'index:      30\nterm:       7\nsize bytes: 4096'],
  ])('%s', async (line, answers, method, args, printed) => {
    const { calls, out } = await run(line, answers);
    expect(calls).toEqual([{ method, args }]);
    expect(out).toBe(printed);
  });

  it('hset sends field/value pairs', async () => {
    const { calls, out } = await run('hset h f1 v1 f2 "v 2"', { hset: 2 });
    expect(calls[0]?.args[1]).toEqual(new Map([['f1', b('v1')], ['f2', b('v 2')]]));
    expect(out).toBe('(integer) 2');
  });

  it('reads honour --serializable', async () => {
    const { calls } = await run('get k', { get: null }, { serializable: true });
    expect(calls[0]?.args[1]).toMatchObject({ consistency: 'serializable' });
  });

  it('keys follows the scan and stops at --limit', async () => {
    const scan = async function* () {
      yield* ['a', 'b', 'c'];
    };
    const { calls, out } = await run('keys user:* --limit 2', { scan });
    expect(calls[0]?.args[0]).toMatchObject({ pattern: 'user:*', pageSize: 2 });
    expect(out).toBe('1) a\n2) b');
    expect((await run('keys', { scan })).out).toBe('1) a\n2) b\n3) c');
  });

  it('clear asks first and does nothing when not confirmed', async () => {
    await expect(run('clear', { clear: 1 }, { confirm: false })).rejects.toThrow('clear: not confirmed; nothing was deleted');
    const { calls } = await run('clear --yes', { clear: 1 }, { confirm: false });
    expect(calls.map((c) => c.method)).toEqual(['clear']);
  });

  it('watch prints one line per event', async () => {
    const watch = async function* () {
      yield { index: 3, type: 'put', key: 'k', value: b('v'), valueType: 'string' };
      yield { index: 4, type: 'delete', key: 'k', value: null, valueType: 'none' };
    };
    const { calls, out } = await run('watch k --prefix --from 3', { watch });
    expect(calls[0]?.args).toEqual(['k', { prefix: true, fromIndex: 3, signal: expect.any(AbortSignal) }]);
    expect(out).toBe('3 PUT k v\n4 DELETE k');
  });

  it('cluster add and members print the membership as a table', async () => {
    const members = [
      { id: 'n1', peerAddress: 'h:7101', clientAddress: 'h:7001', kind: 'voter', leader: true, matchIndex: 20, lagEntries: 0 },
      { id: 'n4', peerAddress: 'h:7104', clientAddress: 'h:7004', kind: 'learner', leader: false, matchIndex: 12, lagEntries: 8 },
    ];
    const { calls, out } = await run('cluster add n4 h:7104 h:7004', { addMember: { index: 21, members } });
    expect(calls[0]?.args[0]).toEqual({ id: 'n4', peerAddress: 'h:7104', clientAddress: 'h:7004' });
    expect(out).toBe(
      [
        'index:   21',
        'members:',
        '  ID  KIND     LEADER  PEER ADDRESS  CLIENT ADDRESS  MATCH INDEX  LAG ENTRIES',
        '  n1  voter    true    h:7101        h:7001          20           0',
        '  n4  learner  false   h:7104        h:7004          12           8',
      ].join('\n'),
    );
    const listed = await run('cluster members', { members: { members, leaderId: 'n1', answeredBy: 'n1' } });
    expect(listed.out.split('\n').slice(0, 3)).toEqual(['leader id:   n1', 'answered by: n1', 'members:']);
  });
});
