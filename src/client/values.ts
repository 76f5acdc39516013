/**
 * Values cross the API as bytes. Callers may pass a string, which is sent
 * UTF-8 encoded; answers are always Uint8Array (decode with `text`).
 */

/** A value to store: bytes as they are, or a string sent as UTF-8. */
export type Value = Uint8Array | string;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8');
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

/** The bytes of a value: a string is UTF-8 encoded. */
export function toBytes(value: Value): Uint8Array {
  return typeof value === 'string' ? encoder.encode(value) : value;
}

/** A value as text (invalid UTF-8 sequences become U+FFFD). */
export function text(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** The value as text when it is valid UTF-8, else null. */
export function strictText(bytes: Uint8Array): string | null {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * A plain Uint8Array view of bytes from grpc-js (a Buffer): same memory, no
 * copy, but without Buffer's different toString/equality, so answers compare
 * equal to the Uint8Arrays callers build.
 */
export function plainBytes(bytes: Uint8Array): Uint8Array {
  return Object.getPrototypeOf(bytes) === Uint8Array.prototype ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
