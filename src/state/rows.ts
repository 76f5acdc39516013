/**
 * Snapshot rows: the shapes src/storage writes to (and reads from) the
 * snapshot's SQLite tables. Keep them exactly so: both sides depend on them.
 */
import type { ValueType } from './values.ts';

export interface KeyRow {
  readonly key: string;
  readonly type: ValueType;
  /** The encoded value (see values.ts); a string's own bytes. Read-only: it may be shared with the state. */
  readonly value: Uint8Array;
  /** Absolute expiry in log time, null for none. */
  readonly expiresAtMs: number | null;
}

export interface SessionRow {
  readonly clientId: string;
  /** The highest sequence applied for this client. */
  readonly sequence: number;
  /** That write's encoded result (result-codec.ts). */
  readonly result: Uint8Array;
  /** Log time of that write. */
  readonly lastSeenMs: number;
}

/** The scalar part of a snapshot, stored beside the rows. */
export interface SnapshotMetaRow {
  readonly lastAppliedIndex: number;
  /** Log time of the last applied entry. */
  readonly logTimeMs: number;
}
