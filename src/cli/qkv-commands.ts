/**
 * The qkv command table: for each command its name, usage, how its
 * arguments are read, how it calls the client and how its answer is shown.
 * One-shot mode, the REPL and help all read this table.
 */
import { open, rename, rm } from 'node:fs/promises';
import type { Consistency, Member, QuorumClient, SetCondition } from '../client/index.ts';
import { Args, CommandError, UsageError } from './qkv-args.ts';
import { byteList, bytesOrNil, integer, NIL, OK, type Reply } from './qkv-reply.ts';

export interface RunContext {
  readonly client: QuorumClient;
  /** Consistency of reads (--serializable). */
  readonly consistency: Consistency;
  /** Fires on Ctrl-C: calls are cancelled, a watch ends. */
  readonly signal: AbortSignal;
  /** Asks a yes/no question when a person is at a terminal; true when --yes was given or nobody is there to ask. */
  confirm(question: string): Promise<boolean>;
}

export type Group = 'keys' | 'strings' | 'lists' | 'hashes' | 'watch' | 'cluster';

/** A parsed command line, ready to run. */
export type Invocation = (ctx: RunContext) => AsyncIterable<Reply>;

export interface Command {
  /** Lower-case; subcommands are "cluster status". */
  readonly name: string;
  readonly aliases: readonly string[];
  /** The arguments part of the usage line. */
  readonly args: string;
  readonly summary: string;
  /** Further help lines. */
  readonly details: readonly string[];
  readonly group: Group;
  /** Reads the arguments; throws UsageError naming the problem. */
  prepare(tokens: readonly Uint8Array[]): Invocation;
}

interface Spec<A, R> {
  readonly name: string;
  readonly aliases?: readonly string[];
  readonly args: string;
  readonly summary: string;
  readonly details?: readonly string[];
  readonly group: Group;
  parse(args: Args): A;
  call(ctx: RunContext, args: A): Promise<R> | AsyncIterable<R>;
  reply(result: R, args: A): Reply;
}

function command<A, R>(spec: Spec<A, R>): Command {
  return {
    name: spec.name,
    aliases: spec.aliases ?? [],
    args: spec.args,
    summary: spec.summary,
    details: spec.details ?? [],
    group: spec.group,
    prepare(tokens) {
      const reader = new Args(tokens);
      const args = spec.parse(reader);
      reader.end();
      return async function* run(ctx) {
        const result = spec.call(ctx, args);
        if (Symbol.asyncIterator in result) {
          for await (const item of result) yield spec.reply(item, args);
        } else {
          yield spec.reply(await result, args);
        }
      };
    },
  };
}

const read = (ctx: RunContext) => ({ consistency: ctx.consistency, signal: ctx.signal });
const write = (ctx: RunContext) => ({ signal: ctx.signal });

/** A command of one KEY argument. */
function keyOnly<R>(spec: Omit<Spec<string, R>, 'parse' | 'args'>): Command {
  return command({ ...spec, args: 'KEY', parse: (a) => a.text('KEY') });
}

// --- set's options -----------------------------------------------------------

interface SetArgs {
  readonly key: string;
  readonly value: Uint8Array;
  readonly ttlMs: number;
  readonly condition: SetCondition;
  readonly keepTtl: boolean;
  readonly get: boolean;
}

function parseSet(a: Args): SetArgs {
  const key = a.text('KEY');
  const value = a.bytes('VALUE');
  let ttlMs = 0;
  let ttlGiven: string | undefined;
  let condition: SetCondition = 'always';
  let keepTtl = false;
  let get = false;
  for (let word = a.peekWord(); word !== undefined; word = a.peekWord()) {
    a.text('option');
    if (word === '--ttl' || word === 'px' || word === 'ex') {
      if (ttlGiven !== undefined) throw new UsageError(`${word} given after ${ttlGiven}: give one expiry`);
      ttlGiven = word;
      ttlMs = word === 'ex' ? a.uint('SECONDS', 1) * 1000 : a.uint('MS', 1);
      if (!Number.isSafeInteger(ttlMs)) throw new UsageError('SECONDS is too large');
    } else if (word === 'nx' || word === 'xx') {
      if (condition !== 'always') throw new UsageError('nx and xx cannot be combined');
      condition = word === 'nx' ? 'ifAbsent' : 'ifPresent';
    } else if (word === 'keepttl') {
      keepTtl = true;
    } else if (word === 'get') {
      get = true;
    } else {
      throw new UsageError(`unknown option '${word}'`);
    }
  }
  if (keepTtl && ttlGiven !== undefined) throw new UsageError(`keepttl cannot be combined with ${ttlGiven}`);
  return { key, value, ttlMs, condition, keepTtl, get };
}

// --- flags of keys, watch, clear -------------------------------------------

/** Reads `--flag` / `--flag VALUE` options and at most `positional.length` positional arguments, in any order. */
function withFlags<F extends Record<string, 'bool' | 'uint'>>(
  a: Args,
  flags: F,
  positional: readonly string[],
): { readonly flags: { [K in keyof F]?: F[K] extends 'bool' ? true : number }; readonly positional: string[] } {
  const out: Record<string, true | number> = {};
  const values: string[] = [];
  while (a.remaining > 0) {
    const word = a.peekWord() ?? '';
    const flag = word.startsWith('--') ? word.slice(2) : undefined;
    if (flag !== undefined && flag in flags) {
      a.text('option');
      out[flag] = flags[flag] === 'bool' ? true : a.uint(`--${flag} value`);
    } else if (flag !== undefined && flag !== '') {
      throw new UsageError(`unknown option '${word}'`);
    } else {
      const name = positional[values.length];
      if (name === undefined) a.end();
      values.push(a.text(name ?? ''));
    }
  }
  return { flags: out as { [K in keyof F]?: F[K] extends 'bool' ? true : number }, positional: values };
}

// --- cluster output ----------------------------------------------------------

const MEMBER_COLUMNS = ['id', 'kind', 'leader', 'peerAddress', 'clientAddress', 'matchIndex', 'lagEntries'];

function membersTable(members: readonly Member[]): Reply {
  return { kind: 'table', columns: MEMBER_COLUMNS, rows: members.map((m) => [m.id, m.kind, m.leader, m.peerAddress, m.clientAddress, m.matchIndex, m.lagEntries]) };
}

async function writeBackup(ctx: RunContext, file: string): Promise<{ file: string; bytes: number; index: number; term: number }> {
  // Written beside the target and renamed at the end, so a failed backup never leaves a truncated file under the name asked for.
  const partial = `${file}.partial`;
  const handle = await open(partial, 'w');
  let written = 0;
  let meta = { index: 0, term: 0, sizeBytes: -1 };
  try {
    for await (const chunk of ctx.client.backup({ signal: ctx.signal })) {
      if (chunk.offset !== written) throw new CommandError(`backup: the node sent a chunk at offset ${chunk.offset} where ${written} was expected`);
      await handle.write(chunk.data);
      written += chunk.data.length;
      meta = chunk;
    }
    if (meta.sizeBytes < 0) throw new CommandError('backup: the node has no snapshot to send (take one with: qkv cluster snapshot)');
    if (written !== meta.sizeBytes) throw new CommandError(`backup: the stream ended after ${written} of ${meta.sizeBytes} bytes`);
    await handle.sync();
    await handle.close();
  } catch (error) {
    await handle.close();
    await rm(partial, { force: true });
    throw error;
  }
  await rename(partial, file);
  return { file, bytes: written, index: meta.index, term: meta.term };
}

// --- the table ---------------------------------------------------------------

export const COMMANDS: readonly Command[] = [
  // keys
  command({
    name: 'del',
    aliases: ['delete'],
    args: 'KEY [KEY ...]',
    summary: 'Deletes keys of any type; answers how many existed.',
    group: 'keys',
    parse: (a) => a.restText('KEY'),
    call: (ctx, keys) => ctx.client.del(keys, write(ctx)),
    reply: integer,
  }),
  command({
    name: 'exists',
    args: 'KEY [KEY ...]',
    summary: 'How many of the keys exist (a key given twice counts twice).',
    group: 'keys',
    parse: (a) => a.restText('KEY'),
    call: (ctx, keys) => ctx.client.exists(keys, read(ctx)),
    reply: integer,
  }),
  command({
    name: 'expire',
    aliases: ['pexpire'],
    args: 'KEY MS',
    summary: "Sets a key's time to live in milliseconds (0 removes it); 1 if the key exists, else 0.",
    group: 'keys',
    parse: (a) => ({ key: a.text('KEY'), ms: a.uint('MS') }),
    call: (ctx, { key, ms }) => ctx.client.expire(key, ms, write(ctx)),
    reply: integer,
  }),
  keyOnly({
    name: 'persist',
    summary: "Removes a key's time to live; 1 if it had one, else 0.",
    group: 'keys',
    call: (ctx, key) => ctx.client.persist(key, write(ctx)),
    reply: integer,
  }),
  keyOnly({
    name: 'ttl',
    aliases: ['pttl'],
    summary: 'Milliseconds a key has left; -1: no expiry, -2: no such key.',
    group: 'keys',
    call: (ctx, key) => ctx.client.ttl(key, read(ctx)),
    reply: integer,
  }),
  keyOnly({
    name: 'type',
    summary: 'The type a key holds: string, list, hash or none.',
    group: 'keys',
    call: (ctx, key) => ctx.client.type(key, read(ctx)),
    reply: (type) => ({ kind: 'status', text: type }),
  }),
  command({
    name: 'keys',
    args: '[PATTERN] [--limit N]',
    summary: 'The keys matching a glob (* ? [a-z] [^a], \\ escapes); all keys when no pattern.',
    details: ['Follows the server\'s cursors to the end, or until N keys were listed.'],
    group: 'keys',
    parse: (a) => {
      const { flags, positional } = withFlags(a, { limit: 'uint' }, ['PATTERN']);
      return { pattern: positional[0] ?? '*', limit: flags.limit ?? 0 };
    },
    call: async (ctx, { pattern, limit }) => {
      const keys: string[] = [];
      for await (const key of ctx.client.scan({ ...read(ctx), pattern, pageSize: limit })) {
        keys.push(key);
        if (keys.length === limit) break;
      }
      return keys;
    },
    reply: (keys) => ({ kind: 'list', items: keys.map((value) => ({ kind: 'text', value })) }),
  }),
  command({
    name: 'size',
    aliases: ['dbsize'],
    args: '',
    summary: 'The number of keys.',
    group: 'keys',
    parse: () => null,
    call: (ctx) => ctx.client.size(read(ctx)),
    reply: integer,
  }),
  command({
    name: 'clear',
    aliases: ['flushall'],
    args: '[--yes]',
    summary: 'Deletes every key; answers how many there were.',
    details: ['Asks for confirmation at a terminal unless --yes is given.'],
    group: 'keys',
    parse: (a) => withFlags(a, { yes: 'bool' }, []).flags.yes === true,
    call: async (ctx, yes) => {
      if (!yes && !(await ctx.confirm('Delete every key in the cluster? [y/N] '))) throw new CommandError('clear: not confirmed; nothing was deleted');
      return ctx.client.clear(write(ctx));
    },
    reply: integer,
  }),

  // strings
  keyOnly({
    name: 'get',
    summary: 'The string value of a key; (nil) when missing.',
    group: 'strings',
    call: (ctx, key) => ctx.client.get(key, read(ctx)),
    reply: bytesOrNil,
  }),
  command({
    name: 'set',
    args: 'KEY VALUE [--ttl MS | px MS | ex SECONDS] [nx | xx] [keepttl] [get]',
    summary: 'Sets a key to a string value, replacing a value of any type.',
    details: [
      '--ttl MS / px MS / ex SECONDS: expire after that long.',
      'nx: only if the key does not exist; xx: only if it does. Answers (nil) when not set.',
      'keepttl: keep the current expiry. get: answer the previous value instead of OK.',
    ],
    group: 'strings',
    parse: parseSet,
    call: (ctx, a) => ctx.client.set(a.key, a.value, { ...write(ctx), ttlMs: a.ttlMs, condition: a.condition, keepTtl: a.keepTtl }),
    reply: (result, a) => (a.get ? bytesOrNil(result.previous) : result.applied ? OK : NIL),
  }),

  // lists
  ...(['lpush', 'rpush'] as const).map((name) =>
    command({
      name,
      args: 'KEY VALUE [VALUE ...]',
      summary: name === 'lpush' ? 'Prepends values to a list (a b c leaves c first); answers the length.' : 'Appends values to a list; answers the length.',
      group: 'lists',
      parse: (a) => ({ key: a.text('KEY'), values: a.restBytes('VALUE') }),
      call: (ctx, { key, values }) => ctx.client[name](key, values, write(ctx)),
      reply: integer,
    }),
  ),
  ...(['lpop', 'rpop'] as const).map((name) =>
    command({
      name,
      args: 'KEY [COUNT]',
      summary: `Removes and returns the ${name === 'lpop' ? 'first' : 'last'} value, or up to COUNT values as a list.`,
      group: 'lists',
      parse: (a) => ({ key: a.text('KEY'), count: a.remaining > 0 ? a.uint('COUNT', 1) : undefined }),
      call: (ctx, { key, count }) => ctx.client[name](key, count, write(ctx)),
      reply: (values, { count }) => (count === undefined ? bytesOrNil(values[0]) : byteList(values)),
    }),
  ),
  command({
    name: 'lindex',
    args: 'KEY INDEX',
    summary: 'The list element at INDEX (negative counts from the end); (nil) outside the list.',
    group: 'lists',
    parse: (a) => ({ key: a.text('KEY'), index: a.int('INDEX') }),
    call: (ctx, { key, index }) => ctx.client.lindex(key, index, read(ctx)),
    reply: bytesOrNil,
  }),
  command({
    name: 'lset',
    args: 'KEY INDEX VALUE',
    summary: 'Replaces the list element at INDEX (OUT_OF_RANGE outside the list).',
    group: 'lists',
    parse: (a) => ({ key: a.text('KEY'), index: a.int('INDEX'), value: a.bytes('VALUE') }),
    call: (ctx, { key, index, value }) => ctx.client.lset(key, index, value, write(ctx)),
    reply: () => OK,
  }),
  command({
    name: 'lrange',
    args: 'KEY START STOP',
    summary: 'List elements START..STOP, inclusive, negative from the end (0 -1: all).',
    group: 'lists',
    parse: (a) => ({ key: a.text('KEY'), start: a.int('START'), stop: a.int('STOP') }),
    call: (ctx, { key, start, stop }) => ctx.client.lrange(key, start, stop, read(ctx)),
    reply: byteList,
  }),
  keyOnly({
    name: 'llen',
    summary: 'The length of a list (0 when missing).',
    group: 'lists',
    call: (ctx, key) => ctx.client.llen(key, read(ctx)),
    reply: integer,
  }),

  // hashes
  command({
    name: 'hset',
    args: 'KEY FIELD VALUE [FIELD VALUE ...]',
    summary: 'Sets hash fields; answers how many were new.',
    group: 'hashes',
    parse: (a) => {
      const key = a.text('KEY');
      const fields = new Map<string, Uint8Array>();
      do {
        const field = a.text('FIELD');
        if (a.remaining === 0) throw new UsageError(`field '${field}' has no VALUE (fields and values come in pairs)`);
        fields.set(field, a.bytes('VALUE'));
      } while (a.remaining > 0);
      return { key, fields };
    },
    call: (ctx, { key, fields }) => ctx.client.hset(key, fields, write(ctx)),
    reply: integer,
  }),
  command({
    name: 'hget',
    args: 'KEY FIELD',
    summary: 'The value of a hash field; (nil) when missing.',
    group: 'hashes',
    parse: (a) => ({ key: a.text('KEY'), field: a.text('FIELD') }),
    call: (ctx, { key, field }) => ctx.client.hget(key, field, read(ctx)),
    reply: bytesOrNil,
  }),
  command({
    name: 'hdel',
    args: 'KEY FIELD [FIELD ...]',
    summary: 'Deletes hash fields; answers how many existed.',
    group: 'hashes',
    parse: (a) => ({ key: a.text('KEY'), fields: a.restText('FIELD') }),
    call: (ctx, { key, fields }) => ctx.client.hdel(key, fields, write(ctx)),
    reply: integer,
  }),
  keyOnly({
    name: 'hgetall',
    summary: 'Every field and value of a hash.',
    group: 'hashes',
    call: (ctx, key) => ctx.client.hgetall(key, read(ctx)),
    reply: (fields) => ({ kind: 'hash', fields: [...fields] }),
  }),
  keyOnly({
    name: 'hlen',
    summary: 'The number of fields in a hash (0 when missing).',
    group: 'hashes',
    call: (ctx, key) => ctx.client.hlen(key, read(ctx)),
    reply: integer,
  }),

  // watch
  command({
    name: 'watch',
    args: 'KEY [--prefix] [--from INDEX]',
    summary: 'Prints the changes to a key (or every key under a prefix) as they happen, until Ctrl-C.',
    details: [
      'Each line: INDEX TYPE KEY [VALUE], TYPE one of PUT DELETE EXPIRE EVICT.',
      '--from INDEX: first the changes made by log entries from INDEX on.',
      'Reconnects by itself, without missing or repeating a change.',
    ],
    group: 'watch',
    parse: (a) => {
      const { flags, positional } = withFlags(a, { prefix: 'bool', from: 'uint' }, ['KEY']);
      const key = positional[0];
      if (key === undefined) throw new UsageError('missing KEY (use "" --prefix to watch every key)');
      return { key, prefix: flags.prefix === true, fromIndex: flags.from ?? 0 };
    },
    call: (ctx, { key, prefix, fromIndex }) => ctx.client.watch(key, { prefix, fromIndex, signal: ctx.signal }),
    reply: (event) => ({ kind: 'event', event }),
  }),

  // cluster
  command({
    name: 'cluster status',
    args: '',
    summary: "The node's view: role, term, leader, log positions, keys, memory, state digest.",
    group: 'cluster',
    parse: () => null,
    call: (ctx) => ctx.client.status({ signal: ctx.signal }),
    reply: (status) => ({ kind: 'record', fields: Object.entries(status) }),
  }),
  command({
    name: 'cluster members',
    args: '',
    summary: 'The members, voters then learners, with replication progress as the leader sees it.',
    group: 'cluster',
    parse: () => null,
    call: (ctx) => ctx.client.members({ signal: ctx.signal }),
    reply: (m) => ({
      kind: 'record',
      fields: [
        ['leaderId', m.leaderId],
        ['answeredBy', m.answeredBy],
        ['members', membersTable(m.members)],
      ],
    }),
  }),
  command({
    name: 'cluster add',
    args: 'ID PEERADDR CLIENTADDR',
    summary: 'Adds a member as a learner (then start it with --join, and promote it once caught up).',
    group: 'cluster',
    parse: (a) => ({ id: a.text('ID'), peerAddress: a.text('PEERADDR'), clientAddress: a.text('CLIENTADDR') }),
    call: (ctx, member) => ctx.client.addMember(member, { signal: ctx.signal }),
    reply: (change) => changeRecord(change),
  }),
  ...(
    [
      ['remove', 'Removes a member (voter or learner).', 'removeMember'],
      ['promote', 'Makes a caught-up learner a voter.', 'promoteMember'],
    ] as const
  ).map(([sub, summary, method]) =>
    command({
      name: `cluster ${sub}`,
      args: 'ID',
      summary,
      group: 'cluster',
      parse: (a) => a.text('ID'),
      call: (ctx, id) => ctx.client[method](id, { signal: ctx.signal }),
      reply: (change) => changeRecord(change),
    }),
  ),
  command({
    name: 'cluster transfer',
    args: 'ID',
    summary: 'Hands leadership to a voter; answers once it leads.',
    group: 'cluster',
    parse: (a) => a.text('ID'),
    call: (ctx, id) => ctx.client.transferLeadership(id, { signal: ctx.signal }),
    reply: (t) => ({ kind: 'record', fields: Object.entries(t) }),
  }),
  command({
    name: 'cluster snapshot',
    args: '',
    summary: 'Takes a snapshot on the node now and compacts its log.',
    group: 'cluster',
    parse: () => null,
    call: (ctx) => ctx.client.snapshot({ signal: ctx.signal }),
    reply: (s) => ({ kind: 'record', fields: Object.entries(s) }),
  }),
  command({
    name: 'cluster backup',
    args: 'FILE',
    summary: "Saves the node's latest snapshot (a SQLite database) to FILE.",
    details: ['Take a snapshot first (cluster snapshot) for an up-to-date backup.'],
    group: 'cluster',
    parse: (a) => a.text('FILE'),
    call: writeBackup,
    reply: (b) => ({ kind: 'record', fields: Object.entries(b) }),
  }),
];

function changeRecord(change: { index: number; members: readonly Member[] }): Reply {
  return {
    kind: 'record',
    fields: [
      ['index', change.index],
      ['members', membersTable(change.members)],
    ],
  };
}

/** Every name a command answers to, lower-case. */
function namesOf(c: Command): string[] {
  const [group] = c.name.split(' ');
  return [c.name, ...c.aliases.map((alias) => (c.name.includes(' ') ? `${group} ${alias}` : alias))];
}

const BY_NAME = new Map<string, Command>(COMMANDS.flatMap((c) => namesOf(c).map((name) => [name, c] as const)));

/** The names that take a subcommand ("cluster"). */
export const COMMAND_GROUPS: ReadonlySet<string> = new Set(COMMANDS.filter((c) => c.name.includes(' ')).map((c) => c.name.split(' ')[0] ?? ''));

export interface Lookup {
  readonly command: Command;
  /** How many tokens the name took (1, or 2 for "cluster status"). */
  readonly nameTokens: number;
}

/** The command a line starts with (case-insensitive), or a UsageError naming what is unknown. */
export function lookup(words: readonly string[]): Lookup {
  const first = (words[0] ?? '').toLowerCase();
  if (COMMAND_GROUPS.has(first)) {
    const second = (words[1] ?? '').toLowerCase();
    const subs = COMMANDS.filter((c) => c.name.startsWith(`${first} `)).map((c) => c.name.slice(first.length + 1));
    if (second === '') throw new UsageError(`${first}: missing subcommand (one of ${subs.join(', ')})`);
    const command = BY_NAME.get(`${first} ${second}`);
    if (command === undefined) throw new UsageError(`${first}: unknown subcommand '${words[1] ?? ''}' (one of ${subs.join(', ')})`);
    return { command, nameTokens: 2 };
  }
  const command = BY_NAME.get(first);
  if (command === undefined) throw new UsageError(`unknown command '${words[0] ?? ''}' (try: help)`);
  return { command, nameTokens: 1 };
}

/** "set KEY VALUE ..." */
export function usageOf(command: Command): string {
  return command.args === '' ? command.name : `${command.name} ${command.args}`;
}
