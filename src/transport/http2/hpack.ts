/**
 * HPACK (RFC 7541), header compression for HTTP/2: a decoder with the whole
 * of the format (static and dynamic tables, Huffman coding, size updates,
 * limits), and an encoder that writes literal fields against the static
 * table only, with no dynamic table and no Huffman, so that a block is the
 * same bytes every time and can be built once.
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

const MAX_INTEGER = 2 ** 31 - 1;

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
      // Nothing in a header block is legitimately 2^31 or more (a length, an index, a table size).
      if (value > MAX_INTEGER) throw new HpackError('integer too large');
      if ((b & 0x80) === 0) return value;
    }
  }

  string(): string {
    const first = this.byte();
    const length = this.integer(7, first);
    if (this.offset + length > this.bytes.length) throw new HpackError('truncated string');
    const raw = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return (first & 0x80) !== 0 ? huffmanDecode(raw) : Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('latin1');
  }
}

/** RFC 7541 4.1: an entry's size is its name and value octets plus 32. */
const ENTRY_OVERHEAD = 32;
const entrySize = (name: string, value: string): number => name.length + value.length + ENTRY_OVERHEAD;

/** A header block whose fields, counted as RFC 7540 6.5.2 counts them, exceed the decoder's limit. The table is still in step. */
export class HeaderListTooLargeError extends HpackError {
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`header list of ${bytes} bytes is over the limit of ${limit}`);
    this.name = 'HeaderListTooLargeError';
  }
}

/**
 * One direction of one connection's header compression (RFC 7541): the
 * static table, a dynamic table that the peer's encoder fills and sizes, and
 * Huffman coding. Every block must be decoded in the order it arrived, whole:
 * a block left half-read would leave the table out of step with the peer's,
 * so any HpackError but HeaderListTooLargeError ends the connection
 * (COMPRESSION_ERROR).
 */
export class HpackDecoder {
  /** Newest first, as indices 62, 63, ... address them. */
  private readonly table: [string, string][] = [];
  private tableBytes = 0;
  private maxTableBytes: number;

  /**
   * @param settingsTableBytes our SETTINGS_HEADER_TABLE_SIZE: the most the peer's size updates may ask for
   * @param maxHeaderListBytes the most a block's fields may add up to (SETTINGS_MAX_HEADER_LIST_SIZE)
   */
  constructor(
    private settingsTableBytes = 4096,
    private readonly maxHeaderListBytes = Number.POSITIVE_INFINITY,
  ) {
    this.maxTableBytes = settingsTableBytes;
  }

  /** The dynamic table's entries, newest first (for tests and debugging). */
  get dynamicTable(): readonly (readonly [string, string])[] {
    return this.table;
  }

  /** Our SETTINGS_HEADER_TABLE_SIZE changed and the peer acknowledged it. */
  setSettingsTableBytes(bytes: number): void {
    this.settingsTableBytes = bytes;
    if (this.maxTableBytes > bytes) this.resize(bytes);
  }

  /** Decodes a complete header block (HEADERS plus its CONTINUATIONs) into name/value pairs, in order. */
  decode(block: Uint8Array): [string, string][] {
    const fields: [string, string][] = [];
    const r = new Reader(block);
    let listBytes = 0;
    let first = true;
    while (!r.done) {
      const lead = r.byte();
      let field: [string, string];
      if ((lead & 0x80) !== 0) {
        field = this.entry(r.integer(7, lead));
      } else if ((lead & 0xe0) === 0x20) {
        // RFC 7541 4.2: size updates come first in a block, and stay within our setting.
        if (!first) throw new HpackError('dynamic table size update after the first field of a block');
        const size = r.integer(5, lead);
        if (size > this.settingsTableBytes) throw new HpackError(`dynamic table size update to ${size}, over the ${this.settingsTableBytes} allowed`);
        this.resize(size);
        continue;
      } else {
        // Literal with incremental indexing (01, 6-bit index), or without / never indexed (000x, 4-bit index).
        const indexed = (lead & 0xc0) === 0x40;
        const index = indexed ? r.integer(6, lead) : r.integer(4, lead);
        const name = index === 0 ? r.string() : this.entry(index)[0];
        field = [name, r.string()];
        if (indexed) this.add(field);
      }
      first = false;
      listBytes += entrySize(field[0], field[1]);
      fields.push(field);
    }
    if (listBytes > this.maxHeaderListBytes) throw new HeaderListTooLargeError(listBytes, this.maxHeaderListBytes);
    return fields;
  }

  private entry(index: number): [string, string] {
    if (index === 0) throw new HpackError('index 0');
    if (index <= STATIC_TABLE.length) {
      const [name, value] = STATIC_TABLE[index - 1] as readonly [string, string];
      return [name, value];
    }
    const entry = this.table[index - STATIC_TABLE.length - 1];
    if (entry === undefined) throw new HpackError(`index ${index} is past the dynamic table (${this.table.length} entries)`);
    return entry;
  }

  private add(field: [string, string]): void {
    const size = entrySize(field[0], field[1]);
    // RFC 7541 4.4: an entry larger than the table empties it and is not added.
    this.evictTo(this.maxTableBytes - size);
    if (size <= this.maxTableBytes) {
      this.table.unshift(field);
      this.tableBytes += size;
    }
  }

  private resize(bytes: number): void {
    this.maxTableBytes = bytes;
    this.evictTo(bytes);
  }

  private evictTo(bytes: number): void {
    while (this.tableBytes > Math.max(0, bytes)) {
      const [name, value] = this.table.pop() as [string, string];
      this.tableBytes -= entrySize(name, value);
    }
  }
}
