/**
 * qkv: reads the global options, then runs one command or the REPL. All
 * process state (arguments, environment, streams, Ctrl-C) comes in through
 * QkvIo, so tests drive it with streams.
 */
import * as path from 'node:path';
import * as readline from 'node:readline';
import { QuorumClient } from '../client/index.ts';
import { argvTokens, UsageError } from './qkv-args.ts';
import { GLOBAL_USAGE, helpFor, overview } from './qkv-help.ts';
import { parseGlobalOptions } from './qkv-options.ts';
import { runRepl } from './qkv-repl.ts';
import { EXIT_OK, EXIT_USAGE, runCommand } from './qkv-run.ts';

export interface QkvIo {
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdin: NodeJS.ReadableStream;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** stdin and stdout are a terminal: a person can be asked, and edits lines at the prompt. */
  readonly interactive: boolean;
  readonly homeDir: string;
  /** Registers a Ctrl-C handler; returns a function that removes it. */
  readonly onInterrupt?: (handler: () => void) => () => void;
}

/** Runs qkv; resolves to the exit status. */
export async function main(io: QkvIo): Promise<number> {
  const line = (stream: NodeJS.WritableStream) => (text: string) => void stream.write(`${text}\n`);
  const out = line(io.stdout);
  const err = line(io.stderr);

  let options;
  try {
    options = parseGlobalOptions(io.argv, io.env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err(`(error) ${error.message}`);
    err(GLOBAL_USAGE);
    return EXIT_USAGE;
  }
  const [first, ...rest] = options.command;
  if (options.help || first?.toLowerCase() === 'help') {
    try {
      out(rest.length === 0 ? overview() : helpFor(rest));
      return EXIT_OK;
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      err(`(error) ${error.message}`);
      return EXIT_USAGE;
    }
  }

  let client: QuorumClient;
  try {
    client = new QuorumClient({
      endpoints: options.endpoints,
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(options.tls === null ? {} : { tls: options.tls }),
      ...(options.token === undefined ? {} : { token: options.token }),
    });
  } catch (error) {
    // An unreadable --cacert/--cert/--key file.
    if (!(error instanceof RangeError)) throw error;
    err(`(error) ${error.message}`);
    return EXIT_USAGE;
  }
  const consistency = options.serializable ? 'serializable' : 'linearizable';
  try {
    if (first === undefined) {
      return await runRepl({
        input: io.stdin,
        output: io.stdout,
        terminal: io.interactive,
        historyFile: io.env['QKV_HISTORY_FILE'] ?? path.join(io.homeDir, '.qkv_history'),
        client,
        consistency,
        json: options.json,
        yes: options.yes,
        ...(io.onInterrupt === undefined ? {} : { onInterrupt: io.onInterrupt }),
      });
    }
    const controller = new AbortController();
    const stopListening = io.onInterrupt?.(() => controller.abort());
    try {
      const confirm = (question: string): Promise<boolean> => (options.yes || !io.interactive ? Promise.resolve(true) : ask(io, question));
      return await runCommand(argvTokens(options.command), { client, consistency, signal: controller.signal, confirm }, options.json, { result: out, error: err });
    } finally {
      stopListening?.();
    }
  } finally {
    client.close();
  }
}

async function ask(io: QkvIo, question: string): Promise<boolean> {
  const rl = readline.createInterface({ input: io.stdin, output: io.stdout });
  try {
    const answer = await new Promise<string>((resolve) => {
      // Ctrl-C at the question is a no.
      rl.on('SIGINT', () => resolve(''));
      rl.question(question, resolve);
    });
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
