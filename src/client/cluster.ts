/** The Cluster service's answers as the client returns them (camelCase, lower-case enum names). */
import { plainBytes } from './values.ts';
import type { WireBackupChunk, WireMember, WireMembershipChange, WireStatus } from './wire.ts';

export type Role = 'follower' | 'pre-candidate' | 'candidate' | 'leader';
export type MemberKind = 'voter' | 'learner';

export interface NodeStatus {
  readonly id: string;
  readonly clusterId: string;
  readonly role: Role;
  readonly term: number;
  /** Empty when this node knows no leader. */
  readonly leaderId: string;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly logFirstIndex: number;
  readonly logLastIndex: number;
  readonly snapshotIndex: number;
  readonly keys: number;
  readonly memoryUsedBytes: number;
  /** 0 when unlimited. */
  readonly memoryLimitBytes: number;
  /** The digest of the whole state at appliedIndex (hex). */
  readonly stateDigest: string;
  readonly clientAddress: string;
  /** Empty when unknown. */
  readonly leaderClientAddress: string;
}

export interface Member {
  readonly id: string;
  readonly peerAddress: string;
  readonly clientAddress: string;
  readonly kind: MemberKind;
  readonly leader: boolean;
  /** Known only when the answering node leads; else 0. */
  readonly matchIndex: number;
  readonly lagEntries: number;
}

export interface Membership {
  readonly members: Member[];
  /** Empty when the answering node knows no leader. */
  readonly leaderId: string;
  readonly answeredBy: string;
}

export interface MembershipChange {
  /** The log index of the change. */
  readonly index: number;
  readonly members: Member[];
}

export interface LeadershipTransfer {
  readonly leaderId: string;
  readonly term: number;
}

export interface SnapshotInfo {
  readonly index: number;
  readonly term: number;
  readonly sizeBytes: number;
}

/** One piece of a backup; concatenated in offset order they are the snapshot file (a SQLite database). */
export interface BackupChunk {
  readonly offset: number;
  readonly data: Uint8Array;
  /** The log index the snapshot covers. */
  readonly index: number;
  readonly term: number;
  /** The whole file's size. */
  readonly sizeBytes: number;
}

export function toStatus(w: WireStatus): NodeStatus {
  return {
    id: w.id,
    clusterId: w.cluster_id,
    role: w.role.toLowerCase().replace('_', '-') as Role,
    term: w.term,
    leaderId: w.leader_id,
    commitIndex: w.commit_index,
    appliedIndex: w.applied_index,
    logFirstIndex: w.log_first_index,
    logLastIndex: w.log_last_index,
    snapshotIndex: w.snapshot_index,
    keys: w.keys,
    memoryUsedBytes: w.memory_used_bytes,
    memoryLimitBytes: w.memory_limit_bytes,
    stateDigest: w.state_digest,
    clientAddress: w.client_address,
    leaderClientAddress: w.leader_client_address,
  };
}

export function toMember(w: WireMember): Member {
  return {
    id: w.id,
    peerAddress: w.peer_address,
    clientAddress: w.client_address,
    kind: w.kind === 'LEARNER' ? 'learner' : 'voter',
    leader: w.leader,
    matchIndex: w.match_index,
    lagEntries: w.lag_entries,
  };
}

export function toMembershipChange(w: WireMembershipChange): MembershipChange {
  return { index: w.index, members: w.members.map(toMember) };
}

export function toBackupChunk(w: WireBackupChunk): BackupChunk {
  return { offset: w.offset, data: plainBytes(w.data), index: w.index, term: w.term, sizeBytes: w.size_bytes };
}
