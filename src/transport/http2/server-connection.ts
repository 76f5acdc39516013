/**
 * The server side of one HTTP/2 connection (RFC 9113): the preface and
 * SETTINGS exchange, request streams (HEADERS + CONTINUATION, DATA,
 * RST_STREAM), flow control both ways, PING, and GOAWAY. It knows nothing of
 * gRPC: a new stream is handed to `onStream` with its request headers, and
 * the handler answers with respond / write / end.
 *
 * Cost is the point of it: a stream is a small object with callbacks (no
 * events), header blocks are written as prebuilt literals, and everything a
 * turn of the event loop produces goes out in one socket write.
 *
 * Limits against a misbehaving client: SETTINGS_MAX_CONCURRENT_STREAMS
 * (more is REFUSED_STREAM), a cap on a header block's compressed bytes and
 * on its decoded size, and on streams a client resets per second (the
 * "rapid reset" attack: more is GOAWAY ENHANCE_YOUR_CALM).
 */
import type { Duplex } from 'node:stream';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_BYTES,
  ErrorCode,
  Flag,
  FrameReader,
  FrameType,
  Http2ConnectionError,
  MAX_WINDOW,
  SETTINGS_ACK,
  Setting,
  dataFrames,
  goawayFrame,
  headersFrames,
  parseSettings,
  parseWindowUpdate,
  payloadOf,
  pingAckFrame,
  rstStreamFrame,
  settingsFrame,
  windowUpdateFrame,
} from './frames.ts';
import type { Frame } from './frames.ts';
import { HeaderListTooLargeError, HpackDecoder, HpackError, encodeHeaderBlock } from './hpack.ts';

export type HeaderFields = readonly (readonly [string, string])[];

export interface ConnectionLimits {
  readonly maxConcurrentStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: decoded bytes of one header block (RFC 9113 6.5.2 counting). */
  readonly maxHeaderListBytes: number;
  /** Our receive window for each stream (SETTINGS_INITIAL_WINDOW_SIZE) and for the connection. */
  readonly streamWindowBytes: number;
  readonly connectionWindowBytes: number;
  /** Streams the client may reset in one second before the connection is closed. */
  readonly maxResetsPerSecond: number;
}

export const DEFAULT_LIMITS: ConnectionLimits = {
  maxConcurrentStreams: 100,
  maxHeaderListBytes: 16 * 1024,
  streamWindowBytes: 1024 * 1024,
  connectionWindowBytes: 16 * 1024 * 1024,
  maxResetsPerSecond: 200,
};

/** A request stream, as the handler sees it. */
export class ServerStream {
  /** Request body bytes as they arrive (padding removed). */
  onData: (chunk: Buffer) => void = () => {};
  /** The client ended its request. */
  onEnd: () => void = () => {};
  /** The stream ended before the response did: the client reset it, or the connection closed. */
  onAbort: (code: number) => void = () => {};
  /** The send window opened again after write() returned false. */
  onDrain: () => void = () => {};

  /** Whether the client's half is closed (END_STREAM received). */
  requestEnded = false;
  /** Whether our half is closed (END_STREAM sent or queued). */
  responseEnded = false;
  closed = false;
  sendWindow: number;
  /** Received bytes not yet given back to the client as window. */
  unacknowledgedBytes = 0;
  /** Frames waiting for send window, in order: DATA payloads, and the trailers' block last. */
  readonly pending: { data: Buffer; end: boolean; trailers: Buffer | null }[] = [];

  constructor(
    readonly id: number,
    private readonly connection: ServerConnection,
    sendWindow: number,
  ) {
    this.sendWindow = sendWindow;
  }

  /** The connection's socket (a TLSSocket under TLS): who the peer is. */
  get socket(): Duplex {
    return this.connection.socket;
  }

  /** Response headers (`:status` first), as fields or a block encoded once; endStream for a headers-only (trailers-only) answer. */
  respond(fields: HeaderFields | Buffer, endStream = false): void {
    if (this.closed || this.responseEnded) return;
    if (endStream) this.responseEnded = true;
    this.connection.sendHeaders(this, blockOf(fields), endStream);
  }

  /** Body bytes; false once more is queued than the send window allows (wait for onDrain). */
  write(data: Buffer): boolean {
    if (this.closed || this.responseEnded) return false;
    return this.connection.sendData(this, data, false, null);
  }

  /** Ends the response, with trailers (fields, or a block encoded once) when given. */
  end(trailers: HeaderFields | Buffer | null = null, data: Buffer = EMPTY): void {
    if (this.closed || this.responseEnded) return;
    this.responseEnded = true;
    this.connection.sendData(this, data, trailers === null, trailers === null ? null : blockOf(trailers));
  }

  /** Abandons the stream with RST_STREAM. */
  reset(code: number = ErrorCode.CANCEL): void {
    this.connection.resetStream(this, code);
  }
}

const EMPTY = Buffer.alloc(0);
const blockOf = (fields: HeaderFields | Buffer): Buffer => (Buffer.isBuffer(fields) ? fields : encodeHeaderBlock(fields));
const BLOCK_BYTES_PER_LIST_BYTE = 4;
/** Unsent bytes on a connection past which DATA waits, and past which the client is cut off. */
const UNSENT_HIGH_WATER_BYTES = 4 * 1024 * 1024;
const UNSENT_MAX_BYTES = 64 * 1024 * 1024;
/** Queued response bytes per stream beyond its send window before write() says to wait. */
const HIGH_WATER_BYTES = 64 * 1024;

export class ServerConnection {
  private readonly reader = new FrameReader();
  private readonly decoder: HpackDecoder;
  private readonly streams = new Map<number, ServerStream>();
  private prefaceLeft = CLIENT_PREFACE.length;
  private settingsSeen = false;
  private lastStreamId = 0;
  /** The HEADERS still being continued: its stream and fragments. */
  private continuing: { streamId: number; fragments: Buffer[]; bytes: number; endStream: boolean } | null = null;
  private peerMaxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  private peerInitialWindow = 65_535;
  private connectionSendWindow = 65_535;
  private connectionUnacknowledged = 0;
  /** Streams with data waiting for send window, in the order they blocked. */
  private readonly blocked = new Set<ServerStream>();
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private resetsThisSecond = 0;
  private resetWindowStart = 0;
  private goingAway = false;
  private ended = false;

  constructor(
    readonly socket: Duplex,
    private readonly onStream: (stream: ServerStream, headers: [string, string][]) => void,
    private readonly limits: ConnectionLimits = DEFAULT_LIMITS,
  ) {
    this.decoder = new HpackDecoder(4096, limits.maxHeaderListBytes);
    this.queue(
      settingsFrame([
        [Setting.MAX_CONCURRENT_STREAMS, limits.maxConcurrentStreams],
        [Setting.INITIAL_WINDOW_SIZE, limits.streamWindowBytes],
        [Setting.MAX_HEADER_LIST_SIZE, limits.maxHeaderListBytes],
        [Setting.ENABLE_PUSH, 0],
      ]),
    );
    if (limits.connectionWindowBytes > 65_535) this.queue(windowUpdateFrame(0, limits.connectionWindowBytes - 65_535));
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    // The client read what was queued: DATA held back for the socket may go.
    socket.on('drain', () => this.unblock());
    socket.on('close', () => this.closeAll());
    socket.on('error', () => this.closeAll());
  }

  get openStreams(): number {
    return this.streams.size;
  }

  /**
   * Stops taking new streams (GOAWAY with the last one taken) and ends the
   * connection once the open ones are done.
   */
  goAway(): void {
    if (this.goingAway || this.ended) return;
    this.goingAway = true;
    this.queue(goawayFrame(this.lastStreamId, ErrorCode.NO_ERROR));
    this.maybeFinish();
  }

  /** Ends the connection at once; open streams are aborted. */
  destroy(): void {
    this.socket.destroy();
    this.closeAll();
  }

  // ---- Receiving -----------------------------------------------------------------

  private receive(chunk: Buffer): void {
    if (this.ended) return;
    try {
      if (this.prefaceLeft > 0) {
        const piece = chunk.subarray(0, this.prefaceLeft);
        const offset = CLIENT_PREFACE.length - this.prefaceLeft;
        if (!piece.equals(CLIENT_PREFACE.subarray(offset, offset + piece.length))) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'not the HTTP/2 client preface');
        this.prefaceLeft -= piece.length;
        chunk = chunk.subarray(piece.length);
        if (chunk.length === 0) return;
      }
      for (const frame of this.reader.push(chunk)) this.handle(frame);
    } catch (error) {
      // A handler's bug ends this connection (INTERNAL_ERROR), not the process.
      if (error instanceof Http2ConnectionError) this.fail(error.code, error.message);
      else this.fail(ErrorCode.INTERNAL_ERROR, `internal error: ${(error as Error).message}`);
    }
  }

  private handle(frame: Frame): void {
    if (!this.settingsSeen) {
      if (frame.type !== FrameType.SETTINGS || (frame.flags & Flag.ACK) !== 0) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'the first frame must be SETTINGS');
      this.settingsSeen = true;
    }
    if (this.continuing !== null && frame.type !== FrameType.CONTINUATION) {
      throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, `frame type ${frame.type} inside a header block`);
    }
    switch (frame.type) {
      case FrameType.HEADERS:
        return this.onHeaders(frame);
      case FrameType.CONTINUATION:
        return this.onContinuation(frame);
      case FrameType.DATA:
        return this.onData(frame);
      case FrameType.RST_STREAM:
        return this.onReset(frame);
      case FrameType.SETTINGS:
        return this.onSettings(frame);
      case FrameType.PING:
        if (frame.streamId !== 0) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
        if (frame.payload.length !== 8) throw new Http2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `PING of ${frame.payload.length} bytes`);
        if ((frame.flags & Flag.ACK) === 0) this.queue(pingAckFrame(Buffer.from(frame.payload)));
        return;
      case FrameType.WINDOW_UPDATE:
        return this.onWindowUpdate(frame);
      case FrameType.GOAWAY:
        // The client opens no more streams; the ones open run to their end.
        return;
      case FrameType.PRIORITY:
        if (frame.payload.length !== 5) this.resetById(frame.streamId, ErrorCode.FRAME_SIZE_ERROR);
        return;
      case FrameType.PUSH_PROMISE:
        throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
      default:
        // Unknown frame types are ignored (RFC 9113 4.1).
        return;
    }
  }

  private onHeaders(frame: Frame): void {
    const id = frame.streamId;
    if (id === 0 || id % 2 === 0) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on stream ${id}`);
    const fragment = payloadOf(frame);
    this.continuing = { streamId: id, fragments: [fragment], bytes: fragment.length, endStream: (frame.flags & Flag.END_STREAM) !== 0 };
    this.checkBlockBytes();
    if ((frame.flags & Flag.END_HEADERS) !== 0) this.headerBlockDone();
  }

  private onContinuation(frame: Frame): void {
    const continuing = this.continuing;
    if (continuing === null || frame.streamId !== continuing.streamId) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, `CONTINUATION on stream ${frame.streamId} outside its header block`);
    continuing.fragments.push(frame.payload);
    continuing.bytes += frame.payload.length;
    this.checkBlockBytes();
    if ((frame.flags & Flag.END_HEADERS) !== 0) this.headerBlockDone();
  }

  /**
   * A block's compressed bytes stay within a few times its decoded limit
   * (Huffman's longest code is under 4 bytes a character); far more is a
   * flood of CONTINUATIONs, which would otherwise be buffered without end.
   */
  private checkBlockBytes(): void {
    const limit = BLOCK_BYTES_PER_LIST_BYTE * this.limits.maxHeaderListBytes;
    if ((this.continuing?.bytes ?? 0) > limit) throw new Http2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, `a header block over ${limit} compressed bytes`);
  }

  private headerBlockDone(): void {
    const { streamId, fragments, endStream } = this.continuing as NonNullable<ServerConnection['continuing']>;
    this.continuing = null;
    let fields: [string, string][] | null;
    try {
      fields = this.decoder.decode(fragments.length === 1 ? (fragments[0] as Buffer) : Buffer.concat(fragments));
    } catch (error) {
      // The table is in step after an oversized list, so only that stream fails; anything else breaks the table.
      if (error instanceof HeaderListTooLargeError) fields = null;
      else if (error instanceof HpackError) throw new Http2ConnectionError(ErrorCode.COMPRESSION_ERROR, error.message);
      else throw error;
    }
    const existing = this.streams.get(streamId);
    if (existing !== undefined) {
      // Trailers: they must end the request.
      if (!endStream || existing.requestEnded) return this.resetStream(existing, ErrorCode.PROTOCOL_ERROR);
      return this.requestEnd(existing);
    }
    if (streamId <= this.lastStreamId) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, `HEADERS on closed stream ${streamId}`);
    this.lastStreamId = streamId;
    if (this.goingAway) return;
    if (fields === null) return this.queue(rstStreamFrame(streamId, ErrorCode.ENHANCE_YOUR_CALM));
    if (this.streams.size >= this.limits.maxConcurrentStreams) return this.queue(rstStreamFrame(streamId, ErrorCode.REFUSED_STREAM));
    if (!fields.some(([name]) => name === ':path') || !fields.some(([name]) => name === ':method')) return this.queue(rstStreamFrame(streamId, ErrorCode.PROTOCOL_ERROR));
    const stream = new ServerStream(streamId, this, this.peerInitialWindow);
    this.streams.set(streamId, stream);
    this.onStream(stream, fields);
    if (endStream) this.requestEnd(stream);
  }

  private onData(frame: Frame): void {
    const length = frame.payload.length;
    // Flow control counts the whole payload, padding included, open stream or not.
    this.connectionUnacknowledged += length;
    if (this.connectionUnacknowledged > this.limits.connectionWindowBytes) throw new Http2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    const stream = this.streams.get(frame.streamId);
    if (stream === undefined || stream.requestEnded) {
      if (frame.streamId === 0 || frame.streamId > this.lastStreamId) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, `DATA on idle stream ${frame.streamId}`);
      // A stream we closed (RST NO_ERROR after our answer) may still have data in flight: dropped, as RFC 9113 5.1 allows.
      if (stream !== undefined) this.resetStream(stream, ErrorCode.STREAM_CLOSED);
      this.giveBackWindow(null);
      return;
    }
    stream.unacknowledgedBytes += length;
    if (stream.unacknowledgedBytes > this.limits.streamWindowBytes) return this.resetStream(stream, ErrorCode.FLOW_CONTROL_ERROR);
    const data = payloadOf(frame);
    if (data.length > 0) stream.onData(data);
    // The handler took the bytes (it bounds what it keeps): the window opens again.
    this.giveBackWindow(stream);
    if ((frame.flags & Flag.END_STREAM) !== 0) this.requestEnd(stream);
  }

  /** Window updates in batches: once half a window is used, not per frame. */
  private giveBackWindow(stream: ServerStream | null): void {
    if (this.connectionUnacknowledged >= this.limits.connectionWindowBytes / 2) {
      this.queue(windowUpdateFrame(0, this.connectionUnacknowledged));
      this.connectionUnacknowledged = 0;
    }
    if (stream !== null && !stream.requestEnded && stream.unacknowledgedBytes >= this.limits.streamWindowBytes / 2) {
      this.queue(windowUpdateFrame(stream.id, stream.unacknowledgedBytes));
      stream.unacknowledgedBytes = 0;
    }
  }

  private onReset(frame: Frame): void {
    if (frame.streamId === 0) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (frame.payload.length !== 4) throw new Http2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `RST_STREAM of ${frame.payload.length} bytes`);
    const stream = this.streams.get(frame.streamId);
    // A reset of a stream already answered costs nothing; only open ones count toward the limit.
    if (stream === undefined) return;
    const now = Date.now();
    if (now - this.resetWindowStart >= 1000) {
      this.resetWindowStart = now;
      this.resetsThisSecond = 0;
    }
    if (++this.resetsThisSecond > this.limits.maxResetsPerSecond) throw new Http2ConnectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many streams reset');
    this.forget(stream);
    stream.onAbort(frame.payload.readUInt32BE(0));
  }

  private onSettings(frame: Frame): void {
    const settings = parseSettings(frame);
    if ((frame.flags & Flag.ACK) !== 0) return;
    for (const [id, value] of settings) {
      if (id === Setting.INITIAL_WINDOW_SIZE) {
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const stream of this.streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW) throw new Http2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'a stream window over 2^31-1');
        }
      } else if (id === Setting.MAX_FRAME_SIZE) {
        this.peerMaxFrameBytes = value;
      }
      // HEADER_TABLE_SIZE: our encoder keeps no dynamic table, so any size suits it.
    }
    this.queue(SETTINGS_ACK);
    this.unblock();
  }

  private onWindowUpdate(frame: Frame): void {
    const increment = parseWindowUpdate(frame);
    if (frame.streamId === 0) {
      if (increment === 0) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, 'a connection WINDOW_UPDATE of 0');
      this.connectionSendWindow += increment;
      if (this.connectionSendWindow > MAX_WINDOW) throw new Http2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, 'the connection window over 2^31-1');
    } else {
      const stream = this.streams.get(frame.streamId);
      if (stream === undefined) return;
      if (increment === 0) return this.resetStream(stream, ErrorCode.PROTOCOL_ERROR);
      stream.sendWindow += increment;
      if (stream.sendWindow > MAX_WINDOW) return this.resetStream(stream, ErrorCode.FLOW_CONTROL_ERROR);
    }
    this.unblock();
  }

  private requestEnd(stream: ServerStream): void {
    stream.requestEnded = true;
    stream.onEnd();
    if (stream.responseEnded && stream.pending.length === 0) this.forget(stream);
  }

  // ---- Sending -------------------------------------------------------------------

  /** @internal (ServerStream) */
  sendHeaders(stream: ServerStream, block: Buffer, endStream: boolean): void {
    for (const piece of headersFrames(stream.id, block, endStream, this.peerMaxFrameBytes)) this.queue(piece);
    if (endStream) this.responseDone(stream);
  }

  /** @internal (ServerStream) Queues data (and the end), sending what the windows allow; false past the high-water mark. */
  sendData(stream: ServerStream, data: Buffer, end: boolean, trailers: Buffer | null): boolean {
    stream.pending.push({ data, end, trailers });
    this.drain(stream);
    const queued = stream.pending.reduce((sum, item) => sum + item.data.length, 0);
    return queued <= HIGH_WATER_BYTES;
  }

  /** @internal (ServerStream) */
  resetStream(stream: ServerStream, code: number): void {
    if (stream.closed) return;
    this.queue(rstStreamFrame(stream.id, code));
    this.forget(stream);
    stream.onAbort(code);
  }

  private resetById(streamId: number, code: number): void {
    const stream = this.streams.get(streamId);
    if (stream !== undefined) this.resetStream(stream, code);
    else if (streamId !== 0) this.queue(rstStreamFrame(streamId, code));
  }

  /** Sends a stream's queued data as far as the stream and connection windows allow; true when all went. */
  private drain(stream: ServerStream): boolean {
    while (stream.pending.length > 0) {
      const item = stream.pending[0] as ServerStream['pending'][number];
      // Empty data (an end, trailers) is not flow-controlled: it goes even when a window is negative.
      const room = item.data.length === 0 ? 0 : Math.min(stream.sendWindow, this.connectionSendWindow, this.socketRoom());
      const allowed = Math.max(0, Math.min(room, item.data.length));
      if (allowed < item.data.length) {
        if (allowed > 0) {
          for (const piece of dataFrames(stream.id, item.data.subarray(0, allowed), false, this.peerMaxFrameBytes)) this.queue(piece);
          item.data = item.data.subarray(allowed);
          stream.sendWindow -= allowed;
          this.connectionSendWindow -= allowed;
        }
        this.blocked.add(stream);
        return false;
      }
      stream.pending.shift();
      stream.sendWindow -= item.data.length;
      this.connectionSendWindow -= item.data.length;
      // Empty data that does not end the stream is no frame at all.
      if (item.data.length > 0 || (item.end && item.trailers === null)) {
        for (const piece of dataFrames(stream.id, item.data, item.end && item.trailers === null, this.peerMaxFrameBytes)) this.queue(piece);
      }
      if (item.trailers !== null) for (const piece of headersFrames(stream.id, item.trailers, true, this.peerMaxFrameBytes)) this.queue(piece);
      if (item.end || item.trailers !== null) this.responseDone(stream);
    }
    this.blocked.delete(stream);
    return true;
  }

  private unblock(): void {
    for (const stream of [...this.blocked]) {
      if (this.connectionSendWindow <= 0 || this.socketRoom() <= 0) return;
      if (this.drain(stream)) stream.onDrain();
    }
  }

  /**
   * Response bytes the socket may still take before DATA waits: flow control
   * bounds what the client has room for, this what it has not read yet (a
   * client that advertises huge windows and stops reading).
   */
  private socketRoom(): number {
    return UNSENT_HIGH_WATER_BYTES - this.socket.writableLength - this.outBytes;
  }

  /** Our half is done: a request still open is told to stop sending (RST_STREAM NO_ERROR, RFC 9113 8.1). */
  private responseDone(stream: ServerStream): void {
    if (!stream.requestEnded) this.queue(rstStreamFrame(stream.id, ErrorCode.NO_ERROR));
    this.forget(stream);
  }

  private forget(stream: ServerStream): void {
    if (stream.closed) return;
    stream.closed = true;
    this.streams.delete(stream.id);
    this.blocked.delete(stream);
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (this.goingAway && this.streams.size === 0 && !this.ended) {
      this.ended = true;
      this.flush();
      this.socket.end();
    }
  }

  private queue(bytes: Buffer): void {
    if (this.ended && !this.flushScheduled) return;
    // Frames that are not flow-controlled (PING and SETTINGS acks, resets) from a client that never reads.
    if (this.socket.writableLength + this.outBytes > UNSENT_MAX_BYTES) {
      this.destroy();
      return;
    }
    this.out.push(bytes);
    this.outBytes += bytes.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.socket.destroyed) {
      this.out = [];
      this.outBytes = 0;
      return;
    }
    const bytes = this.out.length === 1 ? (this.out[0] as Buffer) : Buffer.concat(this.out);
    this.out = [];
    this.outBytes = 0;
    this.socket.write(bytes);
  }

  private fail(code: number, message: string): void {
    if (this.ended) return;
    this.queue(goawayFrame(this.lastStreamId, code, message));
    this.ended = true;
    this.flush();
    this.socket.end();
    this.closeAll();
  }

  private closeAll(): void {
    this.ended = true;
    for (const stream of [...this.streams.values()]) {
      this.forget(stream);
      stream.onAbort(ErrorCode.CANCEL);
    }
  }
}
