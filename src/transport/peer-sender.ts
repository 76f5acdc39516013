/**
 * Everything one node sends one peer: a long-lived Send stream carrying a
 * MessageBatch per flush, and at most one InstallSnapshot stream at a time.
 *
 * Raft tolerates loss, so nothing here retries a message: while the stream is
 * down, messages are dropped and the peer reported unreachable (the core then
 * stops pipelining and probes); the stream itself is reopened with
 * exponential backoff. Order is kept because one stream carries every batch,
 * and batches are written in the order messages were handed over.
 */
import * as grpc from '@grpc/grpc-js';
import type { Message, NodeId } from '../raft/index.ts';
import type { InstallSnapshot } from '../raft/messages.ts';
import { encodeBatches, encodeSnapshotChunk } from './codec.ts';
import { FORWARD_PATH, INSTALL_SNAPSHOT_PATH, passBuffer, SEND_PATH } from './service.ts';
import type { SnapshotStore, TransportLogger, TransportStats, TransportTuning } from './types.ts';
import { EMPTY_BYTES } from './wire.ts';

/** Request metadata naming the stream's cluster and ends, so the receiver refuses misdirected streams before accepting them. */
export const METADATA_CLUSTER_ID = 'quorumkv-cluster-id';
export const METADATA_FROM = 'quorumkv-from';
export const METADATA_TO = 'quorumkv-to';
/**
 * The sender's addresses, so that a peer that never heard of it (a node that
 * just joined) can answer it, and point clients and forwarded requests at it.
 */
export const METADATA_CLIENT_ADDR = 'quorumkv-client-addr';
export const METADATA_PEER_ADDR = 'quorumkv-peer-addr';
/** Trailer of a PERMISSION_DENIED refusal: the log index at which the receiver saw this sender removed. */
export const METADATA_REMOVED_AT = 'quorumkv-removed-at';

/** The removal index a refusal carries, or null when it is not a refusal of a removed member. */
function removedAtIndex(err: grpc.ServiceError | null): number | null {
  if (err === null || err.code !== grpc.status.PERMISSION_DENIED) return null;
  const [value] = err.metadata?.get(METADATA_REMOVED_AT) ?? [];
  const index = typeof value === 'string' ? Number(value) : NaN;
  return Number.isSafeInteger(index) && index > 0 ? index : null;
}

/** Answers that mean the peer refuses this node's streams (misconfiguration), not that it is down. */
const REFUSALS = new Set([
  grpc.status.FAILED_PRECONDITION,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.UNIMPLEMENTED,
  grpc.status.UNAUTHENTICATED,
  grpc.status.PERMISSION_DENIED,
]);
/** A TLS handshake that failed on certificates (grpc-js reports it as UNAVAILABLE with the TLS error in the details). */
const TLS_FAILURE = /certificate|self[- ]signed|dialed member|handshake|alert|SSL/i;

/** What a PeerSender shares with its PeerTransport. */
export interface SenderContext {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  /** This node's advertised addresses; '' when it has none to announce. */
  readonly clientAddr: string;
  readonly peerAddr: string;
  readonly logger: TransportLogger;
  readonly tuning: TransportTuning;
  readonly stats: TransportStats;
  readonly snapshots: SnapshotStore;
  readonly credentials: grpc.ChannelCredentials;
  readonly onUnreachable: (peer: NodeId) => void;
  readonly onReachable: (peer: NodeId) => void;
  readonly onSnapshotStatus: (peer: NodeId, ok: boolean) => void;
  /** The peer refused our traffic: this node was removed from the cluster at `removedAtIndex`. */
  readonly onRemoved: (peer: NodeId, removedAtIndex: number, reason: string) => void;
  /** Asks for flush() on the next flush turn (after a 'drain'). */
  readonly scheduleFlush: (sender: PeerSender) => void;
}

/** Bytes a queued message holds on to, roughly: enough to bound a backlog. */
function approximateBytes(m: Message): number {
  if (m.type !== 'append') return 64;
  let bytes = 64;
  for (const e of m.entries) bytes += 24 + e.data.length;
  return bytes;
}

function channelOptions(tuning: TransportTuning, peer: NodeId): grpc.ChannelOptions {
  return {
    // With TLS, the name the server's certificate is checked against: peers are dialed by member id, not host name. Ignored in plaintext.
    'grpc.ssl_target_name_override': peer,
    // The channel's own reconnect backoff defaults to 1 s .. 120 s; a restarted peer must be reached again within about a second.
    'grpc.initial_reconnect_backoff_ms': tuning.reconnectInitialMs,
    'grpc.max_reconnect_backoff_ms': tuning.reconnectMaxMs,
    'grpc.keepalive_time_ms': tuning.keepaliveMs,
    'grpc.keepalive_timeout_ms': tuning.keepaliveTimeoutMs,
    // Retries would keep a copy of every written batch for replay; Raft does its own resending.
    'grpc.enable_retries': 0,
    // One connection per sender, not shared with other transports in the process (tests run several).
    'grpc.use_local_subchannel_pool': 1,
    'grpc.max_receive_message_length': tuning.maxReceiveBytes,
    'grpc.enable_channelz': 0,
  };
}

export class PeerSender {
  private readonly client: grpc.Client;
  private call: grpc.ClientWritableStream<Buffer> | null = null;
  /** The receiver accepted the current stream (it sent its response headers). */
  private accepted = false;
  /** Messages written to the current stream before the receiver accepted it: all lost if it never does. */
  private unconfirmed = 0;
  /** The stream's write buffer is full: hold messages until 'drain'. */
  private blocked = false;
  private queue: Message[] = [];
  private queuedBytes = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private backoffMs: number;
  /** The last failure logged, so a peer that stays down logs once, not on every attempt. */
  private lastFailure = '';
  private snapshot: { call: grpc.ClientWritableStream<Buffer> | null; cancelled: boolean; done: Promise<void> } | null = null;
  private closed = false;

  constructor(
    readonly id: NodeId,
    readonly address: string,
    private readonly ctx: SenderContext,
  ) {
    this.client = new grpc.Client(address, ctx.credentials, channelOptions(ctx.tuning, id));
    this.backoffMs = ctx.tuning.reconnectInitialMs;
  }

  /** Queues a message for the next flush. */
  enqueue(m: Message): void {
    this.queue.push(m);
    this.queuedBytes += approximateBytes(m);
  }

  /** Writes everything queued as batches on the stream (opening it if needed), or drops it if the peer is unreachable. */
  flush(): void {
    if (this.queue.length === 0) return;
    if (this.closed || this.reconnectTimer !== null) {
      // Backing off after a failure: no stream can carry these.
      this.drop();
      return;
    }
    if (this.blocked) {
      if (this.queuedBytes > this.ctx.tuning.maxQueuedBytes) {
        this.ctx.logger.warn({ peer: this.id, queuedBytes: this.queuedBytes }, 'peer is not keeping up: dropping queued messages');
        this.drop();
      }
      return;
    }
    const messages = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    const call = this.call ?? this.openStream();
    const { nodeId, clusterId, tuning, stats } = this.ctx;
    let encoded;
    try {
      encoded = encodeBatches(clusterId, nodeId, this.id, messages, tuning.maxBatchBytes);
    } catch (err) {
      // Only a bug in the core (a non-integer index, say) gets here; losing the messages beats a crashed loop.
      stats.messagesDropped += messages.length;
      this.ctx.logger.error({ peer: this.id, err }, 'could not encode messages: dropped');
      return;
    }
    for (const m of encoded.oversized) {
      stats.messagesDropped++;
      this.ctx.logger.error({ peer: this.id, type: m.type, maxBatchBytes: tuning.maxBatchBytes }, 'message larger than a batch may be: dropped');
    }
    for (const batch of encoded.batches) {
      stats.batchesSent++;
      stats.bytesSent += batch.length;
      if (!call.write(batch)) this.blocked = true;
    }
    stats.messagesSent += messages.length - encoded.oversized.length;
    if (!this.accepted) this.unconfirmed += messages.length - encoded.oversized.length;
  }

  /** A Forward stream to this peer, on the Raft connection, with the same metadata (see PeerTransport.openForwardStream). */
  openForwardStream(): grpc.ClientDuplexStream<Buffer, Buffer> | null {
    if (this.closed) return null;
    return this.client.makeBidiStreamRequest<Buffer, Buffer>(FORWARD_PATH, passBuffer, passBuffer, this.metadata(), {});
  }

  /** Streams the snapshot file for `m`, then reports the outcome; a second one while one is in flight is dropped. */
  sendSnapshot(m: InstallSnapshot): void {
    if (this.closed) {
      this.ctx.onSnapshotStatus(this.id, false);
      return;
    }
    if (this.snapshot !== null) {
      // The core resends after its retry timeout; the transfer under way will report first.
      this.ctx.logger.debug({ peer: this.id, index: m.snapshot.index }, 'a snapshot is already being sent to this peer: this one is dropped');
      return;
    }
    const state: { call: grpc.ClientWritableStream<Buffer> | null; cancelled: boolean; done: Promise<void> } = {
      call: null,
      cancelled: false,
      done: Promise.resolve(),
    };
    this.snapshot = state;
    state.done = this.streamSnapshot(m, state).then((ok) => {
      if (this.snapshot === state) this.snapshot = null;
      if (ok) this.ctx.stats.snapshotsSent++;
      else this.ctx.stats.snapshotsFailed++;
      this.ctx.onSnapshotStatus(this.id, ok);
    });
  }

  /** Ends the stream (what was written still goes out), cancels a snapshot transfer, and releases the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.ctx.stats.messagesDropped += this.queue.length;
    this.queue = [];
    const call = this.call;
    this.call = null;
    call?.end();
    const snapshot = this.snapshot;
    if (snapshot !== null) {
      snapshot.cancelled = true;
      snapshot.call?.cancel();
      await snapshot.done;
    }
    this.client.close();
  }

  private drop(): void {
    this.ctx.stats.messagesDropped += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    this.ctx.onUnreachable(this.id);
  }

  private metadata(): grpc.Metadata {
    const metadata = new grpc.Metadata();
    // Header values must be printable ASCII; ids may not be.
    metadata.set(METADATA_CLUSTER_ID, encodeURIComponent(this.ctx.clusterId));
    metadata.set(METADATA_FROM, encodeURIComponent(this.ctx.nodeId));
    metadata.set(METADATA_TO, encodeURIComponent(this.id));
    if (this.ctx.clientAddr !== '') metadata.set(METADATA_CLIENT_ADDR, encodeURIComponent(this.ctx.clientAddr));
    if (this.ctx.peerAddr !== '') metadata.set(METADATA_PEER_ADDR, encodeURIComponent(this.ctx.peerAddr));
    return metadata;
  }

  private openStream(): grpc.ClientWritableStream<Buffer> {
    const call: grpc.ClientWritableStream<Buffer> = this.client.makeClientStreamRequest<Buffer, Buffer>(
      SEND_PATH,
      passBuffer,
      passBuffer,
      this.metadata(),
      {},
      (err) => this.onStreamEnded(call, err),
    );
    call.on('metadata', () => {
      if (this.call !== call || this.accepted) return;
      this.accepted = true;
      this.unconfirmed = 0;
      this.backoffMs = this.ctx.tuning.reconnectInitialMs;
      if (this.lastFailure !== '') this.ctx.logger.info({ peer: this.id, address: this.address }, 'peer reachable again');
      else this.ctx.logger.debug({ peer: this.id, address: this.address }, 'stream to peer open');
      this.lastFailure = '';
      this.ctx.onReachable(this.id);
    });
    call.on('drain', () => {
      if (this.call !== call) return;
      this.blocked = false;
      if (this.queue.length > 0) this.ctx.scheduleFlush(this);
    });
    this.call = call;
    this.accepted = false;
    this.unconfirmed = 0;
    this.blocked = false;
    return call;
  }

  private onStreamEnded(call: grpc.ClientWritableStream<Buffer>, err: grpc.ServiceError | null): void {
    if (this.call !== call) return;
    this.call = null;
    this.blocked = false;
    // Written to a stream the receiver never accepted: certainly lost. (On an accepted one, which arrived is unknown.)
    if (!this.accepted) {
      this.ctx.stats.messagesDropped += this.unconfirmed;
    }
    this.unconfirmed = 0;
    this.accepted = false;
    if (this.closed) return;
    const failure = err === null ? 'the peer ended the stream' : `${grpc.status[err.code] ?? err.code}: ${err.details}`;
    if (failure !== this.lastFailure) {
      // A refusal is a configuration problem a person must fix; a peer being down is routine.
      const fields = { peer: this.id, address: this.address, reason: failure };
      if (err !== null && REFUSALS.has(err.code)) this.ctx.logger.error(fields, 'peer refused the Raft stream');
      else if (err !== null && TLS_FAILURE.test(err.details)) {
        this.ctx.logger.error(fields, 'TLS handshake with peer failed: both need certificates from the same CA, each naming its member (CN = member id, OU = node)');
      } else this.ctx.logger.warn(fields, 'peer unreachable');
      this.lastFailure = failure;
    }
    const removedAt = removedAtIndex(err);
    if (removedAt !== null && err !== null) this.ctx.onRemoved(this.id, removedAt, err.details);
    // Whatever was still buffered in the stream is lost with it.
    this.drop();
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    // Jitter keeps a cluster's nodes from reconnecting to a restarted peer in lockstep.
    const delay = this.backoffMs * (0.5 + Math.random() * 0.5);
    this.backoffMs = Math.min(this.backoffMs * 2, this.ctx.tuning.reconnectMaxMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      // Reopen now rather than on the next message, so the first messages after a recovery are not the ones lost.
      if (!this.closed && this.call === null) this.openStream();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Resolves true once the receiver stored the file and delivered the message; never rejects. */
  private async streamSnapshot(m: InstallSnapshot, state: { call: grpc.ClientWritableStream<Buffer> | null; cancelled: boolean }): Promise<boolean> {
    const { tuning, logger, clusterId, snapshots } = this.ctx;
    const startedAt = Date.now();
    // Filled in by the call's callback; an object, since the callback runs between awaits.
    const outcome: { ended: boolean; error: grpc.ServiceError | null } = { ended: false, error: null };
    let wake: (() => void) | null = null;
    const call: grpc.ClientWritableStream<Buffer> = this.client.makeClientStreamRequest<Buffer, Buffer>(
      INSTALL_SNAPSHOT_PATH,
      passBuffer,
      passBuffer,
      this.metadata(),
      {},
      (err) => {
        outcome.ended = true;
        outcome.error = err;
        wake?.();
      },
    );
    state.call = call;
    call.on('drain', () => wake?.());
    /** Until the next 'drain' or the end of the call. */
    const nextEvent = (): Promise<void> =>
      new Promise<void>((resolve) => {
        wake = resolve;
      }).finally(() => {
        wake = null;
      });
    const write = async (chunk: Buffer): Promise<void> => {
      if (state.cancelled) throw new Error('the transfer was cancelled');
      if (outcome.ended) throw new Error('the receiver ended the transfer early');
      if (call.write(chunk)) return;
      await nextEvent();
      if (outcome.ended) throw new Error('the receiver ended the transfer early');
    };

    let offset = 0;
    try {
      await write(encodeSnapshotChunk({ header: { clusterId, message: m }, offset: 0, data: EMPTY_BYTES, last: false }));
      for await (const chunk of snapshots.open(m.snapshot)) {
        for (let start = 0; start < chunk.length; start += tuning.snapshotChunkBytes) {
          // subarray: a view of the store's chunk, copied once into the encoded message.
          const piece = chunk.subarray(start, Math.min(start + tuning.snapshotChunkBytes, chunk.length));
          await write(encodeSnapshotChunk({ header: null, offset, data: piece, last: false }));
          offset += piece.length;
        }
      }
      await write(encodeSnapshotChunk({ header: null, offset, data: EMPTY_BYTES, last: true }));
      call.end();
      while (!outcome.ended) await nextEvent();
    } catch (err) {
      call.cancel();
      const removedAt = removedAtIndex(outcome.error);
      if (removedAt !== null && outcome.error !== null) this.ctx.onRemoved(this.id, removedAt, outcome.error.details);
      if (!state.cancelled) {
        const reason = outcome.error !== null ? outcome.error.details : err instanceof Error ? err.message : String(err);
        logger.warn({ peer: this.id, index: m.snapshot.index, sentBytes: offset, reason }, 'snapshot send failed');
      }
      return false;
    }
    if (outcome.error !== null) {
      const { code, details } = outcome.error;
      const removedAt = removedAtIndex(outcome.error);
      if (removedAt !== null) this.ctx.onRemoved(this.id, removedAt, details);
      logger.warn({ peer: this.id, index: m.snapshot.index, code: grpc.status[code], reason: details }, 'peer did not take the snapshot');
      return false;
    }
    logger.info({ peer: this.id, index: m.snapshot.index, term: m.snapshot.term, bytes: offset, ms: Date.now() - startedAt }, 'snapshot sent');
    return true;
  }
}
