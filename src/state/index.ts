/**
 * The typed state machine's public entry point: import from here, not from
 * the modules behind it.
 */
export { StateMachine } from './state-machine.ts';
export type { ReadOptions, SnapshotChanges, SnapshotSource, SnapshotView, StateRestore, StateStats } from './state-machine.ts';
export { DEFAULT_STATE_CONFIG, resolveConfig } from './config.ts';
export type { EvictionPolicy, StateMachineConfig } from './config.ts';
export { decodeCommand, decodeEntry, encodeCommand, encodeEntry, FORMAT_V1, OPCODES } from './command-codec.ts';
export type { ClientSession, EntryPayload } from './command-codec.ts';
export { decodeResult, encodeResult, RESULT_FORMAT_V1 } from './result-codec.ts';
export { isReadOnly } from './commands.ts';
export type {
  ClearCommand,
  Command,
  Compare,
  CompareOp,
  DeleteCommand,
  EvictCommand,
  EvictTarget,
  ExistsCommand,
  ExpireCommand,
  ExpireSweepCommand,
  GetCommand,
  HDelCommand,
  HGetAllCommand,
  HGetCommand,
  HLenCommand,
  HSetCommand,
  KeysCommand,
  LIndexCommand,
  LLenCommand,
  LRangeCommand,
  LSetCommand,
  PopCommand,
  PushCommand,
  SetCommand,
  SetCondition,
  SizeCommand,
  TtlCommand,
  TxnCommand,
  TxnOpCommand,
  TypeCommand,
} from './commands.ts';
export type {
  AppliedResult,
  CountResult,
  ErrorResult,
  FieldsResult,
  KeysResult,
  OkResult,
  Result,
  SetResult,
  TtlResult,
  TxnResult,
  TypeResult,
  ValueResult,
  ValuesResult,
} from './results.ts';
export type { KeyRow, SessionRow, SnapshotMetaRow } from './rows.ts';
export type { ValueType } from './values.ts';
export {
  CodecError,
  ERROR_CODES,
  errorFromCode,
  InvalidArgumentError,
  OutOfRangeError,
  ResourceExhaustedError,
  StaleSequenceError,
  StateError,
  WrongTypeError,
} from './errors.ts';
export type { StateErrorCode } from './errors.ts';
export { DEFAULT_KEYS_LIMIT, MAX_KEYS_LIMIT } from './executor.ts';
export { MAX_PATTERN_LENGTH } from './glob.ts';
export { HASH_FIELD_OVERHEAD_BYTES, KEY_OVERHEAD_BYTES, LIST_ITEM_OVERHEAD_BYTES } from './memory.ts';
export { longLivedBuffers, LongLivedBuffers, MIN_ALLOWANCE_BYTES } from './long-lived-buffers.ts';
export { longLivedCopy } from './bytes.ts';
