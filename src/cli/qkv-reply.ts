/**
 * What a command answers, before it is printed: the commands build these,
 * the formatter (qkv-format.ts) turns them into redis-cli-like text or JSON.
 */
import type { WatchEvent } from '../client/index.ts';

/** A plain value in a record or table cell. */
export type Scalar = string | number | boolean;

export type Reply =
  /** A missing value: (nil) / null. */
  | { readonly kind: 'nil' }
  /** A status word: OK, a type name. */
  | { readonly kind: 'status'; readonly text: string }
  /** A count or a number: (integer) N. */
  | { readonly kind: 'integer'; readonly value: number }
  /** A stored value: text when it is UTF-8, hex otherwise. */
  | { readonly kind: 'bytes'; readonly value: Uint8Array }
  /** A key or field name (always text). */
  | { readonly kind: 'text'; readonly value: string }
  /** An ordered list: numbered lines. */
  | { readonly kind: 'list'; readonly items: readonly Reply[] }
  /** A hash: field => value lines. */
  | { readonly kind: 'hash'; readonly fields: readonly (readonly [string, Uint8Array])[] }
  /** Named facts (camelCase names): "applied index: 9" lines / a JSON object. */
  | { readonly kind: 'record'; readonly fields: readonly (readonly [string, Scalar | Reply])[] }
  /** Rows under column headings (camelCase names, shown as APPLIED INDEX) / a JSON array of objects. */
  | { readonly kind: 'table'; readonly columns: readonly string[]; readonly rows: readonly (readonly Scalar[])[] }
  /** One watch event: one line / one JSON object. */
  | { readonly kind: 'event'; readonly event: WatchEvent };

export const NIL: Reply = { kind: 'nil' };
export const OK: Reply = { kind: 'status', text: 'OK' };

export function integer(value: number | boolean): Reply {
  return { kind: 'integer', value: typeof value === 'boolean' ? Number(value) : value };
}

export function bytesOrNil(value: Uint8Array | null | undefined): Reply {
  return value === null || value === undefined ? NIL : { kind: 'bytes', value };
}

export function byteList(values: readonly Uint8Array[]): Reply {
  return { kind: 'list', items: values.map((value) => ({ kind: 'bytes', value })) };
}
