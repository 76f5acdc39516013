import { describe, expect, it } from 'vitest';
import { parseMachineBusyTicks, parseProcStat, percentOfCore } from '../../bench/load-cpu.ts';
import { HUFFMAN_CODES, HpackDecoder, HpackError, encodeHeaderBlock, encodeInteger, huffmanDecode, huffmanEncode } from '../../../src/transport/http2/hpack.ts';

const decodeHeaderBlock = (block: Uint8Array): [string, string][] => new HpackDecoder(0).decode(block);

describe('/proc parsing', () => {
  it('reads utime and stime after the command name, even one with spaces and parentheses', () => {
    const line = '4242 (node (my app)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 731 96 0 0 20 0 11 0 12345 1000000 5000 18446744073709551615';
    expect(parseProcStat(line)).toEqual({ utimeTicks: 731, stimeTicks: 96 });
    expect(() => parseProcStat('garbage')).toThrow();
  });

  it('sums the busy columns of /proc/stat, leaving out idle and iowait', () => {
    expect(parseMachineBusyTicks('cpu  100 5 50 9000 300 7 8 9 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n')).toBe(100 + 5 + 50 + 7 + 8 + 9);
  });

  it('turns CPU seconds over a wall-clock interval into % of one core', () => {
    expect(percentOfCore(1.5, 2.0, 1000)).toBe(50);
    expect(percentOfCore(null, 2.0, 1000)).toBeNull();
  });
});

describe('HPACK', () => {
  it('derives the RFC 7541 Appendix B Huffman codes from their lengths', () => {
    const code = (symbol: number): [string, number] => [HUFFMAN_CODES[symbol]!.code.toString(16), HUFFMAN_CODES[symbol]!.length];
    expect(code(0)).toEqual(['1ff8', 13]);
    expect(code(0x30)).toEqual(['0', 5]); // '0'
    expect(code(0x20)).toEqual(['14', 6]); // ' '
    expect(code(0x7f)).toEqual(['ffffffc', 28]);
    expect(code(200)).toEqual(['3ffffe2', 26]);
    expect(code(255)).toEqual(['3ffffee', 26]);
    expect(code(256)).toEqual(['3fffffff', 30]); // EOS
    // A complete prefix code: the Kraft sum is exactly 1.
    expect(HUFFMAN_CODES.reduce((sum, c) => sum + 2 ** -c.length, 0)).toBe(1);
  });

  it('decodes RFC 7541 C.4.1 and round-trips every byte through Huffman coding', () => {
    expect(huffmanEncode('www.example.com').toString('hex')).toBe('f1e3c2e5f23a6ba0ab90f4ff');
    expect(decodeHeaderBlock(Buffer.from('828684418cf1e3c2e5f23a6ba0ab90f4ff', 'hex'))).toEqual([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
    ]);
    const every = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
    expect(huffmanDecode(huffmanEncode(every))).toBe(every);
    expect(() => huffmanDecode(Buffer.from([0x00]))).toThrow(HpackError); // '0' then 3 zero bits of padding
  });

  it('encodes prefixed integers as in RFC 7541 C.1', () => {
    expect(encodeInteger(10, 5, 0)).toEqual([10]);
    expect(encodeInteger(1337, 5, 0)).toEqual([31, 154, 10]);
    expect(encodeInteger(42, 8, 0)).toEqual([42]);
  });

  it('encodes request headers that decode back, using the static table where it can', () => {
    const fields: [string, string][] = [
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/quorumkv.v1.KV/Get'],
      [':authority', '127.0.0.1:7001'],
      ['content-type', 'application/grpc'],
      ['te', 'trailers'],
    ];
    const block = encodeHeaderBlock(fields);
    expect(block.subarray(0, 2).toString('hex')).toBe('8386'); // both fully indexed
    expect(decodeHeaderBlock(block)).toEqual(fields);
  });

  it('refuses what a header table size of 0 rules out', () => {
    expect(() => decodeHeaderBlock(Buffer.from([0xbe]))).toThrow(/past the dynamic table/); // index 62: dynamic
    expect(() => decodeHeaderBlock(Buffer.from([0x3f, 0xe1, 0x1f]))).toThrow(/table size/); // size update to 4096
    expect(decodeHeaderBlock(Buffer.from([0x20]))).toEqual([]); // size update to 0 is fine
  });
});
