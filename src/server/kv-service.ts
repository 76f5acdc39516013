/**
 * quorumkv.v1.KV on the client port. Any node takes any request: the leader
 * proposes writes and confirms linearizable reads with ReadIndex; a follower
 * answers serializable reads itself and forwards the rest to the leader.
 */
import * as grpc from '@grpc/grpc-js';
import { NotLeaderError } from '../raft/index.ts';
import type { Result } from '../state/index.ts';
import { InvalidArgumentError } from '../state/index.ts';
import type { AddressBook } from './address-book.ts';
import { forwardedFor, guardService } from './auth.ts';
import type { Authenticator } from './auth.ts';
import { NoLeaderError } from './errors.ts';
import { FORWARDED_HEADER } from './forwarder.ts';
import type { ForwardedFor } from './forwarder.ts';
import type { ForwardClient } from './forward-client.ts';
import { statusError, toStatus } from './grpc-status.ts';
import type { LeaderHint } from './grpc-status.ts';
import { checkAnswerSize, decodeRequest, encodeResponse, encodeTxnResponse } from './kv-commands.ts';
import type { DecodedRequest, ProtoMessage, RequestLimits } from './kv-commands.ts';
import type { Metrics } from './metrics.ts';
import { KV_METHODS, loadProtos } from '../proto/loader.ts';
import type { ImplementationOf, KvMethod } from '../proto/loader.ts';
import type { RaftNode } from './raft-node.ts';
import type { WatchEvent, WatchHub } from './watch-hub.ts';

export interface KvServiceOptions {
  readonly node: RaftNode;
  readonly addresses: AddressBook;
  /** Takes KV calls to the leader (forward-client.ts). */
  readonly forwardClient: ForwardClient;
  readonly watchHub: WatchHub;
  readonly limits: RequestLimits;
  readonly requestTimeoutMs: number;
  readonly metrics: Metrics;
  /** Most bytes a Watch stream may have buffered before the watcher counts as fallen behind. */
  readonly maxWatchBufferBytes?: number;
  /** Watch streams one client connection may hold open (--max-watches-per-connection). */
  readonly maxWatchesPerConnection: number;
  /** Who may call what; null: authentication is off. */
  readonly auth: Authenticator | null;
}

export class KvService {
  /** Open Watch streams per client connection (grpc-js names a connection by its peer address). */
  private readonly watchesByPeer = new Map<string, number>();

  constructor(private readonly options: KvServiceOptions) {}

  implementation(): ImplementationOf<KvMethod> {
    const impl: Partial<ImplementationOf<KvMethod>> = {};
    for (const method of KV_METHODS) {
      if (method === 'Watch') continue;
      impl[method] = ((call: grpc.ServerUnaryCall<ProtoMessage, ProtoMessage>, callback: grpc.sendUnaryData<ProtoMessage>) => {
        const forwarded = call.metadata.get(FORWARDED_HEADER).length > 0;
        const began = performance.now();
        this.execute(method, call.request, forwarded, this.timeoutFor(call), forwardedFor(call)).then(
          (response) => {
            this.options.metrics.observeRequest(method, 'OK', performance.now() - began);
            callback(null, response);
          },
          (error: unknown) => {
            const status = toStatus(error, this.leaderHint());
            this.options.metrics.observeRequest(method, String(status.code), performance.now() - began);
            callback(status);
          },
        );
      }) as grpc.UntypedHandleCall;
    }
    impl.Watch = ((call: grpc.ServerWritableStream<ProtoMessage, ProtoMessage>) => this.watch(call)) as grpc.UntypedHandleCall;
    return guardService('KV', loadProtos().kv, impl as ImplementationOf<KvMethod>, this.options.auth);
  }

  /** Runs one request here or at the leader; resolves with the response message. */
  async execute(method: KvMethod, request: ProtoMessage, forwarded: boolean, timeoutMs: number, caller: ForwardedFor | null = null): Promise<ProtoMessage> {
    const decoded = decodeRequest(method, request, this.options.limits);
    const { node } = this.options;
    if (!decoded.write && decoded.consistency === 'SERIALIZABLE') {
      // Just restarted: the local state is being rebuilt from the snapshot; the read waits for it, as long as its deadline allows.
      if (node.restoring) await node.waitRestored(timeoutMs);
      return this.respond(method, decoded, node.state.read(decoded.command, node.readTimeMs()));
    }
    if (!node.isLeader) return this.forward(method, request, forwarded, timeoutMs, caller);
    try {
      if (decoded.write) return this.respond(method, decoded, await node.propose(decoded.command, decoded.session, timeoutMs));
      const index = await node.readIndex(timeoutMs);
      await node.waitApplied(index, timeoutMs);
      return this.respond(method, decoded, node.state.read(decoded.command, node.linearizableReadTimeMs(), { touch: true }));
    } catch (error) {
      // Lost leadership between the check and the proposal: the new leader can take it.
      if (error instanceof NotLeaderError && !forwarded) return this.forward(method, request, forwarded, timeoutMs, caller);
      throw error;
    }
  }

  private respond(method: KvMethod, decoded: DecodedRequest, result: Result): ProtoMessage {
    if (!decoded.write) checkAnswerSize(method, result, this.options.limits.maxKeysPerCall);
    return method === 'Txn' ? encodeTxnResponse(decoded.command, result) : encodeResponse(method, result);
  }

  private async forward(method: KvMethod, request: ProtoMessage, forwarded: boolean, timeoutMs: number, caller: ForwardedFor | null): Promise<ProtoMessage> {
    const { node } = this.options;
    // One hop at most: a forwarded request that finds no leader here goes back to the client as UNAVAILABLE.
    if (forwarded) throw new NotLeaderError(node.leader);
    const leader = node.leader;
    if (leader === '') throw new NoLeaderError();
    this.options.metrics.forwarded(method);
    const definition = loadProtos().kv[method];
    const response = await this.options.forwardClient.call(leader, definition.path, definition.requestSerialize(request), timeoutMs, caller);
    return definition.responseDeserialize(response) as ProtoMessage;
  }

  private watch(call: grpc.ServerWritableStream<ProtoMessage, ProtoMessage>): void {
    const request = call.request;
    const maxBuffered = this.options.maxWatchBufferBytes ?? 16 * 1024 * 1024;
    const releaseSlot = this.takeWatchSlot(call.getPeer());
    if (releaseSlot === null) {
      const limit = this.options.maxWatchesPerConnection;
      call.emit('error', statusError(grpc.status.RESOURCE_EXHAUSTED, `too many watches on this connection: the limit is ${limit} (--max-watches-per-connection); cancel one, or open another connection`));
      return;
    }
    let unsubscribe = (): void => {};
    let ended = false;
    const end = (error: Error | null): void => {
      if (ended) return;
      ended = true;
      releaseSlot();
      unsubscribe();
      if (error === null) call.end();
      else call.emit('error', toStatus(error, this.leaderHint()));
    };
    try {
      const key = typeof request['key'] === 'string' ? request['key'] : '';
      const prefix = request['prefix'] === true;
      if (key === '' && !prefix) throw new InvalidArgumentError('WatchRequest.key must not be empty (set prefix with an empty key to watch every key)');
      const fromIndex = typeof request['from_index'] === 'number' ? request['from_index'] : 0;
      if (!Number.isSafeInteger(fromIndex) || fromIndex < 0) throw new InvalidArgumentError('WatchRequest.from_index must be a non-negative integer');
      unsubscribe = this.options.watchHub.subscribe({ key, prefix }, fromIndex, {
        deliver: (event) => {
          if (ended) return true;
          call.write(toProtoEvent(event));
          return call.writableLength <= maxBuffered;
        },
        fail: (error) => end(error),
      });
    } catch (error) {
      end(error as Error);
      return;
    }
    call.on('cancelled', () => end(null));
    call.on('close', () => {
      releaseSlot();
      unsubscribe();
    });
  }

  /** Counts a watch against its connection; null when the connection is at its limit. The release runs once, however often it is called. */
  private takeWatchSlot(peer: string): (() => void) | null {
    const open = this.watchesByPeer.get(peer) ?? 0;
    if (open >= this.options.maxWatchesPerConnection) return null;
    this.watchesByPeer.set(peer, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.watchesByPeer.get(peer) ?? 1) - 1;
      if (left === 0) this.watchesByPeer.delete(peer);
      else this.watchesByPeer.set(peer, left);
    };
  }

  private timeoutFor(call: grpc.ServerUnaryCall<unknown, unknown>): number {
    const deadline = call.getDeadline();
    const ms = deadline instanceof Date ? deadline.getTime() - Date.now() : typeof deadline === 'number' && Number.isFinite(deadline) ? deadline - Date.now() : Infinity;
    return Math.max(1, Math.min(this.options.requestTimeoutMs, ms));
  }

  leaderHint(): LeaderHint {
    const id = this.options.node.leader;
    return { id, clientAddr: id === '' ? '' : (this.options.addresses.get(id)?.clientAddr ?? '') };
  }
}

function toProtoEvent(event: WatchEvent): ProtoMessage {
  return { index: event.index, type: event.type, key: event.key, value: event.value, value_type: event.valueType };
}
