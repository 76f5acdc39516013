/**
 * Runs one command line: finds the command, reads its arguments, calls it
 * and prints each reply, or prints the one-line error. Shared by one-shot
 * mode and the REPL; returns the exit status (0 done, 1 failed, 2 bad usage,
 * 130 interrupted).
 */
import { QuorumError, strictText } from '../client/index.ts';
import { CommandError, UsageError } from './qkv-args.ts';
import { lookup, usageOf, type RunContext } from './qkv-commands.ts';
import { formatJson, formatText } from './qkv-format.ts';

export interface Printer {
  /** A result (one or more lines, no trailing newline). */
  result(text: string): void;
  /** An error or usage line. */
  error(text: string): void;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

export async function runCommand(tokens: readonly Uint8Array[], ctx: RunContext, json: boolean, print: Printer): Promise<number> {
  const words = tokens.slice(0, 2).map((t) => strictText(t) ?? '');
  let found;
  try {
    found = lookup(words);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    print.error(`(error) ${error.message}`);
    return EXIT_USAGE;
  }
  const { command, nameTokens } = found;
  let invocation;
  try {
    invocation = command.prepare(tokens.slice(nameTokens));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    print.error(`(error) ${command.name}: ${error.message}`);
    print.error(`usage: ${usageOf(command)}`);
    return EXIT_USAGE;
  }
  try {
    for await (const reply of invocation(ctx)) print.result(json ? formatJson(reply) : formatText(reply));
    return EXIT_OK;
  } catch (error) {
    if (ctx.signal.aborted) {
      print.error('(interrupted)');
      return EXIT_INTERRUPTED;
    }
    if (error instanceof QuorumError) {
      print.error(`(error) ${error.message}${error.attempts > 1 ? ` (gave up after ${error.attempts} attempts)` : ''}`);
      return EXIT_FAILED;
    }
    if (error instanceof CommandError) {
      print.error(`(error) ${error.message}`);
      return EXIT_FAILED;
    }
    // Local failures (a backup file that cannot be written): one line, no stack.
    print.error(`(error) ${command.name}: ${error instanceof Error ? error.message : String(error)}`);
    return EXIT_FAILED;
  }
}
