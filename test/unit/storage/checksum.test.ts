import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { FieldCrc, FieldEncoder, crc32, crc32Portable } from '../../../src/storage/checksum.ts';

describe('crc32', () => {
  it('matches the standard check value', () => {
    const check = new TextEncoder().encode('123456789');
    expect(crc32Portable(check)).toBe(0xcbf43926);
    expect(crc32(check)).toBe(0xcbf43926);
  });

  it('continues from a running value, so a record can be checksummed in pieces', () => {
    const bytes = new Uint8Array(1000).map((_, i) => (i * 31 + 7) & 0xff);
    for (const split of [0, 1, 7, 8, 9, 500, 999, 1000]) {
      expect(crc32Portable(bytes.subarray(split), crc32Portable(bytes.subarray(0, split)))).toBe(crc32Portable(bytes));
      expect(crc32(bytes.subarray(split), crc32(bytes.subarray(0, split)))).toBe(crc32Portable(bytes));
    }
  });

  it('of nothing is the running value, also for an empty buffer with no backing memory', () => {
    expect(crc32(new Uint8Array(0), 12345)).toBe(12345);
    expect(crc32Portable(new Uint8Array(0), 12345)).toBe(12345);
    expect(crc32(Buffer.from(new ArrayBuffer(0)), 12345)).toBe(12345);
  });

  it.skipIf(typeof zlib.crc32 !== 'function')('the portable version agrees with node:zlib on every length and alignment', () => {
    let seed = 1;
    const next = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    for (let length = 0; length < 300; length++) {
      const buffer = new Uint8Array(length + 3).map(next);
      for (const offset of [0, 1, 3]) {
        const view = buffer.subarray(offset, offset + length);
        const start = next() * 0x01010101;
        expect(crc32Portable(view, start >>> 0)).toBe(zlib.crc32(view, start >>> 0));
      }
    }
  });
});

describe('FieldEncoder', () => {
  it('length-prefixes strings, so field boundaries change the checksum', () => {
    const encoder = new FieldEncoder();
    expect(encoder.reset().string('ab').string('c').crc()).not.toBe(encoder.reset().string('a').string('bc').crc());
  });

  it('grows for long strings and multi-byte characters', () => {
    const small = new FieldEncoder(8);
    const large = new FieldEncoder(1 << 16);
    const text = 'ключ-🔑-'.repeat(500);
    expect(small.reset().u53(2 ** 53 - 1).string(text).u8(1).crc()).toBe(large.reset().u53(2 ** 53 - 1).string(text).u8(1).crc());
    const bytes = new TextEncoder().encode(text);
    const expected = crc32(Uint8Array.of(1), crc32(bytes, crc32(Uint8Array.of(0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, ...u32(bytes.length)))));
    expect(small.reset().u53(2 ** 53 - 1).string(text).u8(1).crc()).toBe(expected);
  });

  it('encodes the UTF-8 bytes of a string exactly as the string', () => {
    const small = new FieldEncoder(8);
    const text = 'ключ-🔑-'.repeat(50);
    const framed = Uint8Array.of(7, 7, ...new TextEncoder().encode(text), 7);
    expect(small.reset().u8(2).bytes(framed, 2, framed.length - 1).u8(1).crc()).toBe(new FieldEncoder().reset().u8(2).string(text).u8(1).crc());
  });
});

describe('FieldCrc', () => {
  it('gives the CRC of what FieldEncoder encodes, for any fields, spans short and long, from any running value', () => {
    let seed = 7;
    const next = (): number => (seed = (seed * 1103515245 + 12345) >>> 0);
    const source = new Uint8Array(400).map(() => next() >>> 24);
    const encoder = new FieldEncoder(8);
    const fieldCrc = new FieldCrc();
    for (let record = 0; record < 300; record++) {
      const start = next() % 2 === 0 ? 0 : (next() >>> 8) % 0xffffffff;
      encoder.reset();
      fieldCrc.reset(start);
      const fields = 1 + (next() % 6);
      for (let f = 0; f < fields; f++) {
        const kind = next() % 4;
        if (kind === 0) {
          const v = next() >>> 24;
          encoder.u8(v);
          fieldCrc.u8(v);
        } else if (kind === 1) {
          const v = next();
          encoder.u32(v);
          fieldCrc.u32(v);
        } else if (kind === 2) {
          const v = next() % 2 === 0 ? next() : (next() % 0x1fffff) * 0x1_0000_0000 + next();
          encoder.u53(v);
          fieldCrc.u53(v);
        } else {
          // Lengths 0 to 200: below and above the span FieldCrc feeds byte by byte.
          const from = next() % 200;
          const to = from + (next() % 201);
          encoder.bytes(source, from, to);
          fieldCrc.bytes(source, from, to);
        }
      }
      expect(fieldCrc.value()).toBe(encoder.crc(start));
    }
  });

  it('of no fields is the running value', () => {
    expect(new FieldCrc().reset(0xdeadbeef).value()).toBe(0xdeadbeef);
  });
});

function u32(value: number): number[] {
  return [value >>> 24, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
}
