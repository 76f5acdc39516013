import { describe, expect, it } from 'vitest';
import { displayBytes, formatJson, formatText, quote } from '../../../src/cli/qkv-format.ts';
import { byteList, bytesOrNil, integer, NIL, OK, type Reply } from '../../../src/cli/qkv-reply.ts';
import { tokenize } from '../../../src/cli/qkv-tokenize.ts';

const b = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('text: values', () => {
  it('prints UTF-8 as text', () => {
    expect(displayBytes(b('hello'))).toBe('hello');
    expect(displayBytes(b('hello world'))).toBe('hello world');
    expect(displayBytes(b('clé 値'))).toBe('clé 値');
  });

  it('prints anything that is not UTF-8 as hex', () => {
    expect(displayBytes(new Uint8Array([0x00, 0xff]))).toBe('0x00ff');
    expect(displayBytes(new Uint8Array([0xc3]))).toBe('0xc3');
  });

  it('quotes text that could be misread', () => {
    expect(displayBytes(b(''))).toBe('""');
    expect(displayBytes(b(' padded '))).toBe('" padded "');
    expect(displayBytes(b('two\nlines'))).toBe('"two\\nlines"');
    expect(displayBytes(b('nul\0byte'))).toBe('"nul\\x00byte"');
    expect(displayBytes(b('(nil)'))).toBe('"(nil)"');
    expect(displayBytes(b('(integer) 1'))).toBe('"(integer) 1"');
    expect(displayBytes(b('0xff'))).toBe('"0xff"');
    expect(displayBytes(b('"quoted"'))).toBe('"\\"quoted\\""');
    expect(displayBytes(b('zero\u200bwidth'))).toBe('"zero\\xe2\\x80\\x8bwidth"');
  });

  it('quoted output reads back through the tokenizer as the same bytes', () => {
    for (const s of ['', ' x', 'a\nb\tc\r', 'nul\0', 'q"\\', '\u200b\u0085', '(nil)']) {
      const [token] = tokenize(quote(s));
      expect(new TextDecoder().decode(token)).toBe(s);
    }
  });
});

describe('text: replies', () => {
  it('nil, status, integers', () => {
    expect(formatText(NIL)).toBe('(nil)');
    expect(formatText(OK)).toBe('OK');
    expect(formatText(integer(3))).toBe('(integer) 3');
    expect(formatText(integer(true))).toBe('(integer) 1');
    expect(formatText(bytesOrNil(null))).toBe('(nil)');
  });

  it('lists are numbered, right-aligned', () => {
    expect(formatText(byteList([b('a'), new Uint8Array([0xff, 1]), b('\x01')]))).toBe('1) a\n2) 0xff01\n3) "\\x01"');
    const ten = formatText(byteList(Array.from({ length: 10 }, (_, i) => b(`v${i}`)))).split('\n');
    expect(ten[0]).toBe(' 1) v0');
    expect(ten[9]).toBe('10) v9');
    expect(formatText(byteList([]))).toBe('(empty list)');
  });

  it('hashes are field => value', () => {
    const hash: Reply = {
      kind: 'hash',
      fields: [
        ['name', b('Ada Lovelace')],
        ['the field', new Uint8Array([0xff])],
      ],
    };
    expect(formatText(hash)).toBe('name => Ada Lovelace\n"the field" => 0xff');
    expect(formatText({ kind: 'hash', fields: [] })).toBe('(empty hash)');
  });

  it('records align their labels; a table inside goes below its label', () => {
    const reply: Reply = {
      kind: 'record',
      fields: [
        ['leaderId', 'n1'],
        ['appliedIndex', 42],
        ['members', { kind: 'table', columns: ['id', 'peerAddress', 'leader'], rows: [['n1', 'h:7101', true], ['n22', 'h:7102', false]] }],
      ],
    };
    expect(formatText(reply)).toBe(
      ['leader id:     n1', 'applied index: 42', 'members:', '  ID   PEER ADDRESS  LEADER', '  n1   h:7101        true', '  n22  h:7102        false'].join('\n'),
    );
  });

  it('watch events on one line', () => {
    const event = (type: 'put' | 'delete', value: Uint8Array | null, valueType: 'string' | 'list' | 'none'): Reply => ({
      kind: 'event',
      event: { index: 12, type, key: 'user:1', value, valueType },
    });
    expect(formatText(event('put', b('Ada'), 'string'))).toBe('12 PUT user:1 Ada');
    expect(formatText(event('put', null, 'list'))).toBe('12 PUT user:1 (list)');
    expect(formatText(event('delete', null, 'none'))).toBe('12 DELETE user:1');
  });
});

describe('json', () => {
  it('values say how their bytes are written', () => {
    expect(formatJson(bytesOrNil(b('héllo\n')))).toBe('{"utf8":"héllo\\n"}');
    expect(formatJson(bytesOrNil(new Uint8Array([0, 255])))).toBe('{"base64":"AP8="}');
    expect(formatJson(NIL)).toBe('null');
  });

  it('lists, hashes, counts, status, keys', () => {
    expect(formatJson(byteList([b('a'), new Uint8Array([0xff])]))).toBe('[{"utf8":"a"},{"base64":"/w=="}]');
    expect(formatJson({ kind: 'hash', fields: [['f', b('v')]] })).toBe('{"f":{"utf8":"v"}}');
    expect(formatJson(integer(7))).toBe('7');
    expect(formatJson(OK)).toBe('"OK"');
    expect(formatJson({ kind: 'list', items: [{ kind: 'text', value: 'k1' }] })).toBe('["k1"]');
  });

  it('records and tables as objects; events as objects', () => {
    const reply: Reply = { kind: 'record', fields: [['index', 3], ['members', { kind: 'table', columns: ['id', 'leader'], rows: [['n1', true]] }]] };
    expect(JSON.parse(formatJson(reply))).toEqual({ index: 3, members: [{ id: 'n1', leader: true }] });
    const event: Reply = { kind: 'event', event: { index: 5, type: 'put', key: 'k', value: b('v'), valueType: 'string' } };
    expect(JSON.parse(formatJson(event))).toEqual({ index: 5, type: 'put', key: 'k', value: { utf8: 'v' }, valueType: 'string' });
  });
});
