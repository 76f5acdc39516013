import { describe, expect, it } from 'vitest';
import { tokenize, TokenizeError } from '../../../src/cli/qkv-tokenize.ts';

const words = (line: string): string[] => tokenize(line).map((t) => new TextDecoder().decode(t));
const bytes = (line: string): number[][] => tokenize(line).map((t) => [...t]);

describe('tokenize', () => {
  it('splits on any run of whitespace', () => {
    expect(words('  set   key\tvalue  ')).toEqual(['set', 'key', 'value']);
    expect(words('')).toEqual([]);
    expect(words('   ')).toEqual([]);
  });

  it('double quotes keep spaces and read escapes', () => {
    expect(words('set "a b" "line\\none\\ttab"')).toEqual(['set', 'a b', 'line\none\ttab']);
    expect(words('"say \\"hi\\"" "back\\\\slash" "\\r\\b\\a"')).toEqual(['say "hi"', 'back\\slash', '\r\b\x07']);
    expect(words('"unknown \\q escape"')).toEqual(['unknown q escape']);
  });

  it('\\xHH gives any byte, so binary values can be typed', () => {
    expect(bytes('"\\x00\\xff\\x41"')).toEqual([[0x00, 0xff, 0x41]]);
    expect(bytes('"\\xzz"')).toEqual([[...new TextEncoder().encode('xzz')]]);
  });

  it('single quotes are literal except for \\\'', () => {
    expect(words("'a \\n b' 'it\\'s'")).toEqual(['a \\n b', "it's"]);
  });

  it('an empty quoted argument is an argument', () => {
    expect(words('set k ""')).toEqual(['set', 'k', '']);
    expect(words("set k ''")).toEqual(['set', 'k', '']);
  });

  it('quotes may start inside a word', () => {
    expect(words('key"with space"')).toEqual(['keywith space']);
  });

  it('UTF-8 text passes through', () => {
    expect(words('set clé "値 ✓"')).toEqual(['set', 'clé', '値 ✓']);
  });

  it('refuses unbalanced quotes and text glued after a closing quote', () => {
    expect(() => tokenize('set "open')).toThrow(TokenizeError);
    expect(() => tokenize("set 'open")).toThrow(/single-quoted/);
    expect(() => tokenize('set "a"b')).toThrow("a closing quote must end the argument (found 'b' right after it)");
  });
});
