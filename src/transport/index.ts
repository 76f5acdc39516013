/** The peer transport's public surface: import from here, not from the modules behind it. */
export { PeerTransport } from './peer-transport.ts';
export { DEFAULT_TUNING } from './types.ts';
export type { PeerTransportOptions, SnapshotStore, TransportLogger, TransportStats, TransportTuning } from './types.ts';
export { MalformedMessageError, MisdirectedTrafficError, PeerNotAdmittedError, TransportError, TransportStateError } from './errors.ts';
export { METADATA_REMOVED_AT } from './peer-sender.ts';
export { decodeBatch, decodeMessage, decodeSnapshotChunk, encodeBatch, encodeBatches, encodeMessage, encodeSnapshotChunk } from './codec.ts';
export type { DecodedBatch, EncodedBatches, SnapshotChunk, SnapshotHeader } from './codec.ts';
export { RAFT_SERVICE, RAFT_SERVICE_NAME } from './service.ts';
