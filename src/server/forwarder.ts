/**
 * A follower's way to the leader for Cluster calls (membership, transfer;
 * rare): it replays the client's call on the leader's client port, with the
 * caller's remaining deadline, and hands back whatever the leader answered
 * (result or status) unchanged. KV calls, the many, go in batches on the peer
 * connection instead (forward-client.ts). The headers below mark a forwarded
 * call either way.
 */
import * as grpc from '@grpc/grpc-js';
import type { Protos } from '../proto/loader.ts';

/** Set on a forwarded call, so that a node that is not the leader either answers UNAVAILABLE instead of forwarding again. */
export const FORWARDED_HEADER = 'quorumkv-forwarded';

/** On a forwarded call, the user the follower authenticated; the leader believes it only from a member's verified node certificate. */
export const FORWARDED_USER_HEADER = 'quorumkv-forwarded-user';

/** Who a forwarded call is made for, when authentication is on. */
export interface ForwardedFor {
  readonly user: string;
  /** The caller's own authorization header, so that a leader that cannot verify this node (no node certificate) authenticates the caller itself. */
  readonly authorization: string | null;
}

type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: unknown) => void) => void;

export class Forwarder {
  private readonly clients = new Map<string, grpc.Client>();

  constructor(
    private readonly protos: Protos,
    private readonly credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
  ) {}

  call(address: string, method: string, request: unknown, timeoutMs: number, forwardedFor: ForwardedFor | null = null): Promise<Record<string, unknown>> {
    const client = this.client(address);
    const metadata = new grpc.Metadata();
    metadata.set(FORWARDED_HEADER, '1');
    if (forwardedFor !== null) {
      metadata.set(FORWARDED_USER_HEADER, forwardedFor.user);
      if (forwardedFor.authorization !== null) metadata.set('authorization', forwardedFor.authorization);
    }
    const invoke = (client as unknown as Record<string, UnaryMethod>)[method];
    if (invoke === undefined) return Promise.reject(new Error(`Cluster has no method ${method}`));
    return new Promise((resolve, reject) => {
      invoke.call(client, request, metadata, { deadline: Date.now() + timeoutMs }, (error, response) => {
        if (error !== null) reject(error);
        else resolve(response as Record<string, unknown>);
      });
    });
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  private client(address: string): grpc.Client {
    let client = this.clients.get(address);
    if (client === undefined) {
      client = new this.protos.clients.cluster(address, this.credentials);
      this.clients.set(address, client);
    }
    return client;
  }
}
