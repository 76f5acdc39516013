/**
 * HTTP/2 framing (RFC 9113 section 4 and 6): a reader that cuts a byte
 * stream into frames and checks what the frame layer alone can check, and
 * the writers of each frame type a server sends. What frames mean for
 * streams and flow control is the connection's job, not this module's.
 */

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

/** RFC 9113 section 7. */
export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

export const FRAME_HEADER_BYTES = 9;
/** Every endpoint must take frames this large; larger only once it says so (SETTINGS_MAX_FRAME_SIZE). */
export const DEFAULT_MAX_FRAME_BYTES = 16_384;
export const MAX_ALLOWED_FRAME_BYTES = 2 ** 24 - 1;
export const MAX_WINDOW = 2 ** 31 - 1;
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  /** The payload as received (padding included: stripping it is per type, see payloadOf). */
  readonly payload: Buffer;
}

/** A connection error (RFC 9113 5.4.1): the connection ends with GOAWAY carrying `code`. */
export class Http2ConnectionError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
    this.name = 'Http2ConnectionError';
  }
}

/**
 * Cuts incoming bytes into frames. Frames may arrive split or several to a
 * chunk; a frame over the size we allow is a FRAME_SIZE_ERROR before its
 * payload is buffered.
 */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  /** Our SETTINGS_MAX_FRAME_SIZE, once the peer has acknowledged it. */
  setMaxFrameBytes(bytes: number): void {
    this.maxFrameBytes = bytes;
  }

  /** The complete frames in what has arrived so far, in order. */
  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    let input = this.pending.length === 1 ? chunk : Buffer.concat(this.pending, this.pendingBytes);
    const frames: Frame[] = [];
    let at = 0;
    while (input.length - at >= FRAME_HEADER_BYTES) {
      const length = input.readUIntBE(at, 3);
      if (length > this.maxFrameBytes) throw new Http2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `a frame of ${length} bytes is over the ${this.maxFrameBytes} allowed`);
      if (input.length - at < FRAME_HEADER_BYTES + length) break;
      frames.push({
        type: input[at + 3] as number,
        flags: input[at + 4] as number,
        // The reserved bit is ignored on receipt (RFC 9113 4.1).
        streamId: input.readUInt32BE(at + 5) & 0x7fffffff,
        payload: input.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length),
      });
      at += FRAME_HEADER_BYTES + length;
    }
    input = input.subarray(at);
    this.pending = input.length === 0 ? [] : [input];
    this.pendingBytes = input.length;
    return frames;
  }
}

/**
 * The part of a DATA or HEADERS payload that carries content: without the
 * pad length, the padding, and (HEADERS) the priority fields.
 */
export function payloadOf(frame: Frame): Buffer {
  let payload = frame.payload;
  if ((frame.flags & Flag.PADDED) !== 0 && (frame.type === FrameType.DATA || frame.type === FrameType.HEADERS)) {
    const padding = payload[0];
    if (padding === undefined || padding >= payload.length) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, `frame type ${frame.type}: padding of ${padding ?? 'no'} bytes in a ${payload.length}-byte payload`);
    payload = payload.subarray(1, payload.length - padding);
  }
  if (frame.type === FrameType.HEADERS && (frame.flags & Flag.PRIORITY) !== 0) {
    if (payload.length < 5) throw new Http2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS with the PRIORITY flag but no priority fields');
    payload = payload.subarray(5);
  }
  return payload;
}

/** Parses a SETTINGS payload into (id, value) pairs, checking the values RFC 9113 6.5.2 bounds. */
export function parseSettings(frame: Frame): [number, number][] {
  if (frame.streamId !== 0) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS on stream ${frame.streamId}`);
  if ((frame.flags & Flag.ACK) !== 0) {
    if (frame.payload.length !== 0) throw new Http2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ack with a payload');
    return [];
  }
  if (frame.payload.length % 6 !== 0) throw new Http2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `SETTINGS payload of ${frame.payload.length} bytes, not a multiple of 6`);
  const settings: [number, number][] = [];
  for (let at = 0; at < frame.payload.length; at += 6) {
    const id = frame.payload.readUInt16BE(at);
    const value = frame.payload.readUInt32BE(at + 2);
    if (id === Setting.ENABLE_PUSH && value > 1) throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_ENABLE_PUSH of ${value}`);
    if (id === Setting.INITIAL_WINDOW_SIZE && value > MAX_WINDOW) throw new Http2ConnectionError(ErrorCode.FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE of ${value}`);
    if (id === Setting.MAX_FRAME_SIZE && (value < DEFAULT_MAX_FRAME_BYTES || value > MAX_ALLOWED_FRAME_BYTES)) {
      throw new Http2ConnectionError(ErrorCode.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE of ${value}`);
    }
    // Unknown settings are ignored (RFC 9113 6.5.2).
    settings.push([id, value]);
  }
  return settings;
}

/** A WINDOW_UPDATE's increment; 0 is an error the caller scopes (stream or connection). */
export function parseWindowUpdate(frame: Frame): number {
  if (frame.payload.length !== 4) throw new Http2ConnectionError(ErrorCode.FRAME_SIZE_ERROR, `WINDOW_UPDATE of ${frame.payload.length} bytes`);
  return frame.payload.readUInt32BE(0) & 0x7fffffff;
}

// ---- Writers ------------------------------------------------------------------

export function frameHeader(length: number, type: number, flags: number, streamId: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header.writeUIntBE(length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return header;
}

export function settingsFrame(settings: readonly (readonly [number, number])[]): Buffer {
  const payload = Buffer.allocUnsafe(settings.length * 6);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return Buffer.concat([frameHeader(payload.length, FrameType.SETTINGS, 0, 0), payload]);
}

export const SETTINGS_ACK = frameHeader(0, FrameType.SETTINGS, Flag.ACK, 0);

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const frame = frameHeader(4, FrameType.WINDOW_UPDATE, 0, streamId);
  return Buffer.concat([frame, uint32(increment)]);
}

export function rstStreamFrame(streamId: number, code: number): Buffer {
  return Buffer.concat([frameHeader(4, FrameType.RST_STREAM, 0, streamId), uint32(code)]);
}

export function pingAckFrame(opaque: Buffer): Buffer {
  return Buffer.concat([frameHeader(8, FrameType.PING, Flag.ACK, 0), opaque]);
}

export function goawayFrame(lastStreamId: number, code: number, debug = ''): Buffer {
  const text = Buffer.from(debug, 'utf8');
  return Buffer.concat([frameHeader(8 + text.length, FrameType.GOAWAY, 0, 0), uint32(lastStreamId), uint32(code), text]);
}

/** A header block as HEADERS plus as many CONTINUATIONs as the peer's frame size needs. */
export function headersFrames(streamId: number, block: Buffer, endStream: boolean, maxFrameBytes: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  do {
    const piece = block.subarray(at, at + maxFrameBytes);
    at += piece.length;
    const last = at >= block.length;
    const type = out.length === 0 ? FrameType.HEADERS : FrameType.CONTINUATION;
    const flags = (last ? Flag.END_HEADERS : 0) | (type === FrameType.HEADERS && endStream ? Flag.END_STREAM : 0);
    out.push(frameHeader(piece.length, type, flags, streamId), piece);
  } while (at < block.length);
  return out;
}

/** Data as DATA frames of at most the peer's frame size; END_STREAM on the last when asked. */
export function dataFrames(streamId: number, data: Buffer, endStream: boolean, maxFrameBytes: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  do {
    const piece = data.subarray(at, at + maxFrameBytes);
    at += piece.length;
    out.push(frameHeader(piece.length, FrameType.DATA, at >= data.length && endStream ? Flag.END_STREAM : 0, streamId), piece);
  } while (at < data.length);
  return out;
}

function uint32(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(value >>> 0, 0);
  return bytes;
}
