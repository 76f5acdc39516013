/**
 * Splits a REPL line into arguments the way redis-cli does (sdssplitargs):
 * whitespace separates; "double quotes" understand \n \r \t \b \a \\ \" and
 * \xHH (any byte, so binary values can be typed); 'single quotes' take
 * everything literally except \'. A closing quote must end the argument.
 * Arguments are bytes: a value may be any byte string, while keys and
 * options are decoded as UTF-8 where they are read (qkv-args.ts).
 */

export class TokenizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizeError';
  }
}

const encoder = new TextEncoder();
const WHITESPACE = new Set([' ', '\t', '\n', '\r', '\v', '\f', '\0']);
const ESCAPES: Readonly<Record<string, number>> = { n: 0x0a, r: 0x0d, t: 0x09, b: 0x08, a: 0x07 };

export function tokenize(line: string): Uint8Array[] {
  const tokens: Uint8Array[] = [];
  const chars = [...line];
  let i = 0;
  while (i < chars.length) {
    while (i < chars.length && WHITESPACE.has(chars[i] ?? '')) i++;
    if (i >= chars.length) break;
    const bytes: number[] = [];
    const pushText = (s: string): void => {
      for (const b of encoder.encode(s)) bytes.push(b);
    };
    for (; i < chars.length && !WHITESPACE.has(chars[i] ?? ''); ) {
      const c = chars[i] ?? '';
      if (c === '"') {
        i = readDouble(chars, i + 1, bytes, pushText);
      } else if (c === "'") {
        i = readSingle(chars, i + 1, pushText);
      } else {
        pushText(c);
        i++;
      }
    }
    tokens.push(Uint8Array.from(bytes));
  }
  return tokens;
}

/** Reads a double-quoted part starting after the quote; returns the index after the closing quote. */
function readDouble(chars: readonly string[], start: number, bytes: number[], pushText: (s: string) => void): number {
  for (let i = start; i < chars.length; i++) {
    const c = chars[i] ?? '';
    if (c === '"') return closeQuote(chars, i);
    if (c !== '\\' || i + 1 >= chars.length) {
      pushText(c);
      continue;
    }
    const next = chars[i + 1] ?? '';
    const hex = next === 'x' ? `${chars[i + 2] ?? ''}${chars[i + 3] ?? ''}` : '';
    if (/^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      const escaped = ESCAPES[next];
      if (escaped === undefined) pushText(next);
      else bytes.push(escaped);
      i += 1;
    }
  }
  throw new TokenizeError('unbalanced quotes: a "double-quoted" argument is not closed');
}

function readSingle(chars: readonly string[], start: number, pushText: (s: string) => void): number {
  for (let i = start; i < chars.length; i++) {
    const c = chars[i] ?? '';
    if (c === '\\' && chars[i + 1] === "'") {
      pushText("'");
      i += 1;
    } else if (c === "'") {
      return closeQuote(chars, i);
    } else {
      pushText(c);
    }
  }
  throw new TokenizeError("unbalanced quotes: a 'single-quoted' argument is not closed");
}

function closeQuote(chars: readonly string[], at: number): number {
  const after = chars[at + 1];
  if (after !== undefined && !WHITESPACE.has(after)) throw new TokenizeError(`a closing quote must end the argument (found '${after}' right after it)`);
  return at + 1;
}
