/**
 * quorumkv.v1.Cluster on the client port: this node's status, the
 * membership, membership changes and leadership transfer (run by the leader;
 * a follower forwards them), snapshots and backups (of the node asked).
 */
import type * as grpc from '@grpc/grpc-js';
import { NotLeaderError } from '../raft/index.ts';
import type { NodeId, PeerStatus } from '../raft/index.ts';
import { InvalidArgumentError } from '../state/index.ts';
import type { NodeStorage } from '../storage/index.ts';
import { encodeMemberContext } from './address-book.ts';
import type { AddressBook } from './address-book.ts';
import { DeadlineError, NoLeaderError, TransferAbortedError } from './errors.ts';
import { FORWARDED_HEADER } from './forwarder.ts';
import type { ForwardedFor, Forwarder } from './forwarder.ts';
import { forwardedFor, guardService } from './auth.ts';
import type { Authenticator } from './auth.ts';
import { toStatus } from './grpc-status.ts';
import type { LeaderHint } from './grpc-status.ts';
import type { ProtoMessage } from './kv-commands.ts';
import { loadProtos } from '../proto/loader.ts';
import type { ClusterMethod, ImplementationOf } from '../proto/loader.ts';
import type { RaftNode } from './raft-node.ts';

export interface ClusterServiceOptions {
  readonly node: RaftNode;
  readonly storage: NodeStorage;
  readonly addresses: AddressBook;
  readonly forwarder: Forwarder;
  readonly clusterId: string;
  readonly clientAddr: string;
  readonly maxMemoryBytes: number;
  readonly requestTimeoutMs: number;
  /** Who may call what; null: authentication is off. */
  readonly auth: Authenticator | null;
  readonly leaderHint: () => LeaderHint;
}

const ROLE_NAMES = { follower: 'FOLLOWER', preCandidate: 'PRE_CANDIDATE', candidate: 'CANDIDATE', leader: 'LEADER' } as const;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const ADDRESS_PATTERN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/;

/** `caller`: who a follower forwards the call for (null when authentication is off). */
type Unary = (request: ProtoMessage, forwarded: boolean, timeoutMs: number, caller: ForwardedFor | null) => Promise<ProtoMessage>;

export class ClusterService {
  constructor(private readonly options: ClusterServiceOptions) {}

  implementation(): ImplementationOf<ClusterMethod> {
    const unary = (handler: Unary): grpc.UntypedHandleCall =>
      ((call: grpc.ServerUnaryCall<ProtoMessage, ProtoMessage>, callback: grpc.sendUnaryData<ProtoMessage>) => {
        const forwarded = call.metadata.get(FORWARDED_HEADER).length > 0;
        handler(call.request, forwarded, this.options.requestTimeoutMs, forwardedFor(call)).then(
          (response) => callback(null, response),
          (error: unknown) => callback(toStatus(error, this.options.leaderHint())),
        );
      }) as grpc.UntypedHandleCall;
    const handlers: ImplementationOf<ClusterMethod> = {
      Status: unary(async () => this.status()),
      Members: unary(async (request, forwarded, timeoutMs, caller) => this.onLeader('Members', request, forwarded, timeoutMs, caller, async () => this.members())),
      AddMember: unary((request, forwarded, timeoutMs, caller) =>
        this.onLeader('AddMember', request, forwarded, timeoutMs, caller, () => this.addMember(request, timeoutMs)),
      ),
      RemoveMember: unary((request, forwarded, timeoutMs, caller) =>
        this.onLeader('RemoveMember', request, forwarded, timeoutMs, caller, () => this.change('remove', request, timeoutMs)),
      ),
      PromoteMember: unary((request, forwarded, timeoutMs, caller) =>
        this.onLeader('PromoteMember', request, forwarded, timeoutMs, caller, () => this.change('promote', request, timeoutMs)),
      ),
      TransferLeadership: unary((request, forwarded, timeoutMs, caller) =>
        this.onLeader('TransferLeadership', request, forwarded, timeoutMs, caller, () => this.transfer(request, timeoutMs)),
      ),
      Snapshot: unary(async () => {
        const file = await this.options.node.snapshotNow();
        return { index: file.index, term: file.term, size_bytes: file.sizeBytes };
      }),
      Backup: ((call: grpc.ServerWritableStream<ProtoMessage, ProtoMessage>) => void this.backup(call)) as grpc.UntypedHandleCall,
    };
    return guardService('Cluster', loadProtos().cluster, handlers, this.options.auth);
  }

  status(): ProtoMessage {
    const { node } = this.options;
    const s = node.status;
    const state = node.restoring ? null : node.state;
    const leaderHint = this.options.leaderHint();
    return {
      id: node.id,
      cluster_id: this.options.clusterId,
      role: ROLE_NAMES[s.role],
      term: s.term,
      leader_id: s.leader,
      commit_index: s.commit,
      // While the state is restored at start-up nothing is applied yet: 0 and empty, not another state's figures.
      applied_index: state?.lastAppliedIndex ?? 0,
      log_first_index: s.firstIndex,
      log_last_index: s.lastIndex,
      snapshot_index: s.snapshotIndex,
      keys: state === null ? 0 : state.keyCount(node.readTimeMs()),
      memory_used_bytes: state?.memoryUsed() ?? 0,
      memory_limit_bytes: this.options.maxMemoryBytes,
      state_digest: state?.digest() ?? '',
      client_address: this.options.clientAddr,
      leader_client_address: leaderHint.clientAddr,
    };
  }

  members(): ProtoMessage {
    const { node } = this.options;
    const status = node.status;
    const progress = new Map<NodeId, PeerStatus>(status.peers.map((p) => [p.id, p]));
    return { members: this.memberList(progress, status.lastIndex), leader_id: status.leader, answered_by: node.id };
  }

  private memberList(progress: ReadonlyMap<NodeId, PeerStatus>, lastIndex: number): ProtoMessage[] {
    const { node, addresses } = this.options;
    const conf = node.status.conf;
    const describe = (id: NodeId, kind: 'VOTER' | 'LEARNER'): ProtoMessage => {
      const known = addresses.get(id);
      const match = progress.get(id)?.match ?? 0;
      return {
        id,
        peer_address: known?.peerAddr ?? '',
        client_address: known?.clientAddr ?? '',
        kind,
        leader: id === node.leader,
        match_index: match,
        lag_entries: progress.has(id) ? Math.max(0, lastIndex - match) : 0,
      };
    };
    return [...conf.voters.map((id) => describe(id, 'VOTER')), ...conf.learners.map((id) => describe(id, 'LEARNER'))];
  }

  private async addMember(request: ProtoMessage, timeoutMs: number): Promise<ProtoMessage> {
    const id = this.memberId(request);
    const peerAddr = this.address(request, 'peer_address');
    const clientAddr = this.address(request, 'client_address');
    const index = await this.options.node.proposeConfChange({ type: 'addLearner', nodeId: id, context: encodeMemberContext({ peerAddr, clientAddr }) }, timeoutMs);
    return { index, members: this.members()['members'] };
  }

  private async change(type: 'remove' | 'promote', request: ProtoMessage, timeoutMs: number): Promise<ProtoMessage> {
    const id = this.memberId(request);
    const index = await this.options.node.proposeConfChange({ type, nodeId: id, context: '' }, timeoutMs);
    return { index, members: this.members()['members'] };
  }

  private async transfer(request: ProtoMessage, timeoutMs: number): Promise<ProtoMessage> {
    const id = this.memberId(request);
    const { node } = this.options;
    node.transferLeadership(id);
    if (id === node.id) return { leader_id: node.id, term: node.status.term };
    // The new leader is known once this node hears from it (or steps down).
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      const status = node.status;
      if (status.leader === id) return { leader_id: id, term: status.term };
      // Still leading and no longer handing over: the transfer ran out its election timeout (as etcd's MoveLeader, say so now).
      if (node.isLeader && node.transferTarget !== id) throw new TransferAbortedError(id, node.id);
    }
    throw new DeadlineError(timeoutMs);
  }

  private async backup(call: grpc.ServerWritableStream<ProtoMessage, ProtoMessage>): Promise<void> {
    try {
      const file = this.options.storage.latestSnapshot ?? (await this.options.node.snapshotNow());
      let offset = 0;
      for await (const chunk of this.options.storage.snapshotChunks(file)) {
        if (call.cancelled) return;
        const message = { offset, data: chunk, index: file.index, term: file.term, size_bytes: file.sizeBytes };
        offset += chunk.length;
        if (!call.write(message)) await new Promise((resolve) => call.once('drain', resolve));
      }
      call.end();
    } catch (error) {
      call.emit('error', toStatus(error, this.options.leaderHint()));
    }
  }

  /** Runs `local` on the leader; a follower forwards the call to it (one hop at most). */
  private async onLeader(
    method: ClusterMethod,
    request: ProtoMessage,
    forwarded: boolean,
    timeoutMs: number,
    caller: ForwardedFor | null,
    local: () => Promise<ProtoMessage>,
  ): Promise<ProtoMessage> {
    const { node } = this.options;
    if (node.isLeader) return local();
    if (forwarded) throw new NotLeaderError(node.leader);
    const hint = this.options.leaderHint();
    if (hint.id === '') throw new NoLeaderError();
    if (hint.clientAddr === '') throw new NotLeaderError(hint.id);
    return this.options.forwarder.call(hint.clientAddr, method, request, timeoutMs, caller);
  }

  private memberId(request: ProtoMessage): string {
    const id = request['id'];
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) {
      throw new InvalidArgumentError(`member id '${String(id)}' must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`);
    }
    return id;
  }

  private address(request: ProtoMessage, field: string): string {
    const value = request[field];
    if (typeof value !== 'string' || !ADDRESS_PATTERN.test(value)) throw new InvalidArgumentError(`${field} '${String(value)}' must be HOST:PORT`);
    return value;
  }
}
