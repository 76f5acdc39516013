/**
 * A small non-cryptographic 64-bit hash as two 32-bit lanes (Math.imul
 * mixing in the style of MurmurHash3), for the state digest and the Keys scan
 * order. BigInt arithmetic would be far slower; two Smi-sized lanes are
 * cheap to keep on every key. Results land in `lanes` to avoid allocating.
 *
 * Also the arithmetic behind the list hash, which must be updatable in O(1)
 * at both ends of a list (see list-value.ts).
 */

/** Output of the hash functions: [lane0, lane1], int32 each. */
export const lanes = new Int32Array(2);

const C1 = 0xcc9e2d51 | 0;
const C2 = 0x1b873593 | 0;
const C3 = 0x85ebca6b | 0;
const C4 = 0xc2b2ae35 | 0;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** MurmurHash3's finalizer: every input bit reaches every output bit. */
export function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, C3);
  h ^= h >>> 13;
  h = Math.imul(h, C4);
  return h ^ (h >>> 16);
}

/**
 * A second full-avalanche bijection of 32 bits, unrelated to fmix: Chris
 * Wellons' "lowbias32" (hash-prospector), for a lane that must not move in
 * step with one mixed by fmix.
 */
export function lowbias(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b | 0);
  return h ^ (h >>> 16);
}

/** One absorb step of lane 0. */
export function step0(h: number, k: number): number {
  k = Math.imul(rotl(Math.imul(k, C1), 15), C2);
  return (Math.imul(rotl(h ^ k, 13), 5) + 0xe6546b64) | 0;
}

/** One absorb step of lane 1: other constants, so the lanes are not one hash twice. */
export function step1(h: number, k: number): number {
  k = Math.imul(rotl(Math.imul(k, C3), 16), C4);
  return (Math.imul(rotl(h ^ k, 15), 5) + 0x561ccd1b) | 0;
}

/** Finishes two lanes into `lanes`, cross-mixing them so each depends on both. */
export function finish(h0: number, h1: number): void {
  h0 = fmix(h0);
  h1 = fmix(h1);
  h0 = (h0 + h1) | 0;
  h1 = (h1 + h0) | 0;
  lanes[0] = h0;
  lanes[1] = h1;
}

/** Hashes bytes into `lanes`, four at a time. */
export function hashBytes(bytes: Uint8Array, seed: number): void {
  hashRange(bytes, 0, bytes.length, seed);
}

/** Hashes bytes [start, start + len) of buf into `lanes`: the same hash as hashBytes of that range. */
export function hashRange(buf: Uint8Array, start: number, len: number, seed: number): void {
  let h0 = seed | 0;
  let h1 = (seed ^ 0x9e3779b9) | 0;
  const whole = start + (len & ~3);
  let i = start;
  for (; i < whole; i += 4) {
    const k = (buf[i] as number) | ((buf[i + 1] as number) << 8) | ((buf[i + 2] as number) << 16) | ((buf[i + 3] as number) << 24);
    h0 = step0(h0, k);
    h1 = step1(h1, k);
  }
  const rest = len & 3;
  if (rest !== 0) {
    let tail = buf[i] as number;
    if (rest > 1) tail |= (buf[i + 1] as number) << 8;
    if (rest > 2) tail |= (buf[i + 2] as number) << 16;
    h0 = step0(h0, tail);
    h1 = step1(h1, tail);
  }
  finish(h0 ^ len, h1 ^ len);
}

/** Hashes a string's UTF-16 code units into `lanes`, two at a time (no UTF-8 encoding needed). */
export function hashString(s: string, seed: number): void {
  let h0 = seed | 0;
  let h1 = (seed ^ 0x7f4a7c15) | 0;
  const len = s.length;
  let i = 0;
  for (; i + 1 < len; i += 2) {
    const k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    h0 = step0(h0, k);
    h1 = step1(h1, k);
  }
  if (i < len) {
    const k = s.charCodeAt(i);
    h0 = step0(h0, k);
    h1 = step1(h1, k);
  }
  finish(h0 ^ len, h1 ^ len);
}

/** Lane hex, as the digest prints it. */
export function hex32(x: number): string {
  return (x >>> 0).toString(16).padStart(8, '0');
}

// The list hash is a polynomial modulo 2^32 (see list-value.ts): Math.imul
// multiplies in that ring in one instruction, and an odd base has an inverse.

/** x^e mod 2^32 by squaring. */
export function powImul(x: number, e: number): number {
  let result = 1;
  let b = x | 0;
  while (e > 0) {
    if (e % 2 === 1) result = Math.imul(result, b);
    b = Math.imul(b, b);
    e = Math.floor(e / 2);
  }
  return result;
}

/** The inverse of an odd x mod 2^32 (Newton's iteration doubles the correct low bits each step). */
export function inverseImul(x: number): number {
  let inv = x | 0; // correct to 3 bits for odd x
  for (let i = 0; i < 5; i++) inv = Math.imul(inv, 2 - Math.imul(x, inv));
  return inv;
}

// Bases of the two lanes (odd, so invertible) and their inverses.
export const B0 = 0x2545f491 | 0;
export const B1 = 0x9e3779b1 | 0;
export const B0_INV = inverseImul(B0);
export const B1_INV = inverseImul(B1);
