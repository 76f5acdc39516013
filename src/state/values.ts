/**
 * The three value types a key can hold, and their snapshot encoding.
 *
 * A string is a Uint8Array treated as immutable: the state never writes into
 * one (Set replaces it), so results and snapshot rows share it without copying.
 * Lists and hashes keep small items in the state's arena (arena.ts).
 *
 * Encoded forms (the `value` column of a snapshot row):
 *   string: the bytes themselves, so the sqlite3 shell shows them as they are
 *   list:   varint count, then per item: varint length, bytes
 *   hash:   varint count, then per field: varint length, UTF-8 field, varint length, bytes
 */
import type { Arena } from './arena.ts';
import { ByteReader, ByteWriter } from './bytes.ts';
import { CodecError } from './errors.ts';
import { HashValue } from './hash-value.ts';
import { ListValue } from './list-value.ts';

export type StoredValue = Uint8Array | ListValue | HashValue;

/** The values changed in place (strings are replaced whole). */
export type Container = ListValue | HashValue;

/** The type names of the API and of snapshot rows. */
export type ValueType = 'string' | 'list' | 'hash';

export function typeOf(value: StoredValue): ValueType {
  if (value instanceof Uint8Array) return 'string';
  return value instanceof ListValue ? 'list' : 'hash';
}

/** Accounted bytes of a value (see memory.ts). */
export function valueBytes(value: StoredValue): number {
  return value instanceof Uint8Array ? value.length : value.bytes;
}

/** A copy that later in-place changes to the original cannot reach. */
export function cloneValue(value: StoredValue): StoredValue {
  return value instanceof Uint8Array ? value : value.clone();
}

/** Gives a value's arena slots back once the state no longer holds it. */
export function disposeValue(value: StoredValue): void {
  if (!(value instanceof Uint8Array)) value.dispose();
}

const writer = new ByteWriter(4096);

export function encodeValue(value: StoredValue): Uint8Array {
  if (value instanceof Uint8Array) return value;
  writer.reset();
  if (value instanceof ListValue) {
    writer.varint(value.length);
    value.writeItems(writer);
  } else {
    writer.varint(value.size);
    value.writeFields(writer);
  }
  return writer.finish();
}

export function decodeValue(type: ValueType, bytes: Uint8Array, arena: Arena): StoredValue {
  switch (type) {
    case 'string':
      return bytes;
    case 'list': {
      const reader = new ByteReader(bytes);
      const count = reader.length();
      const list = new ListValue(arena, count);
      for (let i = 0; i < count; i++) list.pushBack(reader.bytes());
      reader.expectEnd('list value');
      if (count === 0) throw new CodecError('an empty list cannot be stored');
      return list;
    }
    case 'hash': {
      const reader = new ByteReader(bytes);
      const count = reader.length(2);
      const hash = new HashValue(arena);
      for (let i = 0; i < count; i++) {
        const field = reader.string();
        if (!hash.set(field, reader.bytes())) throw new CodecError(`hash value repeats field '${field}'`);
      }
      reader.expectEnd('hash value');
      if (count === 0) throw new CodecError('an empty hash cannot be stored');
      return hash;
    }
    default:
      throw new CodecError(`unknown value type '${String(type)}'`);
  }
}
