import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../../src/state/index.ts';
import { compileGlob } from '../../../src/state/glob.ts';

function matches(pattern: string, key: string): boolean {
  return compileGlob(pattern)(key);
}

describe('glob', () => {
  it.each([
    ['*', '', true],
    ['*', 'anything', true],
    ['', '', true],
    ['', 'a', false],
    ['user:*', 'user:1', true],
    ['user:*', 'user:', true],
    ['user:*', 'use', false],
    ['*:1', 'user:1', true],
    ['*:1', 'user:12', false],
    ['h?llo', 'hello', true],
    ['h?llo', 'hallo', true],
    ['h?llo', 'hllo', false],
    ['h*llo', 'hllo', true],
    ['h*llo', 'heeeello', true],
    ['h[ae]llo', 'hello', true],
    ['h[ae]llo', 'hallo', true],
    ['h[ae]llo', 'hillo', false],
    ['h[^e]llo', 'hallo', true],
    ['h[^e]llo', 'hello', false],
    ['h[a-b]llo', 'hbllo', true],
    ['h[a-b]llo', 'hcllo', false],
    ['h[b-a]llo', 'hallo', true], // reversed bounds are swapped, as Redis does
    ['[]', 'a', false], // an empty class matches nothing
    ['[^]', 'a', true],
    ['[a-]', '-', true], // '-' before ']' is itself
    ['[a-]', 'b', false],
    ['\\*', '*', true],
    ['\\*', 'a', false],
    ['a\\?', 'a?', true],
    ['a\\?', 'ab', false],
    ['[\\]]', ']', true],
    ['[\\^a]', '^', true],
    ['\\[x\\]', '[x]', true],
    ['*a*b*c*', 'xxaxxbxxcxx', true],
    ['*a*b*c*', 'xxaxxcxxbxx', false],
    ['a*a*a*a*b', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', false],
    ['?', '😀', true], // one character is one code point
    ['??', '😀', false],
    ['[😀-😂]', '😁', true],
    ['é*', 'été', true],
  ])('%j against %j is %s', (pattern, key, expected) => {
    expect(matches(pattern, key)).toBe(expected);
  });

  it.each(['[abc', 'abc\\', '[a\\'])('refuses the malformed pattern %j', (pattern) => {
    expect(() => compileGlob(pattern)).toThrow(InvalidArgumentError);
  });

  it('refuses an over-long pattern', () => {
    expect(() => compileGlob('a'.repeat(5000))).toThrow(/limit is 4096/);
  });

  it('agrees with a regular-expression translation on patterns without classes', () => {
    const toRegExp = (pattern: string): RegExp => {
      let re = '';
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i] as string;
        if (c === '*') re += '[^]*';
        else if (c === '?') re += '[^]';
        else if (c === '\\') re += (pattern[++i] as string).replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
        else re += c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
      }
      return new RegExp(`^${re}$`, 'u');
    };
    const alphabet = fc.constantFrom('a', 'b', 'c', ':');
    const patternChar = fc.oneof(alphabet, fc.constantFrom('*', '?', '\\*', '\\?', '\\a'));
    fc.assert(
      fc.property(fc.array(patternChar, { maxLength: 8 }), fc.array(alphabet, { maxLength: 10 }), (p, k) => {
        const pattern = p.join('');
        const key = k.join('');
        expect(matches(pattern, key)).toBe(toRegExp(pattern).test(key));
      }),
      { numRuns: 2000 },
    );
  });
});
