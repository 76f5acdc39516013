/**
 * Binary encoding of results: the server returns them to clients, and a
 * session stores the last one per client to answer a retry. Versioned like
 * commands: u8 format (1), then the result:
 *
 *   u8 kind (ok value set count applied ttl type keys values fields txn error = 0..11), then
 *   value: u8 found, [bytes]        set: u8 flags (1 applied, 2 previousFound, 4 previous follows), [bytes]
 *   count: varint                   applied: u8          ttl: zigzag        type: u8 (none string list hash)
 *   keys: list<string>, string next values: list<bytes>  fields: list<string, bytes>
 *   txn: u8 succeeded, list<result> error: string code, string message
 */
import { ByteReader, ByteWriter } from './bytes.ts';
import { CodecError, ERROR_CODES, errorFromCode } from './errors.ts';
import type { StateErrorCode } from './errors.ts';
import type { Result } from './results.ts';
import type { ValueType } from './values.ts';

export const RESULT_FORMAT_V1 = 1;

const KINDS: readonly Result['kind'][] = ['ok', 'value', 'set', 'count', 'applied', 'ttl', 'type', 'keys', 'values', 'fields', 'txn', 'error'];
const TYPES: readonly (ValueType | 'none')[] = ['none', 'string', 'list', 'hash'];

const writer = new ByteWriter(1024);

export function encodeResult(result: Result): Uint8Array {
  writer.reset();
  writer.u8(RESULT_FORMAT_V1);
  writeResult(writer, result);
  return writer.finish();
}

export function decodeResult(bytes: Uint8Array): Result {
  const reader = new ByteReader(bytes);
  if (reader.remaining === 0) throw new CodecError('empty result');
  const format = reader.u8();
  if (format !== RESULT_FORMAT_V1) throw new CodecError(`unsupported result format ${format} (this build reads ${RESULT_FORMAT_V1})`);
  const result = readResult(reader, 0);
  reader.expectEnd('result');
  return result;
}

function writeResult(w: ByteWriter, r: Result): void {
  w.u8(KINDS.indexOf(r.kind));
  switch (r.kind) {
    case 'ok':
      return;
    case 'value':
      w.u8(r.found ? 1 : 0);
      if (r.found) w.bytes(r.value ?? new Uint8Array(0));
      return;
    case 'set':
      w.u8((r.applied ? 1 : 0) | (r.previousFound ? 2 : 0) | (r.previous !== null ? 4 : 0));
      if (r.previous !== null) w.bytes(r.previous);
      return;
    case 'count':
      w.varint(r.count);
      return;
    case 'applied':
      w.u8(r.applied ? 1 : 0);
      return;
    case 'ttl':
      w.zigzag(r.ttlMs);
      return;
    case 'type':
      w.u8(TYPES.indexOf(r.type));
      return;
    case 'keys':
      w.varint(r.keys.length);
      for (const key of r.keys) w.string(key);
      w.string(r.nextCursor);
      return;
    case 'values':
      w.varint(r.values.length);
      for (const value of r.values) w.bytes(value);
      return;
    case 'fields':
      w.varint(r.fields.length);
      for (const [field, value] of r.fields) {
        w.string(field);
        w.bytes(value);
      }
      return;
    case 'txn':
      w.u8(r.succeeded ? 1 : 0);
      w.varint(r.results.length);
      for (const inner of r.results) writeResult(w, inner);
      return;
    case 'error':
      w.string(r.error.code);
      w.string(r.error.message);
      return;
  }
}

function readResult(r: ByteReader, depth: number): Result {
  const kind = KINDS[r.u8()];
  switch (kind) {
    case 'ok':
      return { kind };
    case 'value': {
      const found = readBool(r);
      return { kind, found, value: found ? r.bytes() : null };
    }
    case 'set': {
      const flags = r.u8();
      if ((flags & ~7) !== 0) throw new CodecError('set result has unknown flags');
      return { kind, applied: (flags & 1) !== 0, previousFound: (flags & 2) !== 0, previous: (flags & 4) !== 0 ? r.bytes() : null };
    }
    case 'count':
      return { kind, count: r.varint() };
    case 'applied':
      return { kind, applied: readBool(r) };
    case 'ttl':
      return { kind, ttlMs: r.zigzag() };
    case 'type': {
      const type = TYPES[r.u8()];
      if (type === undefined) throw new CodecError('type result has an unknown type');
      return { kind, type };
    }
    case 'keys': {
      const n = r.length();
      const keys = new Array<string>(n);
      for (let i = 0; i < n; i++) keys[i] = r.string();
      return { kind, keys, nextCursor: r.string() };
    }
    case 'values': {
      const n = r.length();
      const values = new Array<Uint8Array>(n);
      for (let i = 0; i < n; i++) values[i] = r.bytes();
      return { kind, values };
    }
    case 'fields': {
      const n = r.length(2);
      const fields = new Array<readonly [string, Uint8Array]>(n);
      for (let i = 0; i < n; i++) {
        const field = r.string();
        fields[i] = [field, r.bytes()];
      }
      return { kind, fields };
    }
    case 'txn': {
      if (depth > 0) throw new CodecError('a Txn result inside a Txn result');
      const succeeded = readBool(r);
      const n = r.length();
      const results = new Array<Result>(n);
      for (let i = 0; i < n; i++) results[i] = readResult(r, depth + 1);
      return { kind, succeeded, results };
    }
    case 'error': {
      const code = r.string();
      if (!(ERROR_CODES as readonly string[]).includes(code)) throw new CodecError(`unknown error code '${code}'`);
      return { kind, error: errorFromCode(code as StateErrorCode, r.string()) };
    }
    default:
      throw new CodecError('unknown result kind');
  }
}

function readBool(r: ByteReader): boolean {
  const b = r.u8();
  if (b > 1) throw new CodecError(`bad boolean byte ${b}`);
  return b === 1;
}
