/**
 * The interactive prompt: reads lines (node:readline), tokenizes them like
 * redis-cli, runs them through the command table and prints the replies.
 * History persists in a file. Ctrl-C stops the running command (a watch,
 * a call being retried); at an empty prompt it leaves, like Ctrl-D.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as readline from 'node:readline';
import { text, type Consistency, type QuorumClient } from '../client/index.ts';
import { UsageError } from './qkv-args.ts';
import { helpFor, overview } from './qkv-help.ts';
import { runCommand, type Printer } from './qkv-run.ts';
import { tokenize, TokenizeError } from './qkv-tokenize.ts';

export const HISTORY_LINES = 1000;

export interface ReplOptions {
  readonly input: NodeJS.ReadableStream;
  readonly output: NodeJS.WritableStream;
  /** A person at a terminal: line editing, Ctrl-C handling, confirmation questions. */
  readonly terminal: boolean;
  /** Show the prompt (default: when terminal). */
  readonly showPrompt?: boolean;
  /** Where history is kept; undefined: none. */
  readonly historyFile: string | undefined;
  readonly client: QuorumClient;
  readonly consistency: Consistency;
  readonly json: boolean;
  /** --yes: never ask. */
  readonly yes: boolean;
  /** Registers a Ctrl-C handler that readline does not see (input not a terminal). */
  readonly onInterrupt?: (handler: () => void) => () => void;
}

/** Lines as they arrive, read one at a time (so a command can ask a question and read the answer). */
class Lines {
  private readonly queued: string[] = [];
  private waiter: ((line: string | null) => void) | undefined;
  private ended = false;

  constructor(rl: readline.Interface) {
    rl.on('line', (line) => {
      if (this.waiter === undefined) this.queued.push(line);
      else this.take(line);
    });
    rl.on('close', () => {
      this.ended = true;
      this.take(null);
    });
  }

  next(): Promise<string | null> {
    const line = this.queued.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  private take(line: string | null): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(line);
  }
}

/** Runs the REPL until exit, quit or end of input; answers 0. */
export async function runRepl(options: ReplOptions): Promise<number> {
  const { client, output } = options;
  const showPrompt = options.showPrompt ?? options.terminal;
  const rl = readline.createInterface({
    input: options.input,
    output,
    terminal: options.terminal,
    history: loadHistory(options.historyFile),
    historySize: HISTORY_LINES,
    removeHistoryDuplicates: true,
  });
  const lines = new Lines(rl);
  const write = (text: string): void => void output.write(`${text}\n`);
  const print: Printer = { result: write, error: write };
  let running: AbortController | undefined;
  const interrupt = (): void => {
    if (running !== undefined) running.abort();
    else rl.close();
  };
  rl.on('SIGINT', interrupt);
  const stopListening = options.onInterrupt?.(interrupt);

  const ask = async (question: string): Promise<boolean> => {
    if (options.yes || !options.terminal) return true;
    output.write(question);
    const answer = await lines.next();
    return answer !== null && /^y(es)?$/i.test(answer.trim());
  };

  try {
    for (;;) {
      if (showPrompt) {
        rl.setPrompt(`${client.endpoint}> `);
        rl.prompt();
      }
      const line = await lines.next();
      if (line === null) break;
      if (line.trim() === '') continue;
      saveHistory(options.historyFile, line);
      let tokens: Uint8Array[];
      try {
        tokens = tokenize(line);
      } catch (error) {
        if (!(error instanceof TokenizeError)) throw error;
        write(`(error) ${error.message}`);
        continue;
      }
      const words = tokens.map(text);
      const first = (words[0] ?? '').toLowerCase();
      if (first === 'exit' || first === 'quit') break;
      if (first === 'help') {
        try {
          write(words.length === 1 ? overview() : helpFor(words.slice(1)));
        } catch (error) {
          if (!(error instanceof UsageError)) throw error;
          write(`(error) ${error.message}`);
        }
        continue;
      }
      running = new AbortController();
      try {
        await runCommand(tokens, { client, consistency: options.consistency, signal: running.signal, confirm: ask }, options.json, print);
      } finally {
        running = undefined;
      }
    }
  } finally {
    stopListening?.();
    rl.close();
  }
  return 0;
}

/** The saved history, newest first as readline wants it. A missing or unreadable file is an empty history. */
function loadHistory(file: string | undefined): string[] {
  if (file === undefined || !existsSync(file)) return [];
  try {
    const all = readFileSync(file, 'utf8').split('\n').filter((line) => line !== '');
    // Keep the file from growing without bound: rewrite it when it holds twice what is kept.
    if (all.length > 2 * HISTORY_LINES) writeFileSync(file, `${all.slice(-HISTORY_LINES).join('\n')}\n`);
    return all.slice(-HISTORY_LINES).reverse();
  } catch {
    return [];
  }
}

function saveHistory(file: string | undefined, line: string): void {
  if (file === undefined) return;
  try {
    appendFileSync(file, `${line.replaceAll('\n', ' ')}\n`);
  } catch {
    // History is a convenience: a read-only home directory must not stop the session.
  }
}
