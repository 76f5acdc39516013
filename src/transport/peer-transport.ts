/**
 * Raft messages between the members of one cluster, over gRPC (raft.proto).
 * One PeerTransport per node: it serves the peer API on the node's peer
 * address and keeps a PeerSender per peer for what the node sends.
 *
 * send() only queues; one setImmediate per event-loop turn flushes every
 * peer's queue as one MessageBatch, so a burst of Ready batches costs one
 * write per peer rather than one per message.
 */
import * as grpc from '@grpc/grpc-js';
import type { Message, NodeId } from '../raft/index.ts';
import { decodeBatch, decodeSnapshotChunk, encodeSnapshotAck, SEND_ACK } from './codec.ts';
import type { SnapshotChunk } from './codec.ts';
import { MalformedMessageError, MisdirectedTrafficError, PeerNotAdmittedError, TransportStateError, UnauthenticatedPeerError } from './errors.ts';
import { METADATA_CLIENT_ADDR, METADATA_CLUSTER_ID, METADATA_PEER_ADDR, METADATA_FROM, METADATA_REMOVED_AT, METADATA_TO, PeerSender } from './peer-sender.ts';
import type { SenderContext } from './peer-sender.ts';
import { GRPC_SERVER_DEFAULTS, closeGrpcServer } from './grpc-server.ts';
import { RAFT_SERVICE } from './service.ts';
import { DEFAULT_TUNING } from './types.ts';
import type { PeerTransportOptions, SnapshotStore, TransportLogger, TransportStats, TransportTuning } from './types.ts';

const silentLogger: TransportLogger = { debug() {}, info() {}, warn() {}, error() {} };

/** Bounds lastRefusal: senders are few, but their ids come from the network. */
const MAX_REMEMBERED_REFUSALS = 1000;

type ServerStream = grpc.ServerReadableStream<Buffer, Buffer>;
type ForwardStream = grpc.ServerDuplexStream<Buffer, Buffer>;
type Respond = grpc.sendUnaryData<Buffer>;

function statusOf(err: unknown): { code: grpc.status; details: string; metadata?: grpc.Metadata } {
  if (err instanceof PeerNotAdmittedError) {
    const metadata = new grpc.Metadata();
    if (err.removedAtIndex !== null) metadata.set(METADATA_REMOVED_AT, String(err.removedAtIndex));
    return { code: grpc.status.PERMISSION_DENIED, details: err.message, metadata };
  }
  if (err instanceof MisdirectedTrafficError) return { code: grpc.status.FAILED_PRECONDITION, details: err.message };
  if (err instanceof MalformedMessageError) return { code: grpc.status.INVALID_ARGUMENT, details: err.message };
  if (err instanceof UnauthenticatedPeerError) return { code: grpc.status.UNAUTHENTICATED, details: err.message };
  const message = err instanceof Error ? err.message : String(err);
  return { code: grpc.status.INTERNAL, details: `snapshot not taken: ${message}` };
}

function carriesEntries(m: Message): boolean {
  return m.type === 'append' && m.entries.length > 0;
}

function metadataValue(metadata: grpc.Metadata, key: string): string | undefined {
  const [value] = metadata.get(key);
  if (typeof value !== 'string') return undefined;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

export class PeerTransport {
  readonly nodeId: NodeId;
  readonly clusterId: string;
  private readonly options: PeerTransportOptions;
  private readonly logger: TransportLogger;
  private readonly tuning: TransportTuning;
  private readonly snapshots: SnapshotStore;
  private readonly stats: TransportStats = {
    batchesSent: 0,
    messagesSent: 0,
    bytesSent: 0,
    messagesDropped: 0,
    batchesReceived: 0,
    messagesReceived: 0,
    bytesReceived: 0,
    refused: 0,
    snapshotsSent: 0,
    snapshotsFailed: 0,
    snapshotsReceived: 0,
  };
  private readonly senders = new Map<NodeId, PeerSender>();
  private readonly dirty = new Set<PeerSender>();
  private flushScheduled: NodeJS.Immediate | null = null;
  private server: grpc.Server | null = null;
  private state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  private boundPort: number | null = null;
  private closing: Promise<void> | null = null;
  /** Senders being closed (removed peers) and snapshot receives under way: close() waits for them. */
  private readonly pending = new Set<Promise<void>>();
  private readonly senderContext: SenderContext;
  /** The last refusal logged per claimed sender, so a sender retrying is not logged on every attempt. */
  private readonly lastRefusal = new Map<string, string>();

  constructor(options: PeerTransportOptions) {
    this.options = options;
    this.nodeId = options.nodeId;
    this.clusterId = options.clusterId;
    this.logger = options.logger ?? silentLogger;
    this.tuning = { ...DEFAULT_TUNING, ...options.tuning };
    this.snapshots = options.snapshots;
    this.senderContext = {
      nodeId: this.nodeId,
      clusterId: this.clusterId,
      clientAddr: options.advertisedClientAddr ?? '',
      peerAddr: options.advertisedPeerAddr ?? '',
      logger: this.logger,
      tuning: this.tuning,
      stats: this.stats,
      snapshots: this.snapshots,
      credentials: options.credentials?.client ?? grpc.credentials.createInsecure(),
      // After close() the node is shutting down: callbacks into its Raft loop would find it gone.
      onUnreachable: (peer) => {
        if (this.state !== 'closed') this.options.onUnreachable(peer);
      },
      onReachable: (peer) => {
        if (this.state !== 'closed') this.options.onReachable?.(peer);
      },
      onSnapshotStatus: (peer, ok) => {
        if (this.state !== 'closed') this.options.onSnapshotStatus(peer, ok);
      },
      onRemoved: (peer, removedAtIndex, reason) => {
        if (this.state !== 'closed') this.options.onRemoved?.(peer, removedAtIndex, reason);
      },
      scheduleFlush: (sender) => this.markDirty(sender),
    };
  }

  /** Serves the peer API on listenAddress; resolves with the port bound (the real one when it was 0). */
  async start(): Promise<number> {
    if (this.state !== 'new') {
      throw new TransportStateError(`the peer transport of ${this.nodeId} ${this.state === 'closed' ? 'is closed' : 'was already started'}`);
    }
    this.state = 'starting';
    const server = new grpc.Server({ ...GRPC_SERVER_DEFAULTS, 'grpc.max_receive_message_length': this.tuning.maxReceiveBytes });
    server.addService(RAFT_SERVICE, {
      Send: (call: ServerStream, respond: Respond) => this.handleSend(call, respond),
      InstallSnapshot: (call: ServerStream, respond: Respond) => this.handleInstallSnapshot(call, respond),
      Forward: (call: ForwardStream) => this.handleForward(call),
    });
    this.server = server;
    const credentials = this.options.credentials?.server ?? grpc.ServerCredentials.createInsecure();
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(this.options.listenAddress, credentials, (err, bound) => {
        if (err !== null) reject(new Error(`cannot serve the peer API on ${this.options.listenAddress}: ${err.message}`, { cause: err }));
        else resolve(bound);
      });
    });
    if (this.state !== 'starting') {
      server.forceShutdown();
      throw new TransportStateError(`the peer transport of ${this.nodeId} was closed while starting`);
    }
    this.state = 'running';
    this.boundPort = port;
    this.logger.info({ address: this.options.listenAddress, port }, 'peer API listening');
    return port;
  }

  /** The port serving the peer API (after start()). */
  get port(): number {
    if (this.boundPort === null) throw new TransportStateError(`the peer transport of ${this.nodeId} is not running`);
    return this.boundPort;
  }

  /**
   * The peers to talk to and their peer addresses (this node's own entry is
   * ignored). Peers no longer listed, or listed at a new address, have their
   * streams closed; new ones connect on their first message.
   */
  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    if (this.state === 'closed') return;
    for (const [id, sender] of this.senders) {
      if (peers.get(id) === sender.address) continue;
      this.senders.delete(id);
      this.dirty.delete(sender);
      this.track(sender.close());
      this.logger.info({ peer: id, address: sender.address }, 'stopped talking to peer');
    }
    for (const [id, address] of peers) {
      if (id === this.nodeId || this.senders.has(id)) continue;
      this.senders.set(id, new PeerSender(id, address, this.senderContext));
      this.logger.debug({ peer: id, address }, 'peer added');
    }
  }

  /**
   * Queues messages for their peers; they go out at the end of this
   * event-loop turn, in order per peer. Never blocks and never throws: a
   * message for an unknown or unreachable peer is dropped (and the peer
   * reported unreachable), which Raft tolerates. 'snapshot' messages start a
   * snapshot transfer instead.
   */
  send(messages: readonly Message[]): void {
    if (this.state === 'closed') {
      this.stats.messagesDropped += messages.length;
      return;
    }
    try {
      for (const m of messages) {
        const sender = this.senders.get(m.to);
        if (sender === undefined) {
          this.stats.messagesDropped++;
          this.logger.debug({ peer: m.to, type: m.type }, 'message for a peer with no known address: dropped');
          this.senderContext.onUnreachable(m.to);
          continue;
        }
        if (m.type === 'snapshot') {
          sender.sendSnapshot(m);
          continue;
        }
        sender.enqueue(m);
        this.markDirty(sender);
      }
    } catch (err) {
      this.logger.error({ err }, 'send failed');
    }
  }

  /**
   * A Forward stream to `peer` (raft.proto) on the connection its Raft traffic
   * uses, with the same metadata; null when the peer has no known address.
   */
  openForwardStream(peer: NodeId): grpc.ClientDuplexStream<Buffer, Buffer> | null {
    if (this.state === 'closed') return null;
    return this.senders.get(peer)?.openForwardStream() ?? null;
  }

  /** Counters since start. */
  getStats(): Readonly<TransportStats> {
    return { ...this.stats };
  }

  /** Stops serving (cancelling inbound streams), ends outbound streams, cancels snapshot transfers. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.state = 'closed';
    if (this.flushScheduled !== null) clearImmediate(this.flushScheduled);
    this.flushScheduled = null;
    this.dirty.clear();
    for (const sender of this.senders.values()) this.track(sender.close());
    this.senders.clear();
    // Raft streams never end by themselves, so a graceful shutdown would wait forever.
    if (this.server !== null) {
      if (this.boundPort === null) this.server.forceShutdown();
      else this.track(closeGrpcServer(this.server, this.options.listenAddress, this.boundPort, 0));
    }
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    this.logger.debug({}, 'peer transport closed');
  }

  private track(promise: Promise<void>): void {
    const tracked = promise.catch((err: unknown) => this.logger.error({ err }, 'peer transport task failed')).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  /** Writes what send() queued now instead of at the end of this event-loop turn. */
  flush(): void {
    if (this.flushScheduled === null) return;
    clearImmediate(this.flushScheduled);
    this.flushAll();
  }

  private markDirty(sender: PeerSender): void {
    this.dirty.add(sender);
    this.flushScheduled ??= setImmediate(this.flushAll);
  }

  private readonly flushAll = (): void => {
    this.flushScheduled = null;
    for (const sender of this.dirty) sender.flush();
    this.dirty.clear();
  };

  private misdirection(clusterId: string | undefined, from: string | undefined, to: string | undefined): MisdirectedTrafficError | null {
    if (clusterId !== undefined && clusterId !== this.clusterId) {
      return new MisdirectedTrafficError(
        `cluster id mismatch: member '${this.nodeId}' belongs to cluster '${this.clusterId}', but '${from ?? '?'}' sent traffic of cluster '${clusterId}'`,
      );
    }
    if (to !== undefined && to !== this.nodeId) {
      return new MisdirectedTrafficError(
        `misdirected traffic: '${from ?? '?'}' addressed member '${to}', but this is member '${this.nodeId}' (check the peer addresses)`,
      );
    }
    return null;
  }

  /**
   * With TLS, the member the caller proved to be with its CA-verified
   * certificate, which must be the one the stream claims to come from; every
   * `from` on the stream is then checked against it (checkSender). Null in
   * plaintext: there is nothing to check. Throws UnauthenticatedPeerError.
   */
  private authenticatedSender(call: ServerStream | ForwardStream, claimedFrom: string | undefined): NodeId | null {
    const credentials = this.options.credentials;
    if (credentials === undefined) return null;
    if (claimedFrom === undefined || claimedFrom === '') {
      throw new UnauthenticatedPeerError(`a peer stream must say which member it comes from (${METADATA_FROM} metadata); refused by member '${this.nodeId}'`);
    }
    const problem = credentials.certificateProblem(call.getAuthContext().sslPeerCertificate, claimedFrom);
    if (problem !== null) throw new UnauthenticatedPeerError(`member '${this.nodeId}' refuses a stream claiming to come from member '${claimedFrom}': ${problem}`);
    return claimedFrom;
  }

  /** Every message on an authenticated stream must come from the member its certificate names. */
  private checkSender(authenticated: NodeId | null, from: NodeId): void {
    if (authenticated !== null && from !== authenticated) {
      throw new UnauthenticatedPeerError(`member '${authenticated}' (by its certificate) sent a message as '${from}'; refused by member '${this.nodeId}'`);
    }
  }

  /** Why `from` may not send `messages` here (see PeerTransportOptions.admit), or null. */
  private notAdmitted(from: NodeId | undefined, messages: readonly Message[]): PeerNotAdmittedError | null {
    if (this.options.admit === undefined || from === undefined) return null;
    const refusal = this.options.admit(from, messages);
    return refusal === null ? null : new PeerNotAdmittedError(refusal.reason, refusal.removedAtIndex);
  }

  private refuse(call: ServerStream | ForwardStream, respond: (status: grpc.StatusObject | grpc.ServerErrorResponse) => void, err: unknown): void {
    this.stats.refused++;
    const status = statusOf(err);
    const from = metadataValue(call.metadata, METADATA_FROM) ?? '';
    const fields = { peer: call.getPeer(), from, code: grpc.status[status.code], reason: status.details };
    // A sender that keeps reconnecting gets the same answer each time: said once, then quietly.
    if (this.lastRefusal.get(from) === status.details) {
      this.logger.debug(fields, 'refused peer traffic');
    } else {
      if (this.lastRefusal.size >= MAX_REMEMBERED_REFUSALS) this.lastRefusal.clear();
      this.lastRefusal.set(from, status.details);
      this.logger.warn(fields, 'refused peer traffic');
    }
    respond(status as grpc.ServerErrorResponse);
  }

  /**
   * The checks on a new stream, in order: addressed to this cluster and node,
   * then who the caller is (TLS; null in plaintext), then whether that member
   * may talk to us. Throws the refusal.
   */
  private acceptStream(call: ServerStream | ForwardStream, from: NodeId | undefined): NodeId | null {
    const misdirected = this.misdirection(metadataValue(call.metadata, METADATA_CLUSTER_ID), from, metadataValue(call.metadata, METADATA_TO));
    if (misdirected !== null) throw misdirected;
    const sender = this.authenticatedSender(call, from);
    const notAdmitted = this.notAdmitted(from, []);
    if (notAdmitted !== null) throw notAdmitted;
    return sender;
  }

  private handleSend(call: ServerStream, respond: Respond): void {
    const metadata = call.metadata;
    const from = metadataValue(metadata, METADATA_FROM);
    let sender: NodeId | null;
    try {
      sender = this.acceptStream(call, from);
    } catch (err) {
      this.refuse(call, respond, err);
      return;
    }
    const clientAddr = metadataValue(metadata, METADATA_CLIENT_ADDR) ?? '';
    const peerAddr = metadataValue(metadata, METADATA_PEER_ADDR) ?? '';
    if ((clientAddr !== '' || peerAddr !== '') && from !== undefined) this.options.onPeerInfo?.(from, { clientAddr, peerAddr });
    // Response headers now tell the sender the stream was accepted (it resets its reconnect backoff on them).
    call.sendMetadata(new grpc.Metadata());
    let answered = false;
    call.on('data', (bytes: Buffer) => {
      if (answered || this.state === 'closed') return;
      let batch;
      try {
        batch = decodeBatch(bytes);
        // Entries stay in the log as views of the bytes they were decoded from: decode them from a long-lived copy.
        if (this.options.retainEntries !== undefined && batch.messages.some(carriesEntries)) batch = decodeBatch(this.options.retainEntries(bytes));
        const misdirected = this.misdirection(batch.clusterId, batch.from, batch.to);
        if (misdirected !== null) throw misdirected;
        this.checkSender(sender, batch.from);
        for (const m of batch.messages) this.checkSender(sender, m.from);
        const notAdmitted = this.notAdmitted(from ?? batch.from, batch.messages);
        if (notAdmitted !== null) throw notAdmitted;
      } catch (err) {
        answered = true;
        this.refuse(call, respond, err);
        return;
      }
      this.stats.batchesReceived++;
      this.stats.messagesReceived += batch.messages.length;
      this.stats.bytesReceived += bytes.length;
      if (batch.messages.length === 0) return;
      try {
        this.options.onMessages(batch.messages);
      } catch (err) {
        this.logger.error({ err, peer: batch.from }, 'onMessages threw: batch lost');
      }
    });
    call.on('end', () => {
      if (answered) return;
      answered = true;
      respond(null, SEND_ACK);
    });
    // The sender went away (cancelled or reset): there is no one to answer.
    call.on('error', () => {
      answered = true;
    });
  }

  /** Client calls a peer forwards: checked like Send, then handed to onForward. */
  private handleForward(call: ForwardStream): void {
    const fail = (status: grpc.StatusObject | grpc.ServerErrorResponse): void => {
      call.emit('error', status);
    };
    call.on('error', () => {
      // The forwarder went away; onForward's listeners see the stream end.
    });
    try {
      this.acceptStream(call, metadataValue(call.metadata, METADATA_FROM));
    } catch (err) {
      this.refuse(call, fail, err);
      return;
    }
    if (this.options.onForward === undefined || this.state === 'closed') {
      fail({ code: grpc.status.FAILED_PRECONDITION, details: `member '${this.nodeId}' does not take forwarded client calls`, metadata: new grpc.Metadata() });
      return;
    }
    call.sendMetadata(new grpc.Metadata());
    this.options.onForward(call);
  }

  private handleInstallSnapshot(call: ServerStream, respond: Respond): void {
    const from = metadataValue(call.metadata, METADATA_FROM);
    let sender: NodeId | null;
    try {
      sender = this.acceptStream(call, from);
    } catch (err) {
      this.refuse(call, respond, err);
      return;
    }
    call.on('error', () => {
      // Surfaces through the chunk iterator; the listener keeps it from being an unhandled 'error'.
    });
    this.track(
      this.receiveSnapshot(call, sender).then(
        (sizeBytes) => respond(null, encodeSnapshotAck(sizeBytes)),
        (err: unknown) => {
          if (call.cancelled) return;
          this.refuse(call, respond, err);
        },
      ),
    );
  }

  /** Reads an InstallSnapshot stream into SnapshotStore.receive, then delivers the message; resolves with the bytes stored. */
  private async receiveSnapshot(call: ServerStream, sender: NodeId | null): Promise<number> {
    const stream: AsyncIterator<Buffer> = call[Symbol.asyncIterator]();
    const next = async (): Promise<SnapshotChunk | null> => {
      const result = await stream.next();
      return result.done === true ? null : decodeSnapshotChunk(result.value);
    };
    const first = await next();
    if (first === null) throw new MalformedMessageError('an InstallSnapshot stream ended before its first chunk');
    if (first.header === null) throw new MalformedMessageError('the first chunk of an InstallSnapshot stream has no header');
    const { message, clusterId } = first.header;
    const misdirected = this.misdirection(clusterId, message.from, message.to);
    if (misdirected !== null) throw misdirected;
    this.checkSender(sender, message.from);
    const notAdmitted = this.notAdmitted(metadataValue(call.metadata, METADATA_FROM) ?? message.from, [message]);
    if (notAdmitted !== null) throw notAdmitted;

    let received = 0;
    let complete = false;
    async function* chunks(): AsyncGenerator<Uint8Array, void, undefined> {
      let chunk: SnapshotChunk | null = first;
      while (chunk !== null) {
        if (chunk !== first && chunk.header !== null) throw new MalformedMessageError('a snapshot chunk after the first carries a header');
        if (chunk.offset !== received) {
          throw new MalformedMessageError(`snapshot chunk at offset ${chunk.offset}, but ${received} bytes have been received: a chunk was lost or repeated`);
        }
        if (chunk.data.length > 0) {
          received += chunk.data.length;
          yield chunk.data;
        }
        if (chunk.last) {
          if ((await next()) !== null) throw new MalformedMessageError('a snapshot chunk follows the last one');
          complete = true;
          return;
        }
        chunk = await next();
      }
      throw new MalformedMessageError(`the snapshot stream ended after ${received} bytes without its last chunk`);
    }

    const startedAt = Date.now();
    try {
      await this.snapshots.receive(message.snapshot, chunks(), message.from);
    } finally {
      // Releases the stream if receive() stopped early or failed.
      await stream.return?.();
    }
    if (!complete) throw new Error(`receive() returned after ${received} bytes, before the last chunk`);
    if (this.state === 'closed') throw new TransportStateError('the node is shutting down');
    this.stats.snapshotsReceived++;
    this.logger.info({ peer: message.from, index: message.snapshot.index, term: message.snapshot.term, bytes: received, ms: Date.now() - startedAt }, 'snapshot received');
    try {
      this.options.onMessages([message]);
    } catch (err) {
      this.logger.error({ err, peer: message.from }, 'onMessages threw on a snapshot message');
      throw new Error(`stored, but the node did not take the snapshot message: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    return received;
  }
}
