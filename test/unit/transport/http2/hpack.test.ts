/**
 * The HPACK decoder: RFC 7541 Appendix C's examples (a dynamic table shared
 * by a connection's blocks, Huffman, eviction), its refusals, and real
 * header blocks from nghttp2 (node:http2's client), whose encoder uses the
 * dynamic table and Huffman coding as browsers and gRPC clients do.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HeaderListTooLargeError, HpackDecoder, HpackError } from '../../../../src/transport/http2/hpack.ts';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('HpackDecoder: RFC 7541 Appendix C', () => {
  it('C.3: three requests without Huffman coding, sharing the dynamic table', () => {
    const decoder = new HpackDecoder();
    expect(decoder.decode(hex('8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d'))).toEqual([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
    ]);
    expect(decoder.dynamicTable).toEqual([[':authority', 'www.example.com']]);
    expect(decoder.decode(hex('8286 84be 5808 6e6f 2d63 6163 6865'))).toEqual([
      [':method', 'GET'],
      [':scheme', 'http'],
      [':path', '/'],
      [':authority', 'www.example.com'],
      ['cache-control', 'no-cache'],
    ]);
    expect(decoder.decode(hex('8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65'))).toEqual([
      [':method', 'GET'],
      [':scheme', 'https'],
      [':path', '/index.html'],
      [':authority', 'www.example.com'],
      ['custom-key', 'custom-value'],
    ]);
    expect(decoder.dynamicTable).toEqual([
      ['custom-key', 'custom-value'],
      ['cache-control', 'no-cache'],
      [':authority', 'www.example.com'],
    ]);
  });

  it('C.4: the same requests with Huffman coding', () => {
    const decoder = new HpackDecoder();
    expect(decoder.decode(hex('8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff'))).toContainEqual([':authority', 'www.example.com']);
    expect(decoder.decode(hex('8286 84be 5886 a8eb 1064 9cbf'))).toContainEqual(['cache-control', 'no-cache']);
    expect(decoder.decode(hex('8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf'))).toContainEqual(['custom-key', 'custom-value']);
    expect(decoder.dynamicTable).toHaveLength(3);
  });

  it('C.5.1–2: responses in a 256-byte table, where an insertion evicts the oldest entry', () => {
    const decoder = new HpackDecoder(256);
    expect(
      decoder.decode(
        hex(`4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77
             7777 2e65 7861 6d70 6c65 2e63 6f6d`),
      ),
    ).toEqual([
      [':status', '302'],
      ['cache-control', 'private'],
      ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
      ['location', 'https://www.example.com'],
    ]);
    expect(decoder.decode(hex('4803 3330 37c1 c0bf'))).toEqual([
      [':status', '307'],
      ['cache-control', 'private'],
      ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
      ['location', 'https://www.example.com'],
    ]);
    expect(decoder.dynamicTable.map(([name, value]) => `${name}: ${value}`)).toEqual([':status: 307', 'location: https://www.example.com', 'date: Mon, 21 Oct 2013 20:13:21 GMT', 'cache-control: private']);
  });
});

describe('HpackDecoder refuses', () => {
  it('index 0, an index past both tables, and truncated integers and strings', () => {
    expect(() => new HpackDecoder().decode(hex('80'))).toThrow(/index 0/);
    expect(() => new HpackDecoder().decode(hex('be'))).toThrow(/past the dynamic table \(0 entries\)/);
    expect(() => new HpackDecoder().decode(hex('ff'))).toThrow(/truncated/);
    expect(() => new HpackDecoder().decode(hex('0003 6162'))).toThrow(/truncated string/);
    expect(() => new HpackDecoder().decode(hex('ff ff ff ff ff ff 01'))).toThrow(/integer too large/);
  });

  it('a size update above our setting, or after the first field of a block; a smaller setting evicts', () => {
    expect(() => new HpackDecoder(100).decode(hex('3f 46'))).toThrow(/size update to 101, over the 100 allowed/);
    expect(() => new HpackDecoder().decode(hex('82 20'))).toThrow(/after the first field/);
    const decoder = new HpackDecoder();
    decoder.decode(hex('4001 6101 62')); // a: b, indexed (34 bytes)
    expect(decoder.dynamicTable).toEqual([['a', 'b']]);
    decoder.setSettingsTableBytes(33);
    expect(decoder.dynamicTable).toEqual([]);
  });

  it('Huffman strings with EOS inside or padding that is not a prefix of EOS', () => {
    // "a" is 00011 (5 bits): padded with 111 it is 0x1f; with 000 it is not valid padding.
    expect(new HpackDecoder().decode(hex('00 01 61 81 1f'))).toEqual([['a', 'a']]);
    expect(() => new HpackDecoder().decode(hex('00 01 61 81 18'))).toThrow(HpackError);
    expect(() => new HpackDecoder().decode(hex('00 01 61 84 ff ff ff ff'))).toThrow(/EOS|padding/);
  });

  it('a header list over the limit, after decoding the whole block so the table stays in step', () => {
    const decoder = new HpackDecoder(4096, 60);
    let error: unknown;
    try {
      decoder.decode(hex('4001 6101 62 4001 6301 64')); // a: b and c: d, both indexed: 68 bytes
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(HeaderListTooLargeError);
    expect((error as HeaderListTooLargeError).bytes).toBe(68);
    expect(decoder.dynamicTable).toEqual([
      ['c', 'd'],
      ['a', 'b'],
    ]);
  });
});

describe('HpackDecoder on header blocks from nghttp2 (node:http2 client)', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  /** A raw TCP server that reads the client's frames and decodes every HEADERS block (+ CONTINUATION) in order. */
  async function capture(tableBytes: number, requests: http2.OutgoingHttpHeaders[]): Promise<[string, string][][]> {
    const decoder = new HpackDecoder(tableBytes);
    const blocks: [string, string][][] = [];
    let done: () => void = () => {};
    const all = new Promise<void>((resolve) => (done = resolve));
    const server = net.createServer((socket) => {
      let input = Buffer.alloc(0);
      let fragments: Buffer[] = [];
      // Our SETTINGS: the header table size under test.
      const settings = Buffer.alloc(6);
      settings.writeUInt16BE(1, 0);
      settings.writeUInt32BE(tableBytes, 2);
      socket.write(Buffer.concat([frameHeader(settings.length, 4, 0, 0), settings]));
      socket.on('data', (chunk: Buffer) => {
        input = Buffer.concat([input, chunk]);
        if (input.subarray(0, 3).toString() === 'PRI') input = input.subarray(24);
        while (input.length >= 9) {
          const length = input.readUIntBE(0, 3);
          if (input.length < 9 + length) break;
          const [type, flags] = [input[3] as number, input[4] as number];
          let payload = input.subarray(9, 9 + length);
          input = input.subarray(9 + length);
          if (type === 4 && (flags & 1) === 0) socket.write(frameHeader(0, 4, 1, 0));
          if (type !== 1 && type !== 9) continue;
          if (type === 1 && flags & 0x8) payload = payload.subarray(1, payload.length - (payload[0] as number));
          if (type === 1 && flags & 0x20) payload = payload.subarray(5);
          fragments.push(payload);
          if (flags & 0x4) {
            blocks.push(decoder.decode(Buffer.concat(fragments)));
            fragments = [];
            if (blocks.length === requests.length) done();
          }
        }
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const session = http2.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    session.on('error', () => {});
    cleanups.push(() => {
      session.destroy();
      server.close();
    });
    // One at a time, so that the encoder sees our settings before the later ones.
    await new Promise<void>((resolve) => session.once('remoteSettings', () => resolve()));
    for (const headers of requests) {
      const stream = session.request(headers, { endStream: true });
      stream.on('error', () => {});
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await all;
    return blocks;
  }

  function frameHeader(length: number, type: number, flags: number, stream: number): Buffer {
    const header = Buffer.alloc(9);
    header.writeUIntBE(length, 0, 3);
    header[3] = type;
    header[4] = flags;
    header.writeUInt32BE(stream, 5);
    return header;
  }

  /** Requests with repeated and changing fields, long values (several table entries, evictions), and bytes above 0x7f. */
  function requests(count: number): http2.OutgoingHttpHeaders[] {
    return Array.from({ length: count }, (_, i) => ({
      ':method': 'POST',
      ':path': `/quorumkv.v1.KV/${i % 3 === 0 ? 'Get' : 'Set'}`,
      'content-type': 'application/grpc',
      te: 'trailers',
      'grpc-timeout': `${1000 + (i % 5)}m`,
      authorization: `Bearer token-${i % 4}`,
      'x-long': 'v'.repeat(100 + ((i * 37) % 400)),
      'x-latin1': `caf\u00e9-${i}`,
    }));
  }

  for (const tableBytes of [4096, 256, 0]) {
    it(`decodes every block as sent, with a ${tableBytes}-byte table`, async () => {
      const sent = requests(40);
      const blocks = await capture(tableBytes, sent);
      expect(blocks).toHaveLength(sent.length);
      blocks.forEach((fields, i) => {
        const expected = sent[i] as http2.OutgoingHttpHeaders;
        const got = Object.fromEntries(fields.filter(([name]) => name in expected || name === ':method'));
        // node:http2 sends a value's characters as single bytes (latin1), which is how they decode.
        expect(got).toEqual(Object.fromEntries(Object.entries(expected).map(([name, value]) => [name, String(value)])));
      });
    });
  }
});
