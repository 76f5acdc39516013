/** Help text, written from the command table. */
import { COMMAND_GROUPS, COMMANDS, lookup, usageOf, type Command, type Group } from './qkv-commands.ts';

export const GLOBAL_USAGE =
  'usage: qkv [--endpoints HOST:PORT,...] [--cacert FILE [--cert FILE --key FILE]] [--token TOKEN] [--json] [--timeout MS] [--serializable] [--yes] [COMMAND [ARG ...]]';

const GROUP_TITLES: Readonly<Record<Group, string>> = {
  keys: 'Keys',
  strings: 'Strings',
  lists: 'Lists',
  hashes: 'Hashes',
  watch: 'Watching',
  cluster: 'Cluster administration',
};

const USAGE_WIDTH = 36;

const OPTIONS = [
  '  --endpoints HOST:PORT,...  nodes to talk to (default: $QUORUMKV_ENDPOINTS, else 127.0.0.1:7001)',
  '  --cacert FILE              TLS: the CA the nodes\' certificates chain to (default: $QKV_CACERT)',
  '  --cert FILE --key FILE     TLS: a client certificate and its key (default: $QKV_CERT, $QKV_KEY)',
  '  --json                     one JSON document per result; values as {"utf8": ...} or {"base64": ...}',
  '  --timeout MS               deadline of each command, retries included (default 10000)',
  '  --token TOKEN              bearer token when the cluster has authentication on (default: $QKV_TOKEN)',
  '  --serializable             serve reads from the node asked (faster, possibly stale)',
  '  --yes                      do not ask for confirmation (clear)',
];

const REPL_NOTES = [
  'Without a command, qkv starts an interactive prompt. Quote arguments like redis-cli:',
  '"a b" (escapes \\n \\t \\" \\\\ \\xHH), \'x\' (literal). help COMMAND; exit, quit or Ctrl-D to leave.',
];

/** The overview: every command by group, with options and REPL notes. */
export function overview(): string {
  const lines = [GLOBAL_USAGE, '', 'Options:', ...OPTIONS];
  for (const group of Object.keys(GROUP_TITLES) as Group[]) {
    lines.push('', `${GROUP_TITLES[group]}:`);
    for (const c of COMMANDS.filter((cmd) => cmd.group === group)) {
      const usage = usageOf(c);
      // A long usage line gets its summary on the next line, so one long command does not push every summary right.
      if (usage.length > USAGE_WIDTH) lines.push(`  ${usage}`, `  ${''.padEnd(USAGE_WIDTH)}  ${c.summary}`);
      else lines.push(`  ${usage.padEnd(USAGE_WIDTH)}  ${c.summary}`);
    }
  }
  lines.push('', ...REPL_NOTES);
  return lines.join('\n');
}

/** Help for `help WORDS...`: one command, or every subcommand of a group. Throws UsageError for unknown names. */
export function helpFor(words: readonly string[]): string {
  const first = (words[0] ?? '').toLowerCase();
  if (COMMAND_GROUPS.has(first) && words.length === 1) {
    return COMMANDS.filter((c) => c.name.startsWith(`${first} `))
      .map(commandHelp)
      .join('\n\n');
  }
  return commandHelp(lookup(words).command);
}

export function commandHelp(c: Command): string {
  const aliases = c.aliases.length === 0 ? [] : [`  also: ${c.aliases.join(', ')}`];
  return [`usage: ${usageOf(c)}`, `  ${c.summary}`, ...c.details.map((d) => `  ${d}`), ...aliases].join('\n');
}
