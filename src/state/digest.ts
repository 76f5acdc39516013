/**
 * The state digest: a 64-bit sum (two int32 lanes, wrapping) of one hash per
 * key and one per session. A sum does not depend on the order keys were
 * written, and a change is O(1): subtract the old part, add the new. Two
 * replicas at the same applied index have the same digest, and a divergence
 * shows up in it with probability 1 - 2^-64 or so (not adversarially).
 *
 * A key's part is split in two so that changing one half does not rehash the
 * other: valuePart(key, type, value) and expiryPart(key, expiry), 0 for a key
 * without expiry. Value hashes of lists and hashes are kept up to date by
 * ListValue and HashValue (a hash's overwrites settled before the digest is
 * read, see keyspace.ts), so no part ever needs the whole value again.
 */
import { finish, hashBytes, hashString, hex32, lanes, step0, step1 } from './hash.ts';
import type { Container, StoredValue } from './values.ts';

const KEY_SEED = 0x4b455953; // 'KEYS'
const STRING_SEED = 0x53545247; // 'STRG'
const TAG_STRING = 0x5354;
const TAG_LIST = 0x4c49;
const HASH_OFFSET0 = 0x48415348; // 'HASH'
const HASH_OFFSET1 = 0x68617368 | 0; // 'hash'
const EXPIRY_SEED = 0x45585052; // 'EXPR'
const SESSION_SEED = 0x53455353; // 'SESS'
const RESULT_SEED = 0x52534c54; // 'RSLT'

/** The key's own hash into `lanes`; lane 0 also orders the Keys scan. */
export function keyHash(key: string): void {
  hashString(key, KEY_SEED);
}

/** A key's value part into `lanes`: key hash lanes, type and content hash (and size, for lists). */
export function valuePart(k0: number, k1: number, value: StoredValue): void {
  if (value instanceof Uint8Array) {
    hashBytes(value, STRING_SEED);
    finish(step0(step0(k0, TAG_STRING), lanes[0] as number), step1(step1(k1, TAG_STRING), lanes[1] as number));
    return;
  }
  containerPart(k0, k1, value);
}

/**
 * valuePart of a list or hash, for callers that know it is one (no type test).
 *
 * A hash's part, per lane: (field sum + a constant standing for the type)
 * times the key's hash lane made odd. Multiplying by an odd number is a
 * bijection mod 2^32, so every change of the field sum changes the part, and
 * the per-key factor keeps equal fields under two keys, or fields swapped
 * between keys, apart (model.test.ts checks both). Being linear in the sum,
 * it costs two multiplies per HSet, where a finish of key, type and sum (as
 * for lists) cost as much as hashing the field itself. The field hashes under
 * the sum are full-avalanche (hash-value.ts), so the sum needs no mixing of
 * its own.
 */
export function containerPart(k0: number, k1: number, value: Container): void {
  if (value.isHash) {
    lanes[0] = Math.imul(k0 | 1, (value.h0 + HASH_OFFSET0) | 0);
    lanes[1] = Math.imul(k1 | 1, (value.h1 + HASH_OFFSET1) | 0);
    return;
  }
  const n = value.count;
  finish(step0(step0(step0(k0, TAG_LIST), value.h0), n), step1(step1(step1(k1, TAG_LIST), value.h1), n));
}

/** A key's expiry part into `lanes`; callers skip it (it is 0) for a key without expiry. */
export function expiryPart(k0: number, k1: number, expiresAtMs: number): void {
  const lo = expiresAtMs >>> 0;
  const hi = Math.floor(expiresAtMs / 0x1_0000_0000);
  finish(step0(step0(k0 ^ EXPIRY_SEED, lo), hi), step1(step1(k1 ^ EXPIRY_SEED, lo), hi));
}

/** A session's part into `lanes`. */
export function sessionPart(clientId: string, sequence: number, result: Uint8Array, lastSeenMs: number): void {
  hashString(clientId, SESSION_SEED);
  let h0 = lanes[0] as number;
  let h1 = lanes[1] as number;
  hashBytes(result, RESULT_SEED);
  h0 = step0(step0(step0(h0, lanes[0] as number), sequence >>> 0), Math.floor(sequence / 0x1_0000_0000));
  h1 = step1(step1(step1(h1, lanes[1] as number), lastSeenMs >>> 0), Math.floor(lastSeenMs / 0x1_0000_0000));
  finish(h0, h1);
}

/** A running sum of parts. */
export class DigestSum {
  d0 = 0;
  d1 = 0;

  add(a: number, b: number): void {
    this.d0 = (this.d0 + a) | 0;
    this.d1 = (this.d1 + b) | 0;
  }

  sub(a: number, b: number): void {
    this.d0 = (this.d0 - a) | 0;
    this.d1 = (this.d1 - b) | 0;
  }

  reset(): void {
    this.d0 = 0;
    this.d1 = 0;
  }
}

/** Hex of the combined sums, lane 1 first. */
export function digestHex(a: DigestSum, b: DigestSum): string {
  return hex32((a.d1 + b.d1) | 0) + hex32((a.d0 + b.d0) | 0);
}
