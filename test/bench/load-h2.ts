/**
 * A minimal HTTP/2 client (RFC 9113) for unary gRPC calls, written for the
 * load generator: it costs a few microseconds of CPU per call where node:http2
 * costs tens, because a call here is two frames appended to a buffer and a
 * Map entry, with no stream object, no events and no header objects.
 *
 * - Requests: HEADERS with a header block built once per path (HPACK literals,
 *   src/transport/http2/hpack.ts), then DATA with END_STREAM. Everything a tick produces goes
 *   out in one socket write.
 * - Responses: only the status is read. A header block that ends a stream
 *   (trailers, or a trailers-only error) is decoded once and memoized by its
 *   bytes: with no dynamic table the same status is the same bytes.
 * - Flow control: receive windows are opened to the maximum at the start and
 *   topped up; send windows and the peer's stream limit are honoured, with
 *   calls queued while they are exhausted.
 * - Not supported, as a benchmark needs none of it: TLS, reconnecting (a lost
 *   connection fails its calls with UNAVAILABLE), server push, priorities,
 *   and more than 2^30 calls per connection.
 */
import * as net from 'node:net';
import { HpackDecoder, encodeHeaderBlock } from '../../src/transport/http2/hpack.ts';

/** Called once per call with its gRPC status code. */
type CallDone = (code: number) => void;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;

const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;

const SETTINGS_HEADER_TABLE_SIZE = 0x1;
const SETTINGS_ENABLE_PUSH = 0x2;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;

const MAX_WINDOW = 2 ** 31 - 1;
const DEFAULT_WINDOW = 65_535;
const MAX_STREAM_ID = 2 ** 31 - 1;

// gRPC status codes (grpc's status.proto) and the HTTP/2-to-gRPC mapping of gRPC's PROTOCOL-HTTP2.md.
const CANCELLED = 1;
const UNKNOWN = 2;
const RESOURCE_EXHAUSTED = 8;
const INTERNAL = 13;
const UNAVAILABLE = 14;
const PERMISSION_DENIED = 7;
const RST_CODE_TO_STATUS: Readonly<Record<number, number>> = { 0x7: UNAVAILABLE, 0x8: CANCELLED, 0xb: RESOURCE_EXHAUSTED, 0xc: PERMISSION_DENIED };

interface Call {
  readonly done: CallDone;
  /** The request message (gRPC-framed), and how much of it is still to send. */
  readonly body: Buffer;
  sent: number;
  /** What the peer lets this stream send before a WINDOW_UPDATE. */
  window: number;
}

interface Queued {
  readonly path: string;
  readonly body: Buffer;
  readonly done: CallDone;
}

export class RawHttp2Connection {
  private readonly socket: net.Socket;
  private readonly authority: string;
  private readonly headerBlocks = new Map<string, Buffer>();
  /** We advertise a header table size of 0, so decoding keeps no state and skipped blocks lose nothing. */
  private readonly hpack = new HpackDecoder(0);
  /** grpc-status of end-of-stream header blocks seen before, by their bytes. */
  private readonly statusByBlock = new Map<string, number>();
  private readonly calls = new Map<number, Call>();
  /** Calls waiting for the peer's concurrent-stream limit. */
  private readonly waiting: Queued[] = [];
  /** Streams with request bytes still to send, waiting for send window. */
  private readonly blocked: number[] = [];
  private nextStreamId = 1;
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  private input: Buffer | null = null;
  private headerStream = 0;
  private headerFragments: Buffer[] = [];
  private headerEndsStream = false;
  private connectionWindow = DEFAULT_WINDOW;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = 16_384;
  private peerMaxStreams = Infinity;
  private received = 0;
  private failure: string | null = null;
  private readonly settled: Promise<void>;

  constructor(address: string) {
    const colon = address.lastIndexOf(':');
    const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(address.slice(colon + 1));
    this.authority = address;
    this.socket = net.connect({ host, port, noDelay: true });
    this.settled = new Promise((resolve, reject) => {
      this.onSettings = resolve;
      this.onFailure = (reason) => reject(new Error(reason));
    });
    this.settled.catch(() => {}); // ready() reports it
    this.socket.on('data', (chunk: Buffer) => this.receive(chunk));
    this.socket.on('error', (error) => this.fail(`connection to ${address} failed: ${error.message}`));
    this.socket.on('close', () => this.fail(`connection to ${address} closed`));
    // Our settings: no dynamic HPACK table (so responses decode statelessly), no push, the largest stream windows.
    const settings = Buffer.alloc(18);
    [
      [SETTINGS_HEADER_TABLE_SIZE, 0],
      [SETTINGS_ENABLE_PUSH, 0],
      [SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW],
    ].forEach(([id, value], i) => {
      settings.writeUInt16BE(id!, i * 6);
      settings.writeUInt32BE(value!, i * 6 + 2);
    });
    this.socket.cork();
    this.socket.write(PREFACE);
    this.writeFrame(SETTINGS, 0, 0, settings);
    this.writeWindowUpdate(0, MAX_WINDOW - DEFAULT_WINDOW);
    process.nextTick(() => this.socket.uncork());
  }

  /** Settle ready(): the first SETTINGS from the peer, or the connection failing first. */
  private onSettings: () => void = () => {};
  private onFailure: (reason: string) => void = () => {};

  prepare(message: Buffer): Buffer {
    const framed = Buffer.allocUnsafe(5 + message.length);
    framed[0] = 0;
    framed.writeUInt32BE(message.length, 1);
    message.copy(framed, 5);
    return framed;
  }

  ready(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no HTTP/2 settings from ${this.authority} within ${timeoutMs} ms`)), timeoutMs);
      this.settled.then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error as Error);
        },
      );
    });
  }

  call(path: string, prepared: Buffer, done: CallDone): void {
    if (this.failure !== null) {
      setImmediate(done, UNAVAILABLE);
      return;
    }
    if (this.calls.size >= this.peerMaxStreams) {
      this.waiting.push({ path, body: prepared, done });
      return;
    }
    this.start(path, prepared, done);
  }

  close(): void {
    this.fail('connection closed by the client');
  }

  private start(path: string, body: Buffer, done: CallDone): void {
    const id = this.nextStreamId;
    if (id > MAX_STREAM_ID) {
      setImmediate(done, UNAVAILABLE);
      this.fail('stream ids exhausted on this connection');
      return;
    }
    this.nextStreamId += 2;
    let block = this.headerBlocks.get(path);
    if (block === undefined) {
      block = encodeHeaderBlock([
        [':method', 'POST'],
        [':scheme', 'http'],
        [':path', path],
        [':authority', this.authority],
        ['content-type', 'application/grpc'],
        ['te', 'trailers'],
      ]);
      this.headerBlocks.set(path, block);
    }
    const call: Call = { done, body, sent: 0, window: this.peerInitialWindow };
    this.calls.set(id, call);
    this.writeFrame(HEADERS, FLAG_END_HEADERS, id, block);
    this.sendBody(id, call);
  }

  /** Sends as much of a call's request as the windows allow; queues the stream when blocked. */
  private sendBody(id: number, call: Call): boolean {
    while (call.sent < call.body.length) {
      const n = Math.min(call.body.length - call.sent, call.window, this.connectionWindow, this.peerMaxFrame);
      if (n <= 0) {
        this.blocked.push(id);
        return false;
      }
      const last = call.sent + n === call.body.length;
      this.writeFrame(DATA, last ? FLAG_END_STREAM : 0, id, call.body.subarray(call.sent, call.sent + n));
      call.sent += n;
      call.window -= n;
      this.connectionWindow -= n;
    }
    return true;
  }

  private unblock(): void {
    while (this.blocked.length > 0) {
      const id = this.blocked[0]!;
      const call = this.calls.get(id);
      this.blocked.shift();
      if (call !== undefined && !this.sendBody(id, call)) {
        // sendBody queued it again at the back; keep the order by moving it to the front.
        this.blocked.unshift(this.blocked.pop()!);
        return;
      }
    }
  }

  private writeFrame(type: number, flags: number, stream: number, payload: Buffer): void {
    const header = Buffer.allocUnsafe(9);
    header.writeUIntBE(payload.length, 0, 3);
    header[3] = type;
    header[4] = flags;
    header.writeUInt32BE(stream, 5);
    this.out.push(header, payload);
    this.outBytes += 9 + payload.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  private writeWindowUpdate(stream: number, increment: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(increment, 0);
    this.writeFrame(WINDOW_UPDATE, 0, stream, payload);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.socket.destroyed) return;
    const chunk = this.out.length === 1 ? this.out[0]! : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    this.socket.write(chunk);
  }

  private receive(chunk: Buffer): void {
    let buffer = this.input === null ? chunk : Buffer.concat([this.input, chunk]);
    let offset = 0;
    try {
      while (buffer.length - offset >= 9) {
        const length = buffer.readUIntBE(offset, 3);
        if (buffer.length - offset < 9 + length) break;
        const type = buffer[offset + 3]!;
        const flags = buffer[offset + 4]!;
        const stream = buffer.readUInt32BE(offset + 5) & 0x7fffffff;
        this.frame(type, flags, stream, buffer.subarray(offset + 9, offset + 9 + length));
        offset += 9 + length;
      }
    } catch (error) {
      this.fail(`protocol error from ${this.authority}: ${(error as Error).message}`);
      return;
    }
    buffer = buffer.subarray(offset);
    // Keep a partial frame (copied, so the socket's chunk can be released).
    this.input = buffer.length === 0 ? null : Buffer.from(buffer);
  }

  private frame(type: number, flags: number, stream: number, payload: Buffer): void {
    switch (type) {
      case DATA:
        this.received += payload.length;
        // Top up the connection window in large steps (stream windows are already at the maximum).
        if (this.received >= 2 ** 30) {
          this.writeWindowUpdate(0, this.received);
          this.received = 0;
        }
        // A gRPC response ends with trailers, never with DATA.
        if ((flags & FLAG_END_STREAM) !== 0) this.finish(stream, INTERNAL);
        return;
      case HEADERS: {
        let start = 0;
        let end = payload.length;
        if ((flags & FLAG_PADDED) !== 0) {
          end -= payload[0]!;
          start = 1;
        }
        if ((flags & FLAG_PRIORITY) !== 0) start += 5;
        this.headerStream = stream;
        this.headerEndsStream = (flags & FLAG_END_STREAM) !== 0;
        this.headerFragments = [payload.subarray(start, end)];
        if ((flags & FLAG_END_HEADERS) !== 0) this.headersDone();
        return;
      }
      case CONTINUATION:
        if (stream !== this.headerStream) throw new Error('CONTINUATION on another stream');
        this.headerFragments.push(payload);
        if ((flags & FLAG_END_HEADERS) !== 0) this.headersDone();
        return;
      case RST_STREAM:
        this.finish(stream, RST_CODE_TO_STATUS[payload.readUInt32BE(0)] ?? INTERNAL);
        return;
      case SETTINGS:
        if ((flags & FLAG_ACK) !== 0) return;
        this.applySettings(payload);
        this.writeFrame(SETTINGS, FLAG_ACK, 0, Buffer.alloc(0));
        this.onSettings();
        return;
      case PING:
        if ((flags & FLAG_ACK) === 0) this.writeFrame(PING, FLAG_ACK, 0, Buffer.from(payload));
        return;
      case GOAWAY: {
        // Streams up to `last` may still be answered; later ones, and calls not started, never will be.
        const last = payload.readUInt32BE(0) & 0x7fffffff;
        this.failure ??= `${this.authority} sent GOAWAY`;
        for (const queued of this.waiting.splice(0)) queued.done(UNAVAILABLE);
        for (const id of [...this.calls.keys()]) if (id > last) this.finish(id, UNAVAILABLE);
        return;
      }
      case WINDOW_UPDATE: {
        const increment = payload.readUInt32BE(0) & 0x7fffffff;
        if (stream === 0) this.connectionWindow += increment;
        else {
          const call = this.calls.get(stream);
          if (call !== undefined) call.window += increment;
        }
        this.unblock();
        return;
      }
      default:
        return; // PRIORITY, PUSH_PROMISE (disabled) and unknown types carry nothing a client needs
    }
  }

  private applySettings(payload: Buffer): void {
    for (let i = 0; i + 6 <= payload.length; i += 6) {
      const id = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      if (id === SETTINGS_MAX_CONCURRENT_STREAMS) this.peerMaxStreams = value;
      else if (id === SETTINGS_MAX_FRAME_SIZE) this.peerMaxFrame = value;
      else if (id === SETTINGS_INITIAL_WINDOW_SIZE) {
        // The change applies to open streams too (RFC 9113 6.9.2).
        const delta = value - this.peerInitialWindow;
        this.peerInitialWindow = value;
        for (const call of this.calls.values()) call.window += delta;
      }
    }
    this.unblock();
  }

  private headersDone(): void {
    const stream = this.headerStream;
    this.headerStream = 0;
    // Response headers that do not end the stream hold no status: skip decoding them.
    if (!this.headerEndsStream) return;
    const block = this.headerFragments.length === 1 ? this.headerFragments[0]! : Buffer.concat(this.headerFragments);
    const key = block.toString('latin1');
    let status = this.statusByBlock.get(key);
    if (status === undefined) {
      status = UNKNOWN;
      for (const [name, value] of this.hpack.decode(block)) if (name === 'grpc-status') status = Number(value);
      // Bounded: error messages vary, successes do not.
      if (this.statusByBlock.size > 1000) this.statusByBlock.clear();
      this.statusByBlock.set(key, status);
    }
    this.finish(stream, status);
  }

  private finish(stream: number, status: number): void {
    const call = this.calls.get(stream);
    if (call === undefined) return;
    this.calls.delete(stream);
    call.done(status);
    // A stream slot is free: start the oldest waiting call (none wait once the connection has failed).
    const next = this.failure === null ? this.waiting.shift() : undefined;
    if (next !== undefined) this.start(next.path, next.body, next.done);
  }

  private fail(reason: string): void {
    if (this.failure === null) this.failure = reason;
    this.onFailure(this.failure);
    if (!this.socket.destroyed) this.socket.destroy();
    const calls = [...this.calls.values()];
    const waiting = this.waiting.splice(0);
    this.calls.clear();
    for (const call of calls) call.done(UNAVAILABLE);
    for (const queued of waiting) queued.done(UNAVAILABLE);
  }
}
