import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CodecError,
  decodeCommand,
  decodeEntry,
  decodeResult,
  encodeCommand,
  encodeEntry,
  encodeResult,
  FORMAT_V1,
  InvalidArgumentError,
  OPCODES,
  ResourceExhaustedError,
  StaleSequenceError,
  WrongTypeError,
} from '../../../src/state/index.ts';
import type { Command, Result } from '../../../src/state/index.ts';
import { commandArb, plain } from './arbitraries.ts';
import { b } from './helpers.ts';

/** Commands as plain data: decoding fills in defaults the encoder was free to omit. */
function normalize(c: Command): unknown {
  const json = (x: unknown): unknown => JSON.parse(JSON.stringify(x, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v)));
  switch (c.op) {
    case 'set':
      return json({ ...c, ttlMs: c.ttlMs ?? 0, condition: c.condition ?? 'always', keepTtl: c.keepTtl ?? false });
    case 'lpop':
    case 'rpop':
      return json({ ...c, count: c.count ?? 0 });
    case 'keys':
      return json({ ...c, pattern: c.pattern ?? '', limit: c.limit ?? 0, cursor: c.cursor ?? '' });
    case 'txn':
      return json({ ...c, success: c.success.map(normalize), failure: c.failure.map(normalize) });
    default:
      return json(c);
  }
}

describe('command codec', () => {
  it('round-trips every command', () => {
    fc.assert(
      fc.property(commandArb, (command) => {
        const bytes = encodeCommand(command);
        expect(bytes[0]).toBe(FORMAT_V1);
        expect(normalize(decodeCommand(bytes))).toEqual(normalize(command));
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips entry payloads with and without a session', () => {
    fc.assert(
      fc.property(
        commandArb,
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.option(fc.record({ clientId: fc.string({ maxLength: 20 }), sequence: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) })),
        (command, timeMs, session) => {
          const decoded = decodeEntry(encodeEntry({ timeMs, session, command }));
          expect(decoded.timeMs).toBe(timeMs);
          expect(decoded.session).toEqual(session);
          expect(normalize(decoded.command)).toEqual(normalize(command));
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('lays out a Set entry compactly, as documented', () => {
    const bytes = encodeEntry({ timeMs: 300, session: { clientId: 'c', sequence: 7 }, command: { op: 'set', key: 'k', value: b('v'), ttlMs: 5, condition: 'ifAbsent' } });
    // format, flags(session), time 300 as LEB128, client id, sequence, opcode, key, set flags, ttl, value
    expect(Array.from(bytes)).toEqual([1, 1, 0xac, 0x02, 1, 0x63, 7, OPCODES.set, 1, 0x6b, 1, 5, 1, 0x76]);
  });

  it('puts small entries in buffers pooled with other entries, and large ones in buffers of their own', () => {
    const entries = [1, 2, 3].map((i) => encodeEntry({ timeMs: i, session: null, command: { op: 'set', key: `k${i}`, value: new Uint8Array(200).fill(i) } }));
    // Three entries of ~210 bytes: at most one pool boundary falls between them.
    expect(new Set(entries.map((e) => e.buffer)).size).toBeLessThan(3);
    for (const e of entries) expect(e.buffer.byteLength).toBeGreaterThan(e.length);
    expect(entries.map((e, i) => { const c = decodeEntry(e).command; return c.op === 'set' && c.value[0] === i + 1 && c.key; })).toEqual(['k1', 'k2', 'k3']);
    const large = encodeEntry({ timeMs: 1, session: null, command: { op: 'set', key: 'big', value: new Uint8Array(8192) } });
    expect(large.buffer.byteLength).toBe(large.length);
  });

  it('reads a large Set value as a view of its entry (the state copies a lasting one into a slab); list items as views only of an entry that owns its buffer', () => {
    const value = new Uint8Array(200).fill(7);
    const pooled = encodeEntry({ timeMs: 1, session: null, command: { op: 'set', key: 'k', value } });
    const set = decodeEntry(pooled).command;
    expect(set.op === 'set' && set.value.buffer).toBe(pooled.buffer);
    const push = encodeEntry({ timeMs: 1, session: null, command: { op: 'rpush', key: 'l', values: [value] } });
    const item = decodeEntry(push).command;
    expect(item.op === 'rpush' && item.values[0]?.buffer).not.toBe(push.buffer);
    const own = push.slice();
    const viewed = decodeEntry(own).command;
    expect(viewed.op === 'rpush' && viewed.values[0]?.buffer).toBe(own.buffer);
    // A Set value in a buffer larger than a pool (a big message's) is copied: it must not pin it.
    const foreign = new Uint8Array(128 << 10);
    foreign.set(pooled, 100);
    const copied = decodeEntry(foreign.subarray(100, 100 + pooled.length)).command;
    expect(copied.op === 'set' && copied.value.buffer).not.toBe(foreign.buffer);
    expect(copied.op === 'set' && Array.from(copied.value)).toEqual(Array.from(value));
  });

  it('refuses a future format, unknown flags, unknown opcodes and trailing bytes with a CodecError', () => {
    const good = encodeEntry({ timeMs: 1, session: null, command: { op: 'get', key: 'k' } });
    const future = good.slice();
    future[0] = 2;
    expect(() => decodeEntry(future)).toThrow(/unsupported payload format 2/);
    const flags = good.slice();
    flags[1] = 0x80;
    expect(() => decodeEntry(flags)).toThrow(CodecError);
    const opcode = good.slice();
    opcode[3] = 250;
    expect(() => decodeEntry(opcode)).toThrow(/unknown opcode 250/);
    expect(() => decodeEntry(new Uint8Array([...good, 0]))).toThrow(/trailing/);
    expect(() => decodeEntry(new Uint8Array(0))).toThrow(/empty payload/);
    expect(() => decodeCommand(good.subarray(0, 4))).toThrow(CodecError);
  });

  it('throws nothing but CodecError on arbitrary or truncated bytes', () => {
    const entries = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      commandArb.chain((command) => {
        const bytes = encodeEntry({ timeMs: 5, session: null, command });
        return fc.tuple(fc.nat(bytes.length), fc.nat(bytes.length - 1), fc.nat(255)).map(([cut, at, byte]) => {
          const copy = bytes.slice(0, Math.max(1, cut));
          if (at < copy.length) copy[at] = byte;
          return copy;
        });
      }),
    );
    fc.assert(
      fc.property(entries, (bytes) => {
        try {
          decodeEntry(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(CodecError);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses what it cannot encode faithfully', () => {
    expect(() => encodeCommand({ op: 'get', key: 'bad\ud800' })).toThrow(InvalidArgumentError);
    expect(() => encodeCommand({ op: 'lindex', key: 'k', index: 2 ** 53 })).toThrow(InvalidArgumentError);
    expect(() => encodeCommand({ op: 'expire', key: 'k', ttlMs: -1 })).toThrow(InvalidArgumentError);
    expect(() => encodeCommand({ op: 'txn', compares: [], success: [{ op: 'txn', compares: [], success: [], failure: [] } as never], failure: [] })).toThrow(
      /cannot be part of a Txn/,
    );
    expect(() =>
      encodeCommand({ op: 'txn', compares: [{ target: 'type', key: 'k', op: 'lt' as never, type: 'none' }], success: [], failure: [] }),
    ).toThrow(/eq or ne/);
  });

  it('decodes a multi-byte UTF-8 key and refuses invalid UTF-8', () => {
    const bytes = encodeCommand({ op: 'get', key: 'clé-😀-' + 'x'.repeat(40) });
    expect(decodeCommand(bytes)).toEqual({ op: 'get', key: 'clé-😀-' + 'x'.repeat(40) });
    const bad = new Uint8Array([FORMAT_V1, OPCODES.get, 2, 0xc3, 0x28]);
    expect(() => decodeCommand(bad)).toThrow(/not valid UTF-8/);
  });
});

describe('result codec', () => {
  const results: Result[] = [
    { kind: 'ok' },
    { kind: 'value', found: false, value: null },
    { kind: 'value', found: true, value: b('hello') },
    { kind: 'set', applied: false, previousFound: true, previous: null },
    { kind: 'set', applied: true, previousFound: true, previous: b('old') },
    { kind: 'count', count: 12345678901 },
    { kind: 'applied', applied: true },
    { kind: 'ttl', ttlMs: -2 },
    { kind: 'ttl', ttlMs: 1500 },
    { kind: 'type', type: 'hash' },
    { kind: 'keys', keys: ['a', 'é'], nextCursor: '12345' },
    { kind: 'values', values: [b('x'), new Uint8Array(0)] },
    { kind: 'fields', fields: [['f', b('1')], ['g', b('2')]] },
    { kind: 'txn', succeeded: false, results: [{ kind: 'ok' }, { kind: 'count', count: 2 }] },
    { kind: 'error', error: new WrongTypeError("WRONGTYPE key 'k' holds a list, not a string") },
    { kind: 'error', error: new ResourceExhaustedError('full') },
    { kind: 'error', error: new StaleSequenceError('old') },
  ];

  it.each(results.map((r) => [r.kind, r] as const))('round-trips a %s result', (_kind, result) => {
    const bytes = encodeResult(result);
    const back = decodeResult(bytes);
    expect(plain(back)).toEqual(plain(result));
    if (result.kind === 'error' && back.kind === 'error') {
      expect(back.error).toBeInstanceOf(result.error.constructor);
      expect(back.error.message).toBe(result.error.message);
    }
  });

  it('refuses bad result bytes with a CodecError', () => {
    expect(() => decodeResult(new Uint8Array([9, 0]))).toThrow(/unsupported result format 9/);
    expect(() => decodeResult(new Uint8Array([1, 99]))).toThrow(/unknown result kind/);
    const error = encodeResult({ kind: 'error', error: new WrongTypeError('x') });
    const text = new TextDecoder().decode(error).replace('WRONGTYPE', 'NOPE_CODE');
    expect(() => decodeResult(new TextEncoder().encode(text))).toThrow(/unknown error code/);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        try {
          decodeResult(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(CodecError);
        }
      }),
    );
  });
});
