/**
 * ServerConnection with real peers on 127.0.0.1: node:http2's client
 * (nghttp2) for what a conforming client does (many streams, flow control
 * both ways, cancels, GOAWAY), and raw frames for what a hostile one does
 * (a bad preface, too many streams, rapid resets, a CONTINUATION flood).
 */
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CLIENT_PREFACE, ErrorCode, Flag, FrameReader, FrameType, frameHeader, rstStreamFrame, settingsFrame, windowUpdateFrame } from '../../../../src/transport/http2/frames.ts';
import type { Frame } from '../../../../src/transport/http2/frames.ts';
import { encodeHeaderBlock } from '../../../../src/transport/http2/hpack.ts';
import { DEFAULT_LIMITS, ServerConnection } from '../../../../src/transport/http2/server-connection.ts';
import type { ConnectionLimits, ServerStream } from '../../../../src/transport/http2/server-connection.ts';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

type Handler = (stream: ServerStream, headers: Map<string, string>) => void;

/** An echo server unless told otherwise: answers each request with its path, its body's length, and trailers. */
const echo: Handler = (stream, headers) => {
  let bytes = 0;
  stream.onData = (chunk) => (bytes += chunk.length);
  stream.onEnd = () => {
    stream.respond([[':status', '200'], ['x-path', headers.get(':path') ?? '']]);
    stream.write(Buffer.from(String(bytes)));
    stream.end([['grpc-status', '0']]);
  };
};

async function serve(handler: Handler = echo, limits: Partial<ConnectionLimits> = {}): Promise<{ port: number; connections: ServerConnection[] }> {
  const connections: ServerConnection[] = [];
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    connections.push(new ServerConnection(socket, (stream, fields) => handler(stream, new Map(fields)), { ...DEFAULT_LIMITS, ...limits }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const connection of connections) connection.destroy();
    server.close();
  });
  return { port: (server.address() as net.AddressInfo).port, connections };
}

function client(port: number): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  cleanups.push(() => session.destroy());
  return session;
}

interface Answer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders;
}

function request(session: http2.ClientHttp2Session, path: string, body: Buffer = Buffer.alloc(0)): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (headers = h));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('error', reject);
    stream.on('close', () => (stream.rstCode === 0 ? resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks), trailers }) : reject(new Error(`reset ${stream.rstCode}`))));
    stream.end(body);
  });
}

describe('ServerConnection with node:http2 as the client', () => {
  it('answers many concurrent requests, each with its own headers, body and trailers', async () => {
    const { port } = await serve();
    const session = client(port);
    const answers = await Promise.all(Array.from({ length: 60 }, (_, i) => request(session, `/p/${i}`, Buffer.alloc(i * 100))));
    answers.forEach((answer, i) => {
      expect(answer).toMatchObject({ status: 200, headers: { 'x-path': `/p/${i}` }, trailers: { 'grpc-status': '0' } });
      expect(answer.body.toString()).toBe(String(i * 100));
    });
  });

  it('keeps to flow control both ways: a request larger than its stream window, an answer larger than the client\u2019s', async () => {
    const big: Handler = (stream) => {
      let bytes = 0;
      stream.onData = (chunk) => (bytes += chunk.length);
      stream.onEnd = () => {
        stream.respond([[':status', '200'], ['x-received', String(bytes)]]);
        const body = Buffer.alloc(3 * 1024 * 1024, 0x61);
        const write = (from: number): void => {
          for (let at = from; at < body.length; at += 256 * 1024) {
            if (!stream.write(body.subarray(at, at + 256 * 1024))) {
              stream.onDrain = () => write(at + 256 * 1024);
              return;
            }
          }
          stream.end([['grpc-status', '0']]);
        };
        write(0);
      };
    };
    const { port } = await serve(big, { streamWindowBytes: 256 * 1024, connectionWindowBytes: 512 * 1024 });
    const answer = await request(client(port), '/big', Buffer.alloc(2 * 1024 * 1024, 0x62));
    expect(answer.headers['x-received']).toBe(String(2 * 1024 * 1024));
    expect(answer.body.length).toBe(3 * 1024 * 1024);
    expect(answer.trailers['grpc-status']).toBe('0');
  });

  it('tells the handler when the client cancels, and answers the next request on the same connection', async () => {
    let aborted: number | null = null;
    const hold: Handler = (stream, headers) => {
      if (headers.get(':path') === '/hold') stream.onAbort = (code) => (aborted = code);
      else echo(stream, headers);
    };
    const { port } = await serve(hold);
    const session = client(port);
    const held = session.request({ ':method': 'POST', ':path': '/hold' });
    held.on('error', () => {});
    held.end();
    await new Promise((resolve) => setTimeout(resolve, 50));
    held.close(http2.constants.NGHTTP2_CANCEL);
    await expect.poll(() => aborted).toBe(ErrorCode.CANCEL);
    expect((await request(session, '/after')).headers['x-path']).toBe('/after');
  });

  it('goAway: the open request finishes, then the connection ends', async () => {
    let release: () => void = () => {};
    const slow: Handler = (stream) => {
      stream.onEnd = () => (release = () => stream.end([['grpc-status', '0']], Buffer.from('done')));
      stream.respond([[':status', '200']]);
    };
    const { port, connections } = await serve(slow);
    const session = client(port);
    const closed = new Promise<void>((resolve) => session.on('close', () => resolve()));
    const answer = request(session, '/slow');
    await expect.poll(() => connections.length).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    connections[0]?.goAway();
    release();
    expect((await answer).body.toString()).toBe('done');
    await closed;
  });

  it('a request header block over the limit: that stream is refused, the connection goes on', async () => {
    const { port } = await serve(echo, { maxHeaderListBytes: 4096 });
    const session = client(port);
    const refused = new Promise<number>((resolve) => {
      const stream = session.request({ ':method': 'POST', ':path': '/x', 'x-big': 'b'.repeat(5000) });
      stream.on('error', () => {});
      stream.on('close', () => resolve(stream.rstCode));
      stream.end();
    });
    expect(await refused).not.toBe(0);
    expect((await request(session, '/ok')).status).toBe(200);
  });
});

describe('ServerConnection against raw frames', () => {
  /** Connects, sends the preface, SETTINGS and `frames`; resolves with what came back once the server closes or after a moment. */
  async function exchange(port: number, frames: Buffer[], preface = CLIENT_PREFACE, settings: [number, number][] = [], then: Buffer[] = []): Promise<Frame[]> {
    const socket = net.connect(port, '127.0.0.1');
    cleanups.push(() => socket.destroy());
    const reader = new FrameReader(1 << 20);
    const got: Frame[] = [];
    socket.on('data', (chunk: Buffer) => got.push(...reader.push(chunk)));
    socket.on('error', () => {});
    socket.write(Buffer.concat([preface, settingsFrame(settings), ...frames]));
    const closed = new Promise((resolve) => socket.on('close', resolve));
    const moment = (): Promise<unknown> => Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 300))]);
    await moment();
    if (then.length > 0) {
      got.push({ type: -1, flags: 0, streamId: 0, payload: Buffer.alloc(0) }); // marks what came before `then`
      socket.write(Buffer.concat(then));
      await moment();
    }
    return got;
  }

  const goawayCode = (frames: Frame[]): number | undefined => {
    const goaway = frames.find((f) => f.type === FrameType.GOAWAY);
    return goaway?.payload.readUInt32BE(4);
  };
  const request = (id: number, end = true): Buffer => {
    const block = encodeHeaderBlock([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', '/x'],
    ]);
    return Buffer.concat([frameHeader(block.length, FrameType.HEADERS, Flag.END_HEADERS | (end ? Flag.END_STREAM : 0), id), block]);
  };

  it("sends no more than the client's stream window, and the rest once the window opens", async () => {
    const { port } = await serve((stream) => {
      stream.onEnd = () => {
        stream.respond([[':status', '200']]);
        stream.end([['grpc-status', '0']], Buffer.alloc(5000, 0x61));
      };
    });
    const frames = await exchange(port, [request(1)], CLIENT_PREFACE, [[0x4, 1000]], [windowUpdateFrame(1, 4000)]);
    const mark = frames.findIndex((f) => f.type === -1);
    const dataBytes = (list: Frame[]): number => list.filter((f) => f.type === FrameType.DATA).reduce((sum, f) => sum + f.payload.length, 0);
    expect(dataBytes(frames.slice(0, mark))).toBe(1000);
    expect(dataBytes(frames.slice(mark))).toBe(4000);
    expect(frames.slice(mark).some((f) => f.type === FrameType.HEADERS && (f.flags & Flag.END_STREAM) !== 0)).toBe(true);
  });

  it('a wrong preface: GOAWAY PROTOCOL_ERROR', async () => {
    const { port } = await serve();
    expect(goawayCode(await exchange(port, [], Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')))).toBe(ErrorCode.PROTOCOL_ERROR);
  });

  it('streams past SETTINGS_MAX_CONCURRENT_STREAMS: REFUSED_STREAM for the extra ones', async () => {
    const { port } = await serve(() => {}, { maxConcurrentStreams: 2 });
    const frames = await exchange(port, [request(1), request(3), request(5)]);
    const resets = frames.filter((f) => f.type === FrameType.RST_STREAM).map((f) => [f.streamId, f.payload.readUInt32BE(0)]);
    expect(resets).toEqual([[5, ErrorCode.REFUSED_STREAM]]);
  });

  it('rapid resets: past the limit per second, GOAWAY ENHANCE_YOUR_CALM', async () => {
    const { port } = await serve(() => {}, { maxResetsPerSecond: 20 });
    const frames: Buffer[] = [];
    for (let i = 0; i < 30; i++) frames.push(request(2 * i + 1, false), rstStreamFrame(2 * i + 1, ErrorCode.CANCEL));
    expect(goawayCode(await exchange(port, frames))).toBe(ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('a CONTINUATION flood: GOAWAY ENHANCE_YOUR_CALM before the block grows without end', async () => {
    const { port } = await serve(echo, { maxHeaderListBytes: 1024 });
    const piece = Buffer.alloc(1000, 0);
    const frames = [Buffer.concat([frameHeader(piece.length, FrameType.HEADERS, 0, 1), piece])];
    for (let i = 0; i < 10; i++) frames.push(Buffer.concat([frameHeader(piece.length, FrameType.CONTINUATION, 0, 1), piece]));
    expect(goawayCode(await exchange(port, frames))).toBe(ErrorCode.ENHANCE_YOUR_CALM);
  });

  it('a frame inside a header block, and DATA on a stream never opened: GOAWAY PROTOCOL_ERROR', async () => {
    const { port } = await serve();
    const open = Buffer.concat([frameHeader(1, FrameType.HEADERS, 0, 1), Buffer.from([0x82])]);
    expect(goawayCode(await exchange(port, [open, frameHeader(0, FrameType.PING, 0, 0)]))).toBe(ErrorCode.PROTOCOL_ERROR);
    expect(goawayCode(await exchange(port, [Buffer.concat([frameHeader(1, FrameType.DATA, 0, 7), Buffer.from([1])])]))).toBe(ErrorCode.PROTOCOL_ERROR);
  });
});
