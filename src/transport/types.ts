/** The transport's vocabulary: what a PeerTransport is built from and what it reports. */
import type { PeerCertificate } from 'node:tls';
import type { ChannelCredentials, ServerCredentials, ServerDuplexStream } from '@grpc/grpc-js';
import type { Message, NodeId, SnapshotMeta } from '../raft/index.ts';

/** A logger the transport writes to; pino satisfies it. */
export interface TransportLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** Snapshot files as the transport moves them; the node's storage implements it. */
export interface SnapshotStore {
  /**
   * Sender side: the snapshot file described by `meta`, in order, in chunks
   * of any size (the transport re-slices large ones, without copying).
   */
  open(meta: SnapshotMeta): AsyncIterable<Uint8Array>;
  /**
   * Receiver side: stores the chunks, which come in order and end with the
   * file, as the snapshot `meta` sent by `from`. Resolves once the whole file
   * is durable and verified; only then does the transport deliver the
   * snapshot message to onMessages. Rejects to refuse the snapshot (the
   * sender hears failure); the chunk iterator throws if the sender goes away
   * mid-file, and the implementation must then discard what it wrote.
   */
  receive(meta: SnapshotMeta, chunks: AsyncIterable<Uint8Array>, from: NodeId): Promise<void>;
}

/** Limits and timings; the defaults suit a LAN cluster with Raft ticks of ~100 ms. */
export interface TransportTuning {
  /** Largest MessageBatch written; a larger send is split across batches, in order. */
  readonly maxBatchBytes: number;
  /** Largest message the peer server accepts (a batch or a snapshot chunk). */
  readonly maxReceiveBytes: number;
  /**
   * Messages held for a peer whose stream is applying backpressure, beyond
   * which they are dropped (and the peer reported unreachable) rather than
   * buffered without bound: Raft resends what matters.
   */
  readonly maxQueuedBytes: number;
  /** Snapshot data per InstallSnapshot chunk. */
  readonly snapshotChunkBytes: number;
  /** First wait before reconnecting a failed stream; doubles up to reconnectMaxMs, with jitter. */
  readonly reconnectInitialMs: number;
  readonly reconnectMaxMs: number;
  /** HTTP/2 pings on idle connections, so a peer that vanished without a reset is noticed. */
  readonly keepaliveMs: number;
  readonly keepaliveTimeoutMs: number;
}

export const DEFAULT_TUNING: TransportTuning = {
  maxBatchBytes: 4 * 1024 * 1024,
  maxReceiveBytes: 64 * 1024 * 1024,
  maxQueuedBytes: 64 * 1024 * 1024,
  snapshotChunkBytes: 1024 * 1024,
  reconnectInitialMs: 50,
  reconnectMaxMs: 1000,
  keepaliveMs: 10_000,
  keepaliveTimeoutMs: 5_000,
};

export interface PeerTransportOptions {
  /** This node's member id: the `from` of what it sends, the `to` it accepts. */
  readonly nodeId: NodeId;
  /** Batches and snapshots from another cluster are refused with FAILED_PRECONDITION. */
  readonly clusterId: string;
  /** host:port to serve the peer API on; port 0 picks a free one (start() returns it). */
  readonly listenAddress: string;
  readonly logger?: TransportLogger;
  /**
   * Messages received, in the order their sender produced them, one call per
   * batch. Called synchronously from the network callback: hand them to the
   * Raft loop and return; a throw is logged and the batch is lost.
   */
  readonly onMessages: (messages: Message[]) => void;
  /**
   * Batches carrying log entries are decoded from what this returns for
   * their bytes (entries are views of it, and may stay in the log long);
   * absent, from the received buffer itself.
   */
  readonly retainEntries?: (bytes: Uint8Array) => Uint8Array;
  readonly snapshots: SnapshotStore;
  /** Messages to `peer` were lost (stream down, or backpressure overflow): the core stops pipelining to it. */
  readonly onUnreachable: (peer: NodeId) => void;
  /** A stream to `peer` was accepted (the first, or one after a failure): messages get through again. */
  readonly onReachable?: (peer: NodeId) => void;
  /** This node's addresses, announced to every peer it streams to. */
  readonly advertisedClientAddr?: string;
  readonly advertisedPeerAddr?: string;
  /** A peer announced its addresses (once per stream it opens to us); '' for one it did not announce. */
  readonly onPeerInfo?: (peer: NodeId, info: { readonly clientAddr: string; readonly peerAddr: string }) => void;
  /**
   * Asked before traffic from `from` (the sender the stream names) is taken:
   * when a stream opens (no messages), for every batch, and for a snapshot's
   * message. A refusal ends the stream with PERMISSION_DENIED and its reason.
   * Absent: everything from this cluster is taken.
   */
  readonly admit?: (from: NodeId, messages: readonly Message[]) => { readonly reason: string; readonly removedAtIndex: number | null } | null;
  /**
   * A peer opened a Forward stream (its clients' calls for this node) and it
   * passed the checks every peer stream passes; the callee answers on it.
   */
  readonly onForward?: (call: ServerDuplexStream<Buffer, Buffer>) => void;
  /** `peer` refused our traffic because this node was removed from the cluster at `removedAtIndex`. */
  readonly onRemoved?: (peer: NodeId, removedAtIndex: number, reason: string) => void;
  /** A snapshot send to `peer` ended: ok once the peer stored the file and took the message. */
  readonly onSnapshotStatus: (peer: NodeId, ok: boolean) => void;
  /**
   * Mutual TLS for the peer port; plaintext when absent. `client` must check
   * that the server's certificate names the member dialed: the transport sets
   * each channel's TLS target name ('grpc.ssl_target_name_override') to the
   * member id. With credentials, a stream is accepted only when its caller's
   * CA-verified certificate proves it is the member it claims to be.
   */
  readonly credentials?: {
    readonly server: ServerCredentials;
    readonly client: ChannelCredentials;
    /** Why `certificate` (the caller's; undefined unless it chained to the CA) does not prove member `claimedId`; null when it does. */
    readonly certificateProblem: (certificate: PeerCertificate | undefined, claimedId: NodeId) => string | null;
  };
  readonly tuning?: Partial<TransportTuning>;
}

/** Counters since start, for metrics and benchmarks. */
export interface TransportStats {
  /** Batches and messages written to peers' streams (which does not prove they arrived). */
  batchesSent: number;
  messagesSent: number;
  bytesSent: number;
  /**
   * Messages known lost: peer down or backing off, backpressure overflow,
   * unknown peer, too large to send, or written to a stream the peer never accepted.
   */
  messagesDropped: number;
  batchesReceived: number;
  messagesReceived: number;
  bytesReceived: number;
  /** Batches and snapshot streams refused (malformed, another cluster, another addressee, a sender not admitted). */
  refused: number;
  snapshotsSent: number;
  snapshotsFailed: number;
  snapshotsReceived: number;
}
