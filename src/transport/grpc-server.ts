/**
 * What the client and peer gRPC servers share: channelz off, and a shutdown
 * that works with it off.
 *
 * Channelz costs every call a few event listeners and counters (with it on, a
 * no-op grpc-js server answered 10–30 % fewer calls per CPU second here), and
 * nothing serves it. But grpc-js 1.14's forceShutdown() only destroys the
 * connections channelz tracks, so with channelz off closeGrpcServer() drains
 * the bound port instead, which closes and then destroys every connection.
 */
import type * as grpc from '@grpc/grpc-js';

export const GRPC_SERVER_DEFAULTS: grpc.ServerOptions = { 'grpc.enable_channelz': 0 };

/**
 * Stops accepting, lets calls in flight finish for `graceMs`, then cuts the
 * connections left. `address` is what bindAsync was given, `port` what it bound.
 */
export function closeGrpcServer(server: grpc.Server, address: string, port: number, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    // grpc-js keys a port bound as :0 by the port it got.
    server.drain(address.replace(/:\d+$/, `:${port}`), graceMs);
    const force = setTimeout(() => server.forceShutdown(), graceMs + 1000);
    force.unref();
    server.tryShutdown(() => {
      clearTimeout(force);
      resolve();
    });
  });
}
