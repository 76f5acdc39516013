/**
 * Named storage errors. Each has a stable `code` for callers and a message an
 * operator can act on: which file, which index, what was expected.
 */

/** Base of the storage errors. */
export abstract class StorageError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Stored data failed a checksum or a consistency check: the node must not start on it. */
export class CorruptDataError extends StorageError {
  readonly code = 'STORAGE_CORRUPT';
  constructor(
    readonly file: string,
    /** What is wrong, without the advice (lets a worker thread's error be rebuilt as it was). */
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${file}: ${detail}. The data is damaged; refusing to use it. Restore the data dir from a backup, ` +
        `or remove it and let the node rejoin the cluster as a new member.`,
      options,
    );
  }
}

/** The data dir was created for another cluster. */
export class ForeignClusterError extends StorageError {
  readonly code = 'STORAGE_FOREIGN_CLUSTER';
  constructor(
    readonly file: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(
      `${file} belongs to cluster '${found}', but this node was started for cluster '${expected}'. ` +
        `Check --data-dir and the cluster id.`,
    );
  }
}

/** The data dir was created for another node of the cluster. */
export class ForeignNodeError extends StorageError {
  readonly code = 'STORAGE_FOREIGN_NODE';
  constructor(
    readonly file: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(
      `${file} belongs to node '${found}', but this node was started as '${expected}'. ` +
        `Two nodes must never share a data dir; check --data-dir and the node id.`,
    );
  }
}

/** The file was written by a newer quorumkv whose format this build cannot read. */
export class SchemaTooNewError extends StorageError {
  readonly code = 'STORAGE_SCHEMA_TOO_NEW';
  constructor(
    readonly file: string,
    readonly found: number,
    readonly supported: number,
  ) {
    super(
      `${file} has format version ${found}, but this build reads versions up to ${supported}. ` +
        `It was written by a newer quorumkv: upgrade this binary instead of downgrading the data.`,
    );
  }
}

/** Another process (or another open NodeStorage in this one) holds the data dir. */
export class DataDirLockedError extends StorageError {
  readonly code = 'STORAGE_LOCKED';
  constructor(
    readonly dir: string,
    holder: string | null,
    options?: { cause?: unknown },
  ) {
    super(
      `data dir ${dir} is in use by another process${holder === null ? '' : ` (${holder})`}. ` +
        `Only one node may run on a data dir; stop the other one first.`,
      options,
    );
  }
}

/** Opened without `create` on a data dir that holds no node database. */
export class NotInitializedError extends StorageError {
  readonly code = 'STORAGE_NOT_INITIALIZED';
  constructor(readonly file: string) {
    super(`no node database at ${file}. Bootstrap or join the cluster to create one, or check --data-dir.`);
  }
}

/** The caller asked for a write that would break the log's invariants (a bug upstream, never a disk fault). */
export class InvalidWriteError extends StorageError {
  readonly code = 'STORAGE_INVALID_WRITE';
}

/** The storage was used after close(). */
export class StorageClosedError extends StorageError {
  readonly code = 'STORAGE_CLOSED';
  constructor(readonly dir: string) {
    super(`storage for ${dir} is closed`);
  }
}
