import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultProxy } from './proxy.ts';

/** An echo server on a free loopback port. */
async function echoServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  const port = await new Promise<number>((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
  );
  return { server, port };
}

/** Connects, sends `text`, and resolves with what came back within `waitMs` and whether the connection was closed. */
async function roundTrip(port: number, text: string, waitMs = 300): Promise<{ echoed: string; closed: boolean; ms: number }> {
  const began = performance.now();
  const socket: Socket = connect({ host: '127.0.0.1', port });
  let echoed = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => (echoed += chunk.toString()));
  socket.on('error', () => {});
  socket.on('close', () => (closed = true));
  socket.write(text);
  const deadline = performance.now() + waitMs;
  while (performance.now() < deadline && echoed.length < text.length && !closed) await new Promise((r) => setTimeout(r, 5));
  const ms = performance.now() - began;
  socket.destroy();
  return { echoed, closed, ms };
}

let proxy: FaultProxy | null = null;
let servers: Server[] = [];

afterEach(async () => {
  await proxy?.close();
  proxy = null;
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  servers = [];
});

describe('fault proxy', () => {
  it('forwards, and faults each direction of a pair on its own', async () => {
    const { server, port } = await echoServer();
    servers.push(server);
    proxy = new FaultProxy(() => 0.5);
    const ab = await proxy.addLink('a', 'b', port);
    const ba = await proxy.addLink('b', 'a', port);
    expect((await roundTrip(ab, 'hello')).echoed).toBe('hello');

    proxy.set('a', 'b', { mode: 'blackhole' });
    const blackholed = await roundTrip(ab, 'lost');
    expect(blackholed).toMatchObject({ echoed: '', closed: false });
    expect((await roundTrip(ba, 'other way')).echoed).toBe('other way');

    proxy.set('a', 'b', { mode: 'reset' });
    expect((await roundTrip(ab, 'refused')).closed).toBe(true);

    proxy.set('a', 'b', { mode: 'up' });
    expect((await roundTrip(ab, 'back')).echoed).toBe('back');
  });

  it('resets connections that were blackholed when the link heals', async () => {
    const { server, port } = await echoServer();
    servers.push(server);
    proxy = new FaultProxy(() => 0.5);
    const ab = await proxy.addLink('a', 'b', port);
    const socket = connect({ host: '127.0.0.1', port: ab });
    socket.on('error', () => {});
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    await new Promise((resolve) => socket.once('connect', resolve));
    proxy.set('a', 'b', { mode: 'blackhole' });
    socket.write('into the void');
    proxy.set('a', 'b', { mode: 'up' });
    await closed;
  });

  it('delays chunks in order, and cuts connections with the given probability', async () => {
    const { server, port } = await echoServer();
    servers.push(server);
    proxy = new FaultProxy(() => 0);
    const ab = await proxy.addLink('a', 'b', port);
    proxy.set('a', 'b', { delayMs: 100 });
    const delayed = await roundTrip(ab, 'slow', 1000);
    expect(delayed.echoed).toBe('slow');
    // There and back: the delay applies to both directions of the connection.
    expect(delayed.ms).toBeGreaterThanOrEqual(190);

    proxy.set('a', 'b', { delayMs: 0, cutProbability: 1 });
    expect(await roundTrip(ab, 'cut')).toMatchObject({ echoed: '', closed: true });
  });
});
