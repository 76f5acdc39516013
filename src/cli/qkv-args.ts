/**
 * Reading a command's arguments: a cursor over the tokens that names the
 * missing or malformed argument in its error, so every usage error says
 * what is wrong before the usage line says what is right.
 */
import { strictText } from '../client/index.ts';

/** Bad usage: the message names the problem; the caller prints the command's usage beside it (exit 2). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A command could not run for a reason of the CLI's own (not the server's). Exit 1. */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandError';
  }
}

const encoder = new TextEncoder();

/** Arguments from a shell (already split and unquoted) as the bytes the tokenizer would give. */
export function argvTokens(argv: readonly string[]): Uint8Array[] {
  return argv.map((a) => encoder.encode(a));
}

export class Args {
  private i = 0;
  constructor(private readonly tokens: readonly Uint8Array[]) {}

  get remaining(): number {
    return this.tokens.length - this.i;
  }

  /** The next argument as bytes (a value); `name` is how the usage line calls it. */
  bytes(name: string): Uint8Array {
    const token = this.tokens[this.i];
    if (token === undefined) throw new UsageError(`missing ${name}`);
    this.i++;
    return token;
  }

  /** The next argument as text (a key, a field, an option): it must be valid UTF-8. */
  text(name: string): string {
    const token = this.bytes(name);
    const s = strictText(token);
    if (s === null) throw new UsageError(`${name} must be valid UTF-8`);
    return s;
  }

  /** The next argument as text, lower-cased for matching, or undefined at the end. */
  peekWord(): string | undefined {
    const token = this.tokens[this.i];
    return token === undefined ? undefined : (strictText(token) ?? '').toLowerCase();
  }

  /** A signed integer (list indexes). */
  int(name: string): number {
    const s = this.text(name);
    const n = /^[+-]?\d+$/.test(s) ? Number(s) : Number.NaN;
    if (!Number.isSafeInteger(n)) throw new UsageError(`${name} must be an integer (got '${s}')`);
    return n;
  }

  /** A non-negative integer; `min` 1 for counts and durations that cannot be zero. */
  uint(name: string, min = 0): number {
    const s = this.text(name);
    const n = /^\+?\d+$/.test(s) ? Number(s) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${name} must be ${min === 0 ? 'a non-negative' : 'a positive'} integer (got '${s}')`);
    return n;
  }

  /** Every argument left as text; at least `min` of them. */
  restText(name: string, min = 1): string[] {
    if (this.remaining < min) throw new UsageError(`missing ${name}`);
    const out: string[] = [];
    while (this.remaining > 0) out.push(this.text(name));
    return out;
  }

  /** Every argument left as bytes; at least `min` of them. */
  restBytes(name: string, min = 1): Uint8Array[] {
    if (this.remaining < min) throw new UsageError(`missing ${name}`);
    return this.tokens.slice(this.i, (this.i = this.tokens.length));
  }

  /** No argument may be left. */
  end(): void {
    const token = this.tokens[this.i];
    if (token !== undefined) throw new UsageError(`unexpected argument '${strictText(token) ?? '(binary)'}'`);
  }
}
