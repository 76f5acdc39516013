/** The public face of the Raft core. */
export { COMMIT_NOTICE_MS, Raft, bootstrapState, isLeaderMessage, joiningState } from './raft.ts';
export type { InitialState, PeerStatus, Proposal, RaftLogger, RaftOptions, RaftStatus, ReadState, Ready, SoftState } from './raft.ts';
export type { Message, MessageType } from './messages.ts';
export { NONE } from './types.ts';
export type { ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, NodeId, Role, SnapshotMeta } from './types.ts';
export { SeededRandom } from './random.ts';
export type { Random } from './random.ts';
export { decodeConfChange, encodeConfChange } from './conf-change.ts';
export {
  CompactionError,
  ConfChangeError,
  NotLeaderError,
  ProposalDroppedError,
  RaftError,
  RaftInvariantError,
  TransferError,
} from './errors.ts';
