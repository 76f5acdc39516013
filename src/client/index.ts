/**
 * The quorumkv TypeScript client: the one entry point for users (the qkv
 * CLI, tests, benchmarks). Everything else in src/client is internal.
 */
export { QuorumClient } from './client.ts';
export type {
  CallOptions,
  KeysOptions,
  NewMember,
  QuorumClientOptions,
  ReadOptions,
  ScanOptions,
  SetOptions,
  StatusOptions,
  TxnRequest,
  TxnResult,
} from './client.ts';
export type { BackupChunk, LeadershipTransfer, Member, MemberKind, Membership, MembershipChange, NodeStatus, Role, SnapshotInfo } from './cluster.ts';
export { LEADER_ADDR_METADATA, LEADER_ID_METADATA, QuorumError } from './errors.ts';
export type { LeaderHint, StatusName } from './errors.ts';
export type {
  Compare,
  CompareOp,
  Consistency,
  FieldsInput,
  KeysPage,
  Op,
  OpName,
  OpResult,
  OpResults,
  SetCondition,
  SetResult,
  ValueType,
} from './operations.ts';
export type { RetryPolicy } from './retry.ts';
export { tlsCredentials } from './tls.ts';
export type { ClientTls } from './tls.ts';
export { strictText, text, toBytes } from './values.ts';
export type { Value } from './values.ts';
export type { WatchEvent, WatchEventType, WatchOptions } from './watch.ts';
