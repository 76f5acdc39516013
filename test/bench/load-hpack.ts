/**
 * Just enough HPACK (RFC 7541) for the load generator's HTTP/2 client:
 * encoding request headers as literals against the static table, and decoding
 * response header blocks that use the static table, literals and Huffman
 * coding but no dynamic table. The client advertises a header table size of 0
 * (SETTINGS_HEADER_TABLE_SIZE), so a conforming server never refers to
 * dynamic entries; a block that does is rejected rather than misread.
 */

/** RFC 7541 Appendix A: the static table, index 1 first. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/**
 * RFC 7541 Appendix B: the Huffman code length of each symbol 0..255, then EOS
 * (256). The code is canonical (codes of one length are consecutive, in
 * symbol order, each length's first code following the previous length's
 * last), so the lengths alone determine it.
 */
const HUFFMAN_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

const EOS = 256;
const MAX_CODE_LENGTH = 30;

/** Canonical decoding tables: per length, the first code, how many codes, and where its symbols start in SYMBOLS. */
const FIRST_CODE: number[] = [];
const COUNT: number[] = [];
const OFFSET: number[] = [];
const SYMBOLS: number[] = [];
/** Each symbol's code, for the tests and for encoding. */
export const HUFFMAN_CODES: readonly { readonly code: number; readonly length: number }[] = (() => {
  const codes: { code: number; length: number }[] = new Array(HUFFMAN_LENGTHS.length);
  let code = 0;
  for (let length = 1; length <= MAX_CODE_LENGTH; length++) {
    FIRST_CODE[length] = code;
    OFFSET[length] = SYMBOLS.length;
    HUFFMAN_LENGTHS.forEach((l, symbol) => {
      if (l !== length) return;
      codes[symbol] = { code, length };
      SYMBOLS.push(symbol);
      code++;
    });
    COUNT[length] = SYMBOLS.length - OFFSET[length]!;
    code <<= 1;
  }
  return codes;
})();

export class HpackError extends Error {
  constructor(message: string) {
    super(`HPACK: ${message}`);
    this.name = 'HpackError';
  }
}

export function huffmanDecode(bytes: Uint8Array): string {
  let out = '';
  let code = 0;
  let length = 0;
  for (const byte of bytes) {
    for (let bit = 7; bit >= 0; bit--) {
      code = (code << 1) | ((byte >> bit) & 1);
      length++;
      const index = code - FIRST_CODE[length]!;
      if (index >= 0 && index < COUNT[length]!) {
        const symbol = SYMBOLS[OFFSET[length]! + index]!;
        if (symbol === EOS) throw new HpackError('EOS inside a Huffman string');
        out += String.fromCharCode(symbol);
        code = 0;
        length = 0;
      } else if (length >= MAX_CODE_LENGTH) {
        throw new HpackError('invalid Huffman code');
      }
    }
  }
  // Padding: fewer than 8 bits, all ones (a prefix of EOS).
  if (length > 7 || code !== (1 << length) - 1) throw new HpackError('invalid Huffman padding');
  return out;
}

export function huffmanEncode(text: string): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < text.length; i++) {
    const { code, length } = HUFFMAN_CODES[text.charCodeAt(i) & 0xff]!;
    for (let b = length - 1; b >= 0; b--) {
      acc = (acc << 1) | ((code >>> b) & 1);
      if (++bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits > 0) out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff);
  return Buffer.from(out);
}

/** An integer with an N-bit prefix (RFC 7541 5.1); `first` holds the bits above the prefix. */
export function encodeInteger(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

function encodeString(text: string): number[] {
  const bytes = Buffer.from(text, 'latin1');
  return [...encodeInteger(bytes.length, 7, 0), ...bytes];
}

/**
 * A header block of literal fields without indexing (no Huffman, no dynamic
 * table: the block is the same bytes every time, so it is built once per path).
 * A field whose name is in the static table refers to it by index.
 */
export function encodeHeaderBlock(fields: readonly (readonly [string, string])[]): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields) {
    const exact = STATIC_TABLE.findIndex(([n, v]) => n === name && v === value);
    if (exact >= 0) {
      out.push(...encodeInteger(exact + 1, 7, 0x80));
      continue;
    }
    const named = STATIC_TABLE.findIndex(([n]) => n === name);
    if (named >= 0) out.push(...encodeInteger(named + 1, 4, 0x00));
    else out.push(0x00, ...encodeString(name));
    out.push(...encodeString(value));
  }
  return Buffer.from(out);
}

class Reader {
  offset = 0;
  constructor(private readonly bytes: Uint8Array) {}

  get done(): boolean {
    return this.offset >= this.bytes.length;
  }

  byte(): number {
    const b = this.bytes[this.offset++];
    if (b === undefined) throw new HpackError('truncated header block');
    return b;
  }

  integer(prefixBits: number, first: number): number {
    const max = (1 << prefixBits) - 1;
    let value = first & max;
    if (value < max) return value;
    for (let shift = 0; ; shift += 7) {
      const b = this.byte();
      value += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return value;
      if (shift > 28) throw new HpackError('integer too large');
    }
  }

  string(): string {
    const first = this.byte();
    const length = this.integer(7, first);
    if (this.offset + length > this.bytes.length) throw new HpackError('truncated string');
    const raw = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return (first & 0x80) !== 0 ? huffmanDecode(raw) : Buffer.from(raw).toString('latin1');
  }
}

function staticEntry(index: number): readonly [string, string] {
  const entry = STATIC_TABLE[index - 1];
  if (entry === undefined) throw new HpackError(`index ${index} is not in the static table (the dynamic table is disabled)`);
  return entry;
}

/** Decodes a complete header block into name/value pairs, in order. */
export function decodeHeaderBlock(block: Uint8Array): [string, string][] {
  const fields: [string, string][] = [];
  const r = new Reader(block);
  while (!r.done) {
    const first = r.byte();
    if ((first & 0x80) !== 0) {
      const [name, value] = staticEntry(r.integer(7, first));
      fields.push([name, value]);
    } else if ((first & 0xe0) === 0x20) {
      // Dynamic table size update: only 0 fits the size this client allows.
      const size = r.integer(5, first);
      if (size !== 0) throw new HpackError(`table size update to ${size}; this decoder allows 0`);
    } else {
      // Literal: with incremental indexing (01, 6-bit index) or without / never indexed (000x, 4-bit index).
      // With a table size of 0 an "indexed" literal is evicted at once, so all three read alike.
      const index = (first & 0xc0) === 0x40 ? r.integer(6, first) : r.integer(4, first);
      const name = index === 0 ? r.string() : staticEntry(index)[0];
      fields.push([name, r.string()]);
    }
  }
  return fields;
}
