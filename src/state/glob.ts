/**
 * Glob patterns for Keys, as Redis's MATCH: `*` any run of characters, `?`
 * one character, `[abc]` one of, `[a-z]` a range (reversed bounds are
 * swapped, as Redis does), `[^a]` none of, and `\` makes the next character
 * literal, also inside brackets. Characters are Unicode code points, not
 * UTF-16 units, so `?` matches one emoji.
 *
 * Unlike Redis, a pattern that ends inside brackets or with a lone `\` is an
 * error (INVALID_ARGUMENT) instead of being read some lenient way.
 */
import { InvalidArgumentError } from './errors.ts';

export const MAX_PATTERN_LENGTH = 4096;

export type KeyMatcher = (key: string) => boolean;

const STAR = 0;
const ANY = 1;
const LITERAL = 2;
const CLASS = 3;

type Token =
  | { readonly kind: typeof STAR }
  | { readonly kind: typeof ANY }
  | { readonly kind: typeof LITERAL; readonly cp: number }
  | { readonly kind: typeof CLASS; readonly negate: boolean; readonly ranges: readonly number[] };

function codePointAt(s: string, i: number): number {
  return s.codePointAt(i) as number;
}

function width(cp: number): number {
  return cp > 0xffff ? 2 : 1;
}

function parse(pattern: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = pattern.length;
  while (i < n) {
    const c = codePointAt(pattern, i);
    i += width(c);
    if (c === 0x2a /* * */) {
      if (tokens[tokens.length - 1]?.kind !== STAR) tokens.push({ kind: STAR });
    } else if (c === 0x3f /* ? */) {
      tokens.push({ kind: ANY });
    } else if (c === 0x5c /* \ */) {
      if (i >= n) throw new InvalidArgumentError(`pattern '${pattern}' ends with an unescaped '\\'`);
      const lit = codePointAt(pattern, i);
      i += width(lit);
      tokens.push({ kind: LITERAL, cp: lit });
    } else if (c === 0x5b /* [ */) {
      let negate = false;
      if (i < n && pattern.charCodeAt(i) === 0x5e /* ^ */) {
        negate = true;
        i++;
      }
      const ranges: number[] = [];
      let closed = false;
      while (i < n) {
        let lo = codePointAt(pattern, i);
        i += width(lo);
        if (lo === 0x5d /* ] */) {
          closed = true;
          break;
        }
        if (lo === 0x5c) {
          if (i >= n) break;
          lo = codePointAt(pattern, i);
          i += width(lo);
        }
        let hi = lo;
        // `-` makes a range only between two characters; before `]` it is itself.
        if (i + 1 < n && pattern.charCodeAt(i) === 0x2d /* - */ && pattern.charCodeAt(i + 1) !== 0x5d) {
          i++;
          hi = codePointAt(pattern, i);
          i += width(hi);
          if (hi === 0x5c) {
            if (i >= n) break;
            hi = codePointAt(pattern, i);
            i += width(hi);
          }
          if (hi < lo) [lo, hi] = [hi, lo];
        }
        ranges.push(lo, hi);
      }
      if (!closed) throw new InvalidArgumentError(`pattern '${pattern}' has an unclosed '['`);
      tokens.push({ kind: CLASS, negate, ranges });
    } else {
      tokens.push({ kind: LITERAL, cp: c });
    }
  }
  return tokens;
}

function matchOne(token: Token, cp: number): boolean {
  switch (token.kind) {
    case ANY:
      return true;
    case LITERAL:
      return token.cp === cp;
    case CLASS: {
      const r = token.ranges;
      let inside = false;
      for (let k = 0; k < r.length; k += 2) {
        if (cp >= (r[k] as number) && cp <= (r[k + 1] as number)) {
          inside = true;
          break;
        }
      }
      return inside !== token.negate;
    }
    case STAR:
      return false;
  }
}

/**
 * Wildcard matching with one backtrack point (the last star): every token but
 * `*` consumes exactly one character, so when a later match fails it is enough
 * to let the last star swallow one more character. O(key × pattern) worst case.
 */
function matchTokens(tokens: readonly Token[], key: string): boolean {
  const m = tokens.length;
  const n = key.length;
  let p = 0;
  let s = 0;
  let starP = -1;
  let starS = 0;
  while (s < n) {
    const token = tokens[p];
    if (token !== undefined && token.kind === STAR) {
      starP = p++;
      starS = s;
      continue;
    }
    const cp = codePointAt(key, s);
    if (token !== undefined && matchOne(token, cp)) {
      p++;
      s += width(cp);
    } else if (starP >= 0) {
      p = starP + 1;
      starS += width(codePointAt(key, starS));
      s = starS;
    } else {
      return false;
    }
  }
  while (p < m && tokens[p]?.kind === STAR) p++;
  return p === m;
}

/** Compiles a pattern once for a whole scan. */
export function compileGlob(pattern: string): KeyMatcher {
  if (pattern.length > MAX_PATTERN_LENGTH) {
    throw new InvalidArgumentError(`pattern is ${pattern.length} characters long; the limit is ${MAX_PATTERN_LENGTH}`);
  }
  const tokens = parse(pattern);
  if (tokens.length === 1 && tokens[0]?.kind === STAR) return () => true;
  const literalPrefix: number[] = [];
  for (const token of tokens) {
    if (token.kind !== LITERAL) break;
    literalPrefix.push(token.cp);
  }
  const prefix = String.fromCodePoint(...literalPrefix);
  if (literalPrefix.length === tokens.length) return (key) => key === prefix;
  if (literalPrefix.length === tokens.length - 1 && tokens[tokens.length - 1]?.kind === STAR) {
    return (key) => key.startsWith(prefix);
  }
  return (key) => matchTokens(tokens, key);
}
