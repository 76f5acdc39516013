/** The storage vocabulary shared by the node and the state machine. */
import type { NodeId, SnapshotMeta } from '../raft/types.ts';

export type KeyType = 'string' | 'list' | 'hash';

/** One key of the state machine, as it writes it into a snapshot and reads it back. */
export interface SnapshotKeyRow {
  readonly key: string;
  readonly type: KeyType;
  /** The state machine's encoding of the value; opaque to storage. */
  readonly value: Uint8Array;
  readonly expiresAtMs: number | null;
}

/** One client session (exactly-once retries), as written into a snapshot. */
export interface SnapshotSessionRow {
  readonly clientId: string;
  readonly sequence: number;
  readonly result: Uint8Array;
  readonly lastSeenMs: number;
}

/** Rows may come from a plain or an async iterator: either way they are consumed once, in order. */
export type RowSource<T> = Iterable<T> | AsyncIterable<T>;

/**
 * What a snapshot holds besides its header. The iterators must give a
 * point-in-time view: the writer yields to the event loop while it drains
 * them, and the node keeps applying entries meanwhile.
 */
export interface SnapshotContent {
  readonly keys: RowSource<SnapshotKeyRow>;
  readonly sessions: RowSource<SnapshotSessionRow>;
  /**
   * The state machine's digest of this state, kept in the file so that a
   * restore can check it rebuilt exactly the state that was written.
   */
  readonly stateDigest?: string;
  /** How many rows `keys` yields, when known: the writer checks it wrote that many. */
  readonly keyCount?: number;
  /** The keys changed since an earlier snapshot: lets the writer update a copy of that one's file instead of writing every key. */
  readonly changes?: SnapshotKeyChanges;
}

/**
 * The keys changed between an earlier snapshot (the base) and this one. Used
 * only when the base is the newest snapshot file; then `rows` is consumed
 * instead of SnapshotContent.keys.
 */
export interface SnapshotKeyChanges {
  /** The base's index and state digest, which its file must hold. */
  readonly baseIndex: number;
  readonly baseDigest: string;
  /** Every key created, changed or removed since the base; a few more are harmless. */
  readonly keys: ReadonlySet<string>;
  /** The rows of those keys that exist in this snapshot, point-in-time like SnapshotContent.keys. */
  readonly rows: RowSource<SnapshotKeyRow>;
}

/** The state's position: applied through `index` (at `term`), with the log's clock at `logTimeMs`. */
export interface SnapshotHeader extends SnapshotMeta {
  readonly logTimeMs: number;
}

/** What a snapshot file says about itself (its meta and members tables). */
export interface SnapshotFileInfo extends SnapshotHeader {
  readonly formatVersion: number;
  readonly clusterId: string;
  /** The node that wrote the file (a follower's installed snapshot names its leader). */
  readonly writtenBy: NodeId;
  readonly keyCount: number;
  readonly sessionCount: number;
  /** SnapshotContent.stateDigest as written, or null when none was given. */
  readonly stateDigest: string | null;
}

/** A snapshot file in the data dir: its header and where it is. */
export interface StoredSnapshot extends SnapshotHeader {
  readonly path: string;
  readonly sizeBytes: number;
}
