/**
 * The nodes a client may talk to and one gRPC channel to each, opened on
 * first use. Tracks which endpoint answered last (tried first on the next
 * call) and learns leader addresses the nodes hint at, so writes go to the
 * leader without a forwarding hop.
 */
import * as grpc from '@grpc/grpc-js';

export class Endpoints {
  private readonly addresses: string[];
  private readonly clients = new Map<string, grpc.Client>();
  private current: string;
  private closed = false;

  constructor(
    addresses: readonly string[],
    private readonly credentials: grpc.ChannelCredentials,
    /** Channel options, and the interceptors every call goes through. */
    private readonly channelOptions: grpc.ClientOptions,
  ) {
    this.addresses = [...new Set(addresses.map((a) => a.trim()).filter((a) => a !== ''))];
    const first = this.addresses[0];
    if (first === undefined) throw new TypeError('QuorumClient needs at least one endpoint (HOST:PORT)');
    this.current = first;
  }

  /** Every endpoint known: the configured ones, then learned leaders. */
  get all(): readonly string[] {
    return this.addresses;
  }

  /** Where the next call starts: the endpoint that answered last. */
  get preferred(): string {
    return this.current;
  }

  /** An endpoint answered: start there next time. */
  succeeded(address: string): void {
    this.current = address;
  }

  /** A node named the leader: remember its address (it may be new) and start there next time. */
  learn(address: string): void {
    if (!this.addresses.includes(address)) this.addresses.push(address);
    this.current = address;
  }

  /** The endpoint after `address` in the ring. */
  after(address: string): string {
    const i = this.addresses.indexOf(address);
    return this.addresses[(i + 1) % this.addresses.length] ?? this.current;
  }

  /** The channel to an endpoint (both services share it). */
  client(address: string): grpc.Client {
    if (this.closed) throw new Error('QuorumClient is closed');
    let client = this.clients.get(address);
    if (client === undefined) {
      client = new grpc.Client(address, this.credentials, this.channelOptions);
      this.clients.set(address, client);
    }
    return client;
  }

  close(): void {
    this.closed = true;
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }
}
