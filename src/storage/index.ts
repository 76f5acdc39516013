/** The storage layer's public surface: import from here, not from the modules behind it. */
export { NodeStorage, DEFAULT_INCREMENTAL_LIMITS, DEFAULT_RETAINED_SNAPSHOTS } from './node-storage.ts';
export type { OpenOptions, LoadedState, PersistBatch, SnapshotInstall, SnapshotWriteReport } from './node-storage.ts';
export type { IncrementalLimits } from './snapshot-update.ts';
export { SnapshotFileReader, SNAPSHOT_FORMAT_VERSION } from './snapshot-file.ts';
export { forEachPackedKeyRow } from './packed-key-rows.ts';
export { ReadPriority } from './snapshot-read-thread.ts';
export type { PackedKeyRows, PackedKeyRowVisitor } from './packed-key-rows.ts';
export { SnapshotReceiver, DEFAULT_CHUNK_BYTES } from './snapshot-transfer.ts';
export { NODE_SCHEMA_VERSION } from './node-db.ts';
export { durableRename } from './durable-fs.ts';
export {
  StorageError,
  CorruptDataError,
  ForeignClusterError,
  ForeignNodeError,
  SchemaTooNewError,
  DataDirLockedError,
  NotInitializedError,
  InvalidWriteError,
  StorageClosedError,
} from './errors.ts';
export type {
  KeyType,
  RowSource,
  SnapshotContent,
  SnapshotFileInfo,
  SnapshotHeader,
  SnapshotKeyChanges,
  SnapshotKeyRow,
  SnapshotSessionRow,
  StoredSnapshot,
} from './types.ts';
