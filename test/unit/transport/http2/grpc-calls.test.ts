/**
 * Server-streaming calls on a real ServerConnection whose client is
 * scripted frame by frame over an in-memory socket, so that windows, drains
 * and reads happen exactly when a test says: backpressure reaches the
 * handler, and a drain finishes only the write that waited for it.
 */
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CLIENT_PREFACE, Flag, FrameReader, FrameType, dataFrames, headersFrames, settingsFrame, windowUpdateFrame } from '../../../../src/transport/http2/frames.ts';
import type { Frame } from '../../../../src/transport/http2/frames.ts';
import { ServerStreamingCall } from '../../../../src/transport/http2/grpc-calls.ts';
import type { Route } from '../../../../src/transport/http2/grpc-calls.ts';
import { encodeHeaderBlock } from '../../../../src/transport/http2/hpack.ts';
import { ServerConnection } from '../../../../src/transport/http2/server-connection.ts';

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 10));

/** A connection with one server-streaming call open; `reading` false leaves what the server writes unread (a socket that never drains). */
async function streamingCall(settings: [number, number][], reading = true, connectionWindowIncrement = 0) {
  const written: Buffer[] = [];
  const pendingWrites: (() => void)[] = [];
  const socket = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      written.push(chunk);
      if (reading) callback();
      else pendingWrites.push(() => callback());
    },
    highWaterMark: 16 * 1024,
  });
  let call: ServerStreamingCall | null = null;
  const errors: string[] = [];
  const identity = (bytes: Buffer): Buffer => bytes;
  const route: Route = { path: '/t/Stream', kind: 'serverStream', handler: () => {}, serialize: identity as Route['serialize'], deserialize: identity };
  const connection = new ServerConnection(socket, (stream, fields) => {
    call = new ServerStreamingCall(stream, Object.fromEntries(fields), route, { maxReceiveBytes: -1, maxSendBytes: -1 });
    call.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
    call.start();
  });
  const request = encodeHeaderBlock([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', '/t/Stream'],
    ['content-type', 'application/grpc'],
  ]);
  socket.push(Buffer.concat([CLIENT_PREFACE, settingsFrame(settings), ...(connectionWindowIncrement > 0 ? [windowUpdateFrame(0, connectionWindowIncrement)] : []), ...headersFrames(1, request, false, 16_384), ...dataFrames(1, Buffer.alloc(5), true, 16_384)]));
  await tick();
  const frames = (): Frame[] => new FrameReader(1 << 24).push(Buffer.concat(written));
  return { socket, connection, call: call as unknown as ServerStreamingCall, errors, frames };
}

describe('server-streaming calls on our HTTP/2 connection', () => {
  it('a drain finishes only the write that waited for it: later drains with nothing waiting change nothing, and the status still goes out', async () => {
    const { socket, connection, call, errors, frames } = await streamingCall([]);
    const done: string[] = [];
    call.write(Buffer.alloc(200_000), () => done.push('first'));
    await tick();
    // The first write waits on the 65,535-byte windows; the client opens them.
    socket.push(Buffer.concat([windowUpdateFrame(0, 200_005 - 65_535), windowUpdateFrame(1, 200_005 - 65_535)]));
    await tick();
    expect(done).toEqual(['first']);
    // A small write that is partly blocked, then a drain with no write waiting.
    call.write(Buffer.alloc(10), () => done.push('second'));
    await tick();
    socket.push(Buffer.concat([windowUpdateFrame(0, 100), windowUpdateFrame(1, 100)]));
    await tick();
    call.end();
    await tick();
    expect(errors).toEqual([]);
    expect(done).toEqual(['first', 'second']);
    expect(frames().some((f) => f.type === FrameType.HEADERS && f.streamId === 1 && (f.flags & Flag.END_STREAM) !== 0)).toBe(true);
    expect(connection.openStreams).toBe(0);
  });

  it('a client with huge windows that stops reading: the handler sees backpressure instead of the server buffering without end', async () => {
    const { call } = await streamingCall([[0x4, 2 ** 31 - 1]], false, 2 ** 31 - 1 - 65_535);
    let accepted = 0;
    for (let i = 0; i < 64; i++) {
      if (!call.write(Buffer.alloc(1024 * 1024))) break;
      accepted++;
      await tick();
    }
    // The socket's unsent bytes stop DATA at a few MiB; the call's own buffer then fills.
    expect(accepted).toBeLessThan(32);
  });
});
