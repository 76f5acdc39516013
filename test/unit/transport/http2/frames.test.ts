/**
 * HTTP/2 framing: the reader on split and joined input and on bad frames,
 * and both directions against node:http2's client (nghttp2): its frames read
 * back as it sent them, and ours are a response it accepts.
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeHeaderBlock, HpackDecoder } from '../../../../src/transport/http2/hpack.ts';
import {
  CLIENT_PREFACE,
  ErrorCode,
  Flag,
  FrameReader,
  FrameType,
  Http2ConnectionError,
  SETTINGS_ACK,
  Setting,
  dataFrames,
  frameHeader,
  headersFrames,
  parseSettings,
  parseWindowUpdate,
  payloadOf,
  settingsFrame,
  windowUpdateFrame,
} from '../../../../src/transport/http2/frames.ts';
import type { Frame } from '../../../../src/transport/http2/frames.ts';

const frame = (type: number, flags: number, streamId: number, payload: Buffer): Buffer => Buffer.concat([frameHeader(payload.length, type, flags, streamId), payload]);

describe('FrameReader', () => {
  it('reads frames split at every byte, and several in one chunk', () => {
    const bytes = Buffer.concat([frame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from('hello')), frame(FrameType.PING, 0, 0, Buffer.alloc(8, 7)), windowUpdateFrame(3, 1000)]);
    const whole = new FrameReader().push(bytes);
    const reader = new FrameReader();
    const split: Frame[] = [];
    for (let i = 0; i < bytes.length; i++) split.push(...reader.push(bytes.subarray(i, i + 1)));
    for (const frames of [whole, split]) {
      expect(frames.map((f) => [f.type, f.flags, f.streamId, f.payload.toString('hex')])).toEqual([
        [FrameType.DATA, Flag.END_STREAM, 1, Buffer.from('hello').toString('hex')],
        [FrameType.PING, 0, 0, '0707070707070707'],
        [FrameType.WINDOW_UPDATE, 0, 3, '000003e8'],
      ]);
    }
    expect(parseWindowUpdate(whole[2] as Frame)).toBe(1000);
  });

  it('refuses a frame over the allowed size from its header alone, and ignores the reserved bit', () => {
    expect(() => new FrameReader().push(frameHeader(16_385, FrameType.DATA, 0, 1))).toThrow(Http2ConnectionError);
    expect(new FrameReader(20_000).push(frame(FrameType.DATA, 0, 1, Buffer.alloc(16_385)))).toHaveLength(1);
    const reserved = frameHeader(0, FrameType.SETTINGS, Flag.ACK, 0);
    reserved[5] = 0x80;
    expect(new FrameReader().push(reserved)[0]?.streamId).toBe(0);
  });

  it('strips padding and priority fields, and refuses padding as long as the payload', () => {
    const padded = new FrameReader().push(frame(FrameType.DATA, Flag.PADDED, 1, Buffer.from([3, 0x61, 0x62, 0, 0, 0])))[0] as Frame;
    expect(payloadOf(padded).toString()).toBe('ab');
    const headers = new FrameReader().push(frame(FrameType.HEADERS, Flag.PADDED | Flag.PRIORITY, 1, Buffer.from([1, 0, 0, 0, 3, 16, 0x82, 0])))[0] as Frame;
    expect(payloadOf(headers)).toEqual(Buffer.from([0x82]));
    const bad = new FrameReader().push(frame(FrameType.DATA, Flag.PADDED, 1, Buffer.from([2, 0])))[0] as Frame;
    expect(() => payloadOf(bad)).toThrow(/padding/);
  });

  it('checks SETTINGS: stream 0, whole entries, an empty ack, and the bounded values', () => {
    const read = (bytes: Buffer): Frame => new FrameReader().push(bytes)[0] as Frame;
    expect(parseSettings(read(settingsFrame([[Setting.MAX_CONCURRENT_STREAMS, 100], [0x99, 5]])))).toEqual([
      [Setting.MAX_CONCURRENT_STREAMS, 100],
      [0x99, 5],
    ]);
    expect(parseSettings(read(SETTINGS_ACK))).toEqual([]);
    const codeOf = (bytes: Buffer): number => {
      try {
        parseSettings(read(bytes));
      } catch (error) {
        return (error as Http2ConnectionError).code;
      }
      return -1;
    };
    expect(codeOf(frame(FrameType.SETTINGS, 0, 1, Buffer.alloc(0)))).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(codeOf(frame(FrameType.SETTINGS, 0, 0, Buffer.alloc(5)))).toBe(ErrorCode.FRAME_SIZE_ERROR);
    expect(codeOf(frame(FrameType.SETTINGS, Flag.ACK, 0, Buffer.alloc(6)))).toBe(ErrorCode.FRAME_SIZE_ERROR);
    expect(codeOf(settingsFrame([[Setting.ENABLE_PUSH, 2]]))).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(codeOf(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 2 ** 31]]))).toBe(ErrorCode.FLOW_CONTROL_ERROR);
    expect(codeOf(settingsFrame([[Setting.MAX_FRAME_SIZE, 16_383]]))).toBe(ErrorCode.PROTOCOL_ERROR);
  });

  it('splits a header block into HEADERS and CONTINUATIONs, and data into DATA frames, at the frame size', () => {
    const frames = new FrameReader().push(Buffer.concat([...headersFrames(5, Buffer.alloc(40, 1), true, 16), ...dataFrames(5, Buffer.alloc(33, 2), true, 16)]));
    expect(frames.map((f) => [f.type, f.flags, f.payload.length])).toEqual([
      [FrameType.HEADERS, Flag.END_STREAM, 16],
      [FrameType.CONTINUATION, 0, 16],
      [FrameType.CONTINUATION, Flag.END_HEADERS, 8],
      [FrameType.DATA, 0, 16],
      [FrameType.DATA, 0, 16],
      [FrameType.DATA, Flag.END_STREAM, 1],
    ]);
    expect(new FrameReader().push(Buffer.concat(dataFrames(1, Buffer.alloc(0), true, 16)))).toMatchObject([{ type: FrameType.DATA, flags: Flag.END_STREAM }]);
  });
});

describe('frames against node:http2 (nghttp2)', () => {
  const cleanups: (() => void)[] = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  it("reads the client's frames, and answers with a response it accepts (a header block over one frame, data, trailers)", async () => {
    const seen: Frame[] = [];
    const server = net.createServer((socket) => {
      const reader = new FrameReader();
      const decoder = new HpackDecoder();
      let prefaceLeft = CLIENT_PREFACE.length;
      socket.write(settingsFrame([[Setting.MAX_CONCURRENT_STREAMS, 10]]));
      socket.on('data', (chunk: Buffer) => {
        if (prefaceLeft > 0) {
          const preface = chunk.subarray(0, prefaceLeft);
          expect(CLIENT_PREFACE.subarray(CLIENT_PREFACE.length - prefaceLeft, CLIENT_PREFACE.length - prefaceLeft + preface.length)).toEqual(preface);
          prefaceLeft -= preface.length;
          chunk = chunk.subarray(preface.length);
        }
        for (const f of reader.push(chunk)) {
          seen.push(f);
          if (f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0) socket.write(SETTINGS_ACK);
          if (f.type === FrameType.HEADERS) expect(decoder.decode(payloadOf(f))).toContainEqual([':path', '/echo']);
          if (f.type === FrameType.DATA && (f.flags & Flag.END_STREAM) !== 0) {
            // A 20 KB header value makes the block span HEADERS and CONTINUATION frames.
            const headers = encodeHeaderBlock([
              [':status', '200'],
              ['x-big', 'b'.repeat(20_000)],
            ]);
            const trailers = encodeHeaderBlock([['grpc-status', '0']]);
            socket.write(Buffer.concat([...headersFrames(f.streamId, headers, false, 16_384), ...dataFrames(f.streamId, Buffer.alloc(40_000, 0x7a), false, 16_384), ...headersFrames(f.streamId, trailers, true, 16_384)]));
          }
        }
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const session = http2.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
    cleanups.push(() => {
      session.destroy();
      server.close();
    });
    const stream = session.request({ ':method': 'POST', ':path': '/echo' });
    const response = new Promise<{ status: unknown; big: number; body: number; trailers: unknown }>((resolve, reject) => {
      let headers: http2.IncomingHttpHeaders = {};
      let body = 0;
      stream.on('response', (h) => (headers = h));
      stream.on('data', (chunk: Buffer) => (body += chunk.length));
      stream.on('trailers', (trailers) => resolve({ status: headers[':status'], big: String(headers['x-big']).length, body, trailers: trailers['grpc-status'] }));
      stream.on('error', reject);
    });
    stream.end(Buffer.from('ping'));
    expect(await response).toEqual({ status: 200, big: 20_000, body: 40_000, trailers: '0' });
    const types = seen.map((f) => f.type);
    expect(types).toContain(FrameType.SETTINGS);
    expect(types).toContain(FrameType.HEADERS);
    expect(seen.find((f) => f.type === FrameType.DATA)?.payload.toString()).toBe('ping');
  });
});
