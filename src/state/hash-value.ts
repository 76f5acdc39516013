/**
 * A hash value: field -> byte string, in insertion order (HGETALL answers in
 * that order, and snapshots keep it, so every replica answers alike), plus
 * its accounted bytes and an order-independent content hash: the sum of the
 * fields' hashes, updated in O(1) per field.
 */
import { finish, hashBytes, hashString, lanes, step0, step1 } from './hash.ts';
import { utf8Length } from './bytes.ts';
import { HASH_FIELD_OVERHEAD_BYTES } from './memory.ts';

const FIELD_SEED = 0x48415348; // 'HASH'
const FIELD_VALUE_SEED = 0x46564c55; // 'FVLU'

/** Accounted bytes of one field (see memory.ts). */
export function fieldBytes(field: string, value: Uint8Array): number {
  return utf8Length(field) + value.length + HASH_FIELD_OVERHEAD_BYTES;
}

/** Hash of one (field, value) pair into `lanes`. */
function hashField(field: string, value: Uint8Array): void {
  hashString(field, FIELD_SEED);
  const a0 = lanes[0] as number;
  const a1 = lanes[1] as number;
  hashBytes(value, FIELD_VALUE_SEED);
  finish(step0(a0, lanes[0] as number), step1(a1, lanes[1] as number));
}

export class HashValue {
  readonly fields = new Map<string, Uint8Array>();
  /** Accounted bytes of the fields. */
  bytes = 0;
  /** Sum of the field hashes per lane (int32 wrap-around). */
  h0 = 0;
  h1 = 0;

  static of(entries: Iterable<readonly [string, Uint8Array]>): HashValue {
    const hash = new HashValue();
    for (const [field, value] of entries) hash.set(field, value);
    return hash;
  }

  get size(): number {
    return this.fields.size;
  }

  get(field: string): Uint8Array | undefined {
    return this.fields.get(field);
  }

  /** Sets a field; true when it is new. */
  set(field: string, value: Uint8Array): boolean {
    const old = this.fields.get(field);
    this.fields.set(field, value);
    if (old !== undefined) {
      this.bytes += value.length - old.length;
      this.unhash(field, old);
    } else {
      this.bytes += fieldBytes(field, value);
    }
    hashField(field, value);
    this.h0 = (this.h0 + (lanes[0] as number)) | 0;
    this.h1 = (this.h1 + (lanes[1] as number)) | 0;
    return old === undefined;
  }

  /** Deletes a field; true when it existed. */
  delete(field: string): boolean {
    const old = this.fields.get(field);
    if (old === undefined) return false;
    this.fields.delete(field);
    this.bytes -= fieldBytes(field, old);
    this.unhash(field, old);
    return true;
  }

  clone(): HashValue {
    const copy = new HashValue();
    for (const [field, value] of this.fields) copy.fields.set(field, value);
    copy.bytes = this.bytes;
    copy.h0 = this.h0;
    copy.h1 = this.h1;
    return copy;
  }

  private unhash(field: string, value: Uint8Array): void {
    hashField(field, value);
    this.h0 = (this.h0 - (lanes[0] as number)) | 0;
    this.h1 = (this.h1 - (lanes[1] as number)) | 0;
  }
}
