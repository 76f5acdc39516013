/**
 * Prints replies like redis-cli, or as JSON.
 *
 * Text: a value that is valid UTF-8 prints as text, in double quotes (with
 * the escapes the REPL's tokenizer reads back: \n \t \" \\ \xHH) when it
 * could be misread: empty, edged with spaces, holding control or invisible
 * characters, starting with a quote or "(", or looking like hex. Anything
 * else prints as hex, 0x00ff.... Missing values print (nil), counts
 * (integer) N, lists numbered, hashes "field => value".
 *
 * JSON (--json): one document per reply. Values are objects saying how
 * their bytes are written: {"utf8": "..."} when the bytes are valid UTF-8,
 * else {"base64": "..."}; a missing value is null; keys, fields, counts and
 * status words are plain JSON strings and numbers.
 */
import { strictText } from '../client/index.ts';
import type { Reply, Scalar } from './qkv-reply.ts';

// Characters a reader could not see or that would break the one-line layout.
const NEEDS_ESCAPE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/u;
const encoder = new TextEncoder();

function hex(bytes: Uint8Array): string {
  return `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Whether text printed bare could be misread as something else. */
function ambiguous(s: string, bareSpaces: boolean): boolean {
  return (
    s === '' ||
    s.trim() !== s ||
    (!bareSpaces && /\s/.test(s)) ||
    NEEDS_ESCAPE.test(s) ||
    /^["'(]/.test(s) ||
    /^0x[0-9a-f]*$/i.test(s)
  );
}

/** s in double quotes, escaped so the REPL reads it back as the same bytes. */
export function quote(s: string): string {
  let out = '"';
  for (const c of s) {
    if (c === '"' || c === '\\') out += `\\${c}`;
    else if (c === '\n') out += '\\n';
    else if (c === '\r') out += '\\r';
    else if (c === '\t') out += '\\t';
    else if (NEEDS_ESCAPE.test(c)) for (const b of encoder.encode(c)) out += `\\x${b.toString(16).padStart(2, '0')}`;
    else out += c;
  }
  return `${out}"`;
}

/** A key, field or text value: bare when unambiguous (spaces allowed only where nothing follows on the line). */
export function displayText(s: string, bareSpaces = true): string {
  return ambiguous(s, bareSpaces) ? quote(s) : s;
}

/** A stored value: text when valid UTF-8, hex otherwise. */
export function displayBytes(bytes: Uint8Array, bareSpaces = true): string {
  const s = strictText(bytes);
  return s === null ? hex(bytes) : displayText(s, bareSpaces);
}

/** A reply as the lines redis-cli would print (no trailing newline). */
export function formatText(reply: Reply): string {
  switch (reply.kind) {
    case 'nil':
      return '(nil)';
    case 'status':
      return reply.text;
    case 'integer':
      return `(integer) ${reply.value}`;
    case 'bytes':
      return displayBytes(reply.value);
    case 'text':
      return displayText(reply.value);
    case 'list': {
      if (reply.items.length === 0) return '(empty list)';
      const width = String(reply.items.length).length;
      return reply.items
        .map((item, i) => {
          const prefix = `${String(i + 1).padStart(width)}) `;
          return indentRest(prefix + formatText(item), prefix.length);
        })
        .join('\n');
    }
    case 'hash':
      if (reply.fields.length === 0) return '(empty hash)';
      return reply.fields.map(([field, value]) => `${displayText(field, false)} => ${displayBytes(value)}`).join('\n');
    case 'record': {
      const labels = reply.fields.map(([name]) => words(name));
      const width = Math.max(...labels.map((label) => label.length));
      return reply.fields
        .map(([, value], i) => {
          const label = labels[i] ?? '';
          const shown = inline(value);
          return shown.includes('\n') ? `${label}:\n${indentAll(shown, 2)}` : `${`${label}:`.padEnd(width + 1)} ${shown}`;
        })
        .join('\n');
    }
    case 'table':
      return table(reply.columns, reply.rows);
    case 'event': {
      const { index, type, key, value, valueType } = reply.event;
      const what = value !== null ? displayBytes(value) : type === 'put' ? `(${valueType})` : '';
      return `${index} ${type.toUpperCase()} ${displayText(key, false)}${what === '' ? '' : ` ${what}`}`;
    }
  }
}

/** A value inside a record or table: numbers and words bare. */
function inline(value: Scalar | Reply): string {
  if (typeof value !== 'object') return typeof value === 'string' ? value : String(value);
  if (value.kind === 'integer') return String(value.value);
  return formatText(value);
}

function table(columns: readonly string[], rows: readonly (readonly Scalar[])[]): string {
  if (rows.length === 0) return '(empty)';
  const cells = [columns.map((c) => words(c).toUpperCase()), ...rows.map((row) => row.map((cell) => inline(cell)))];
  const widths = columns.map((_, c) => Math.max(...cells.map((row) => (row[c] ?? '').length)));
  return cells.map((row) => row.map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c] ?? 0))).join('  ')).join('\n');
}

/** A camelCase JSON name as words for people: appliedIndex -> applied index. */
function words(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
}

function indentRest(text: string, by: number): string {
  return text.replaceAll('\n', `\n${' '.repeat(by)}`);
}

function indentAll(text: string, by: number): string {
  return ' '.repeat(by) + indentRest(text, by);
}

/** JSON for bytes: {"utf8": ...} when valid UTF-8, else {"base64": ...}. */
export function jsonBytes(bytes: Uint8Array): { utf8: string } | { base64: string } {
  const s = strictText(bytes);
  return s === null ? { base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') } : { utf8: s };
}

/** A reply as a JSON-able value. */
export function toJson(reply: Reply): unknown {
  switch (reply.kind) {
    case 'nil':
      return null;
    case 'status':
      return reply.text;
    case 'integer':
      return reply.value;
    case 'bytes':
      return jsonBytes(reply.value);
    case 'text':
      return reply.value;
    case 'list':
      return reply.items.map(toJson);
    case 'hash':
      return Object.fromEntries(reply.fields.map(([field, value]) => [field, jsonBytes(value)]));
    case 'record':
      return Object.fromEntries(reply.fields.map(([label, value]) => [label, typeof value === 'object' ? toJson(value) : value]));
    case 'table':
      return reply.rows.map((row) => Object.fromEntries(reply.columns.map((column, c) => [column, row[c] ?? null])));
    case 'event': {
      const { index, type, key, value, valueType } = reply.event;
      return { index, type, key, value: value === null ? null : jsonBytes(value), valueType };
    }
  }
}

/** One JSON document on one line. */
export function formatJson(reply: Reply): string {
  return JSON.stringify(toJson(reply));
}
