/**
 * Raft messages <-> raft.proto bytes (MessageBatch, SnapshotChunk,
 * SnapshotAck). The one place that knows both shapes.
 *
 * Field numbers below are raft.proto's; keep the two in step (the codec test
 * decodes this module's output with protobufjs reading the .proto, and the
 * other way round).
 *
 * Inside a batch, a message's from/to are left out when they equal the
 * batch's (raft.proto documents that empty means "the batch's"), since every
 * message of a batch has the same: about a third of a heartbeat's bytes.
 */
import type { Entry, EntryType, Message, NodeId, SnapshotMeta } from '../raft/index.ts';
import type { InstallSnapshot } from '../raft/messages.ts';
import { MalformedMessageError } from './errors.ts';
import {
  EMPTY_BYTES,
  Reader,
  WIRE_LENGTH_DELIMITED,
  WIRE_VARINT,
  Writer,
  lengthFieldSize,
  uintFieldSize,
  utf8Length,
  varintSize,
} from './wire.ts';

// MessageBatch
const BATCH_CLUSTER_ID = 1;
const BATCH_FROM = 2;
const BATCH_TO = 3;
const BATCH_MESSAGES = 4;
// Message envelope
const MSG_FROM = 1;
const MSG_TO = 2;
const MSG_TERM = 3;
// Message.body: one field per message type.
const BODY_FIELD = {
  preVote: 4,
  vote: 5,
  preVoteResp: 6,
  voteResp: 7,
  append: 8,
  appendResp: 9,
  heartbeat: 10,
  heartbeatResp: 11,
  snapshot: 12,
  timeoutNow: 13,
} as const satisfies Record<Message['type'], number>;
const BODY_TYPE: readonly (Message['type'] | undefined)[] = (() => {
  const types: (Message['type'] | undefined)[] = [];
  for (const [type, field] of Object.entries(BODY_FIELD)) types[field] = type as Message['type'];
  return types;
})();
// VoteRequest
const VOTE_LAST_LOG_INDEX = 1;
const VOTE_LAST_LOG_TERM = 2;
const VOTE_LEADER_TRANSFER = 3;
// VoteResponse
const VOTE_RESP_REJECT = 1;
// AppendRequest
const APPEND_PREV_INDEX = 1;
const APPEND_PREV_TERM = 2;
const APPEND_ENTRIES = 3;
const APPEND_COMMIT = 4;
// AppendResponse
const APPEND_RESP_REJECT = 1;
const APPEND_RESP_INDEX = 2;
const APPEND_RESP_HINT_INDEX = 3;
const APPEND_RESP_HINT_TERM = 4;
// Heartbeat / HeartbeatResponse
const HEARTBEAT_COMMIT = 1;
const HEARTBEAT_READ_ROUND = 2;
const HEARTBEAT_RESP_READ_ROUND = 1;
const TIMEOUT_NOW_COMMIT = 1;
// InstallSnapshot
const INSTALL_SNAPSHOT_META = 1;
// Entry
const ENTRY_INDEX = 1;
const ENTRY_TERM = 2;
const ENTRY_TYPE = 3;
const ENTRY_DATA = 4;
const ENTRY_TYPE_NUMBER: Readonly<Record<EntryType, number>> = { normal: 0, noop: 1, config: 2 };
const ENTRY_TYPES: readonly EntryType[] = ['normal', 'noop', 'config'];
// SnapshotMeta / ConfState
const META_INDEX = 1;
const META_TERM = 2;
const META_CONF_STATE = 3;
const CONF_VOTERS = 1;
const CONF_LEARNERS = 2;
// SnapshotChunk / SnapshotHeader / SnapshotAck
const CHUNK_HEADER = 1;
const CHUNK_OFFSET = 2;
const CHUNK_DATA = 3;
const CHUNK_LAST = 4;
const HEADER_CLUSTER_ID = 1;
const HEADER_MESSAGE = 2;
const ACK_SIZE_BYTES = 1;

const tagOf = (field: number, wireType: number): number => (field << 3) | wireType;

/** A MessageBatch as received: messages have their from/to filled in. */
export interface DecodedBatch {
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly messages: Message[];
}

/** The first chunk's header of an InstallSnapshot stream. */
export interface SnapshotHeader {
  readonly clusterId: string;
  readonly message: InstallSnapshot;
}

/** One SnapshotChunk: `header` on the first only. */
export interface SnapshotChunk {
  readonly header: SnapshotHeader | null;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly last: boolean;
}

// --- sizes ---------------------------------------------------------------

function entrySize(e: Entry): number {
  return uintFieldSize(e.index) + uintFieldSize(e.term) + uintFieldSize(ENTRY_TYPE_NUMBER[e.type]) + (e.data.length === 0 ? 0 : lengthFieldSize(e.data.length));
}

function stringsSize(values: readonly string[]): number {
  let size = 0;
  for (const v of values) size += lengthFieldSize(utf8Length(v));
  return size;
}

function confStateSize(meta: SnapshotMeta): number {
  return stringsSize(meta.confState.voters) + stringsSize(meta.confState.learners);
}

function metaSize(meta: SnapshotMeta): number {
  return uintFieldSize(meta.index) + uintFieldSize(meta.term) + lengthFieldSize(confStateSize(meta));
}

/** The size of a message's body (the oneof's sub-message), without its tag and length. */
function bodySize(m: Message): number {
  switch (m.type) {
    case 'preVote':
    case 'vote':
      return uintFieldSize(m.lastLogIndex) + uintFieldSize(m.lastLogTerm) + (m.leaderTransfer ? 2 : 0);
    case 'preVoteResp':
    case 'voteResp':
      return m.reject ? 2 : 0;
    case 'append': {
      let size = uintFieldSize(m.prevIndex) + uintFieldSize(m.prevTerm) + uintFieldSize(m.commit);
      for (const e of m.entries) size += lengthFieldSize(entrySize(e));
      return size;
    }
    case 'appendResp':
      return (m.reject ? 2 : 0) + uintFieldSize(m.index) + uintFieldSize(m.hintIndex) + uintFieldSize(m.hintTerm);
    case 'heartbeat':
      return uintFieldSize(m.commit) + uintFieldSize(m.readRound);
    case 'heartbeatResp':
      return uintFieldSize(m.readRound);
    case 'snapshot':
      return lengthFieldSize(metaSize(m.snapshot));
    case 'timeoutNow':
      return uintFieldSize(m.commit);
  }
}

/**
 * The encoded size of a Message (without its own tag and length). `fromBytes`
 * / `toBytes` are the UTF-8 lengths of the from/to written, 0 when left out.
 */
function messageSize(m: Message, fromBytes: number, toBytes: number): number {
  let size = uintFieldSize(m.term) + lengthFieldSize(bodySize(m));
  if (fromBytes > 0) size += lengthFieldSize(fromBytes);
  if (toBytes > 0) size += lengthFieldSize(toBytes);
  return size;
}

// --- encoding ------------------------------------------------------------

function writeEntry(w: Writer, e: Entry): void {
  w.uint(ENTRY_INDEX, e.index, 'entry index');
  w.uint(ENTRY_TERM, e.term, 'entry term');
  w.uint(ENTRY_TYPE, ENTRY_TYPE_NUMBER[e.type], 'entry type');
  w.bytes(ENTRY_DATA, e.data);
}

function writeMeta(w: Writer, meta: SnapshotMeta): void {
  w.uint(META_INDEX, meta.index, 'snapshot index');
  w.uint(META_TERM, meta.term, 'snapshot term');
  w.lengthDelimited(META_CONF_STATE, confStateSize(meta));
  for (const id of meta.confState.voters) w.repeatedString(CONF_VOTERS, id, utf8Length(id));
  for (const id of meta.confState.learners) w.repeatedString(CONF_LEARNERS, id, utf8Length(id));
}

function writeBody(w: Writer, m: Message): void {
  w.lengthDelimited(BODY_FIELD[m.type], bodySize(m));
  switch (m.type) {
    case 'preVote':
    case 'vote':
      w.uint(VOTE_LAST_LOG_INDEX, m.lastLogIndex, 'lastLogIndex');
      w.uint(VOTE_LAST_LOG_TERM, m.lastLogTerm, 'lastLogTerm');
      w.bool(VOTE_LEADER_TRANSFER, m.leaderTransfer);
      return;
    case 'preVoteResp':
    case 'voteResp':
      w.bool(VOTE_RESP_REJECT, m.reject);
      return;
    case 'append':
      w.uint(APPEND_PREV_INDEX, m.prevIndex, 'prevIndex');
      w.uint(APPEND_PREV_TERM, m.prevTerm, 'prevTerm');
      for (const e of m.entries) {
        w.lengthDelimited(APPEND_ENTRIES, entrySize(e));
        writeEntry(w, e);
      }
      w.uint(APPEND_COMMIT, m.commit, 'commit');
      return;
    case 'appendResp':
      w.bool(APPEND_RESP_REJECT, m.reject);
      w.uint(APPEND_RESP_INDEX, m.index, 'index');
      w.uint(APPEND_RESP_HINT_INDEX, m.hintIndex, 'hintIndex');
      w.uint(APPEND_RESP_HINT_TERM, m.hintTerm, 'hintTerm');
      return;
    case 'heartbeat':
      w.uint(HEARTBEAT_COMMIT, m.commit, 'commit');
      w.uint(HEARTBEAT_READ_ROUND, m.readRound, 'readRound');
      return;
    case 'heartbeatResp':
      w.uint(HEARTBEAT_RESP_READ_ROUND, m.readRound, 'readRound');
      return;
    case 'snapshot':
      w.lengthDelimited(INSTALL_SNAPSHOT_META, metaSize(m.snapshot));
      writeMeta(w, m.snapshot);
      return;
    case 'timeoutNow':
      w.uint(TIMEOUT_NOW_COMMIT, m.commit, 'commit');
      return;
  }
}

function writeMessage(w: Writer, m: Message, fromBytes: number, toBytes: number): void {
  if (fromBytes > 0) w.string(MSG_FROM, m.from, fromBytes);
  if (toBytes > 0) w.string(MSG_TO, m.to, toBytes);
  w.uint(MSG_TERM, m.term, 'term');
  writeBody(w, m);
}

/** Encodes one MessageBatch; every message must be from `from` to `to`. */
export function encodeBatch(clusterId: string, from: NodeId, to: NodeId, messages: readonly Message[]): Buffer {
  const [buffer] = encodeBatches(clusterId, from, to, messages, Number.MAX_SAFE_INTEGER).batches;
  return buffer ?? encodeBatchOf(clusterId, from, to, messages, [], 0, 0);
}

/** What encodeBatches made: batches in order, and the messages too large to send at all. */
export interface EncodedBatches {
  readonly batches: Buffer[];
  readonly oversized: Message[];
}

/**
 * Encodes messages, in order, into as few MessageBatches as fit `maxBytes`
 * each. A message that alone exceeds `maxBytes` cannot be delivered (the
 * receiver would refuse it) and is returned in `oversized` instead.
 */
export function encodeBatches(clusterId: string, from: NodeId, to: NodeId, messages: readonly Message[], maxBytes: number): EncodedBatches {
  const clusterBytes = utf8Length(clusterId);
  const fromBytes = utf8Length(from);
  const toBytes = utf8Length(to);
  const headerSize = (clusterBytes > 0 ? lengthFieldSize(clusterBytes) : 0) + (fromBytes > 0 ? lengthFieldSize(fromBytes) : 0) + (toBytes > 0 ? lengthFieldSize(toBytes) : 0);
  const batches: Buffer[] = [];
  const oversized: Message[] = [];
  const sizes: number[] = [];
  let start = 0;
  let size = headerSize;
  const flush = (end: number): void => {
    if (end > start) batches.push(encodeBatchOf(clusterId, from, to, messages, sizes, start, end));
  };
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as Message;
    const mFromBytes = m.from === from ? 0 : utf8Length(m.from);
    const mToBytes = m.to === to ? 0 : utf8Length(m.to);
    const inner = messageSize(m, mFromBytes, mToBytes);
    sizes[i] = inner;
    const field = 1 + varintSize(inner) + inner;
    if (headerSize + field > maxBytes) {
      flush(i);
      oversized.push(m);
      start = i + 1;
      size = headerSize;
      continue;
    }
    if (size + field > maxBytes) {
      flush(i);
      start = i;
      size = headerSize;
    }
    size += field;
  }
  flush(messages.length);
  return { batches, oversized };
}

function encodeBatchOf(clusterId: string, from: NodeId, to: NodeId, messages: readonly Message[], sizes: readonly number[], start: number, end: number): Buffer {
  const clusterBytes = utf8Length(clusterId);
  const fromBytes = utf8Length(from);
  const toBytes = utf8Length(to);
  let total = (clusterBytes > 0 ? lengthFieldSize(clusterBytes) : 0) + (fromBytes > 0 ? lengthFieldSize(fromBytes) : 0) + (toBytes > 0 ? lengthFieldSize(toBytes) : 0);
  for (let i = start; i < end; i++) total += lengthFieldSize(sizes[i] as number);
  const w = Writer.alloc(total);
  w.string(BATCH_CLUSTER_ID, clusterId, clusterBytes);
  w.string(BATCH_FROM, from, fromBytes);
  w.string(BATCH_TO, to, toBytes);
  for (let i = start; i < end; i++) {
    const m = messages[i] as Message;
    w.lengthDelimited(BATCH_MESSAGES, sizes[i] as number);
    writeMessage(w, m, m.from === from ? 0 : utf8Length(m.from), m.to === to ? 0 : utf8Length(m.to));
  }
  return w.finish();
}

/** Encodes one standalone Message (from/to always written). */
export function encodeMessage(m: Message): Buffer {
  const fromBytes = utf8Length(m.from);
  const toBytes = utf8Length(m.to);
  const w = Writer.alloc(messageSize(m, fromBytes, toBytes));
  writeMessage(w, m, fromBytes, toBytes);
  return w.finish();
}

/** Encodes a SnapshotChunk. The data is copied once, into the chunk's buffer. */
export function encodeSnapshotChunk(chunk: SnapshotChunk): Buffer {
  let headerSize = 0;
  let clusterBytes = 0;
  let messageBytes = 0;
  const header = chunk.header;
  if (header !== null) {
    clusterBytes = utf8Length(header.clusterId);
    messageBytes = messageSize(header.message, utf8Length(header.message.from), utf8Length(header.message.to));
    headerSize = (clusterBytes > 0 ? lengthFieldSize(clusterBytes) : 0) + lengthFieldSize(messageBytes);
  }
  const size =
    (header !== null ? lengthFieldSize(headerSize) : 0) +
    uintFieldSize(chunk.offset) +
    (chunk.data.length > 0 ? lengthFieldSize(chunk.data.length) : 0) +
    (chunk.last ? 2 : 0);
  const w = Writer.alloc(size);
  if (header !== null) {
    w.lengthDelimited(CHUNK_HEADER, headerSize);
    w.string(HEADER_CLUSTER_ID, header.clusterId, clusterBytes);
    w.lengthDelimited(HEADER_MESSAGE, messageBytes);
    writeMessage(w, header.message, utf8Length(header.message.from), utf8Length(header.message.to));
  }
  w.uint(CHUNK_OFFSET, chunk.offset, 'offset');
  w.bytes(CHUNK_DATA, chunk.data);
  w.bool(CHUNK_LAST, chunk.last);
  return w.finish();
}

export function encodeSnapshotAck(sizeBytes: number): Buffer {
  const w = Writer.alloc(uintFieldSize(sizeBytes));
  w.uint(ACK_SIZE_BYTES, sizeBytes, 'size_bytes');
  return w.finish();
}

/** SendAck has no fields: its encoding is empty. */
export const SEND_ACK: Buffer = Buffer.alloc(0);

// --- decoding ------------------------------------------------------------

function expectWire(tag: number, wireType: number, what: string): void {
  if ((tag & 7) !== wireType) throw new MalformedMessageError(`${what}: wire type ${tag & 7}, expected ${wireType}`);
}

export function expectEnd(r: Reader, end: number, what: string): void {
  if (r.pos !== end) throw new MalformedMessageError(`${what}: a field runs past the end of the message`);
}

function readEntry(r: Reader, end: number): Entry {
  let index = 0;
  let term = 0;
  let type: EntryType = 'normal';
  let data = EMPTY_BYTES;
  while (r.pos < end) {
    const tag = r.uint32('entry tag');
    switch (tag) {
      case tagOf(ENTRY_INDEX, WIRE_VARINT):
        index = r.uint64('entry index');
        break;
      case tagOf(ENTRY_TERM, WIRE_VARINT):
        term = r.uint64('entry term');
        break;
      case tagOf(ENTRY_TYPE, WIRE_VARINT): {
        const n = r.uint32('entry type');
        const t = ENTRY_TYPES[n];
        if (t === undefined) throw new MalformedMessageError(`entry type ${n} is not one this node knows`);
        type = t;
        break;
      }
      case tagOf(ENTRY_DATA, WIRE_LENGTH_DELIMITED):
        data = r.bytes('entry data', end);
        break;
      default:
        r.skip(tag & 7, 'entry', end);
    }
  }
  expectEnd(r, end, 'entry');
  return { index, term, type, data };
}

function readConfState(r: Reader, end: number): { voters: NodeId[]; learners: NodeId[] } {
  const voters: NodeId[] = [];
  const learners: NodeId[] = [];
  while (r.pos < end) {
    const tag = r.uint32('conf state tag');
    if (tag === tagOf(CONF_VOTERS, WIRE_LENGTH_DELIMITED)) voters.push(r.string('voter', end));
    else if (tag === tagOf(CONF_LEARNERS, WIRE_LENGTH_DELIMITED)) learners.push(r.string('learner', end));
    else r.skip(tag & 7, 'conf state', end);
  }
  expectEnd(r, end, 'conf state');
  return { voters, learners };
}

function readMeta(r: Reader, end: number): SnapshotMeta {
  let index = 0;
  let term = 0;
  let confState: SnapshotMeta['confState'] = { voters: [], learners: [] };
  while (r.pos < end) {
    const tag = r.uint32('snapshot meta tag');
    switch (tag) {
      case tagOf(META_INDEX, WIRE_VARINT):
        index = r.uint64('snapshot index');
        break;
      case tagOf(META_TERM, WIRE_VARINT):
        term = r.uint64('snapshot term');
        break;
      case tagOf(META_CONF_STATE, WIRE_LENGTH_DELIMITED): {
        const fieldEnd = r.lengthDelimitedEnd('conf state', end);
        confState = readConfState(r, fieldEnd);
        break;
      }
      default:
        r.skip(tag & 7, 'snapshot meta', end);
    }
  }
  expectEnd(r, end, 'snapshot meta');
  return { index, term, confState };
}

/** Reads a body's fields into a scratch record: bodies are small, and this keeps one loop for all. */
function readBody(r: Reader, type: Message['type'], from: NodeId, to: NodeId, term: number, end: number): Message {
  let f1 = 0;
  let f2 = 0;
  let f3 = 0;
  let f4 = 0;
  let b1 = false;
  let b3 = false;
  let entries: Entry[] | null = null;
  let meta: SnapshotMeta | null = null;
  while (r.pos < end) {
    // Constant labels: a template string here would allocate on every field of every message.
    const tag = r.uint32('message body tag');
    const field = tag >>> 3;
    const wire = tag & 7;
    if (type === 'append' && field === APPEND_ENTRIES) {
      expectWire(tag, WIRE_LENGTH_DELIMITED, 'entry');
      const entryEnd = r.lengthDelimitedEnd('entry', end);
      (entries ??= []).push(readEntry(r, entryEnd));
      continue;
    }
    if (type === 'snapshot' && field === INSTALL_SNAPSHOT_META) {
      expectWire(tag, WIRE_LENGTH_DELIMITED, 'snapshot meta');
      const metaEnd = r.lengthDelimitedEnd('snapshot meta', end);
      meta = readMeta(r, metaEnd);
      continue;
    }
    if (wire !== WIRE_VARINT || field > 4) {
      r.skip(wire, type, end);
      continue;
    }
    switch (field) {
      case 1:
        f1 = r.uint64('message body field 1');
        b1 = f1 !== 0;
        break;
      case 2:
        f2 = r.uint64('message body field 2');
        break;
      case 3:
        f3 = r.uint64('message body field 3');
        b3 = f3 !== 0;
        break;
      case 4:
        f4 = r.uint64('message body field 4');
        break;
      default:
        r.skip(wire, type, end);
    }
  }
  expectEnd(r, end, type);
  switch (type) {
    case 'preVote':
    case 'vote':
      return { type, from, to, term, lastLogIndex: f1, lastLogTerm: f2, leaderTransfer: b3 };
    case 'preVoteResp':
    case 'voteResp':
      return { type, from, to, term, reject: b1 };
    case 'append':
      return { type, from, to, term, prevIndex: f1, prevTerm: f2, entries: entries ?? [], commit: f4 };
    case 'appendResp':
      return { type, from, to, term, reject: b1, index: f2, hintIndex: f3, hintTerm: f4 };
    case 'heartbeat':
      return { type, from, to, term, commit: f1, readRound: f2 };
    case 'heartbeatResp':
      return { type, from, to, term, readRound: f1 };
    case 'snapshot':
      if (meta === null) throw new MalformedMessageError(`a snapshot message from '${from}' has no snapshot meta`);
      return { type, from, to, term, snapshot: meta };
    case 'timeoutNow':
      return { type, from, to, term, commit: f1 };
  }
}

/** Reads a Message between r.pos and end; from/to default to the enclosing batch's. */
function readMessage(r: Reader, end: number, defaultFrom: NodeId, defaultTo: NodeId): Message {
  let from = defaultFrom;
  let to = defaultTo;
  let term = 0;
  let type: Message['type'] | undefined;
  let bodyStart = 0;
  let bodyEnd = 0;
  while (r.pos < end) {
    const tag = r.uint32('message tag');
    switch (tag) {
      // Empty (even written out, as some encoders do) means the batch's: proto3 cannot tell the two apart.
      case tagOf(MSG_FROM, WIRE_LENGTH_DELIMITED):
        from = r.string('message from', end) || defaultFrom;
        break;
      case tagOf(MSG_TO, WIRE_LENGTH_DELIMITED):
        to = r.string('message to', end) || defaultTo;
        break;
      case tagOf(MSG_TERM, WIRE_VARINT):
        term = r.uint64('message term');
        break;
      default: {
        const bodyType = BODY_TYPE[tag >>> 3];
        if (bodyType !== undefined && (tag & 7) === WIRE_LENGTH_DELIMITED) {
          // A oneof: the last body wins, as protobuf parsers do.
          const fieldEnd = r.lengthDelimitedEnd(bodyType, end);
          type = bodyType;
          bodyStart = r.pos;
          bodyEnd = fieldEnd;
          r.pos = fieldEnd;
        } else {
          r.skip(tag & 7, 'message', end);
        }
      }
    }
  }
  expectEnd(r, end, 'message');
  if (type === undefined) throw new MalformedMessageError(`a message from '${from}' has no body (no type this node knows)`);
  const after = r.pos;
  r.pos = bodyStart;
  const message = readBody(r, type, from, to, term, bodyEnd);
  r.pos = after;
  return message;
}

// Message ranges of the batch being decoded; decoding is synchronous, so one scratch array serves all.
const messageStarts: number[] = [];
const messageEnds: number[] = [];

/**
 * Decodes a MessageBatch. Entry data are views of `bytes`, which must
 * therefore not be modified afterwards. Throws MalformedMessageError.
 */
export function decodeBatch(bytes: Uint8Array): DecodedBatch {
  const r = new Reader(bytes);
  const end = r.length;
  let clusterId = '';
  let from = '';
  let to = '';
  let count = 0;
  // Batch fields may follow the messages on the wire, and messages default to them: find everything first.
  while (r.pos < end) {
    const tag = r.uint32('batch tag');
    switch (tag) {
      case tagOf(BATCH_CLUSTER_ID, WIRE_LENGTH_DELIMITED):
        clusterId = r.string('cluster id', end);
        break;
      case tagOf(BATCH_FROM, WIRE_LENGTH_DELIMITED):
        from = r.string('batch from', end);
        break;
      case tagOf(BATCH_TO, WIRE_LENGTH_DELIMITED):
        to = r.string('batch to', end);
        break;
      case tagOf(BATCH_MESSAGES, WIRE_LENGTH_DELIMITED): {
        const fieldEnd = r.lengthDelimitedEnd('message', end);
        messageStarts[count] = r.pos;
        messageEnds[count] = fieldEnd;
        count++;
        r.pos = fieldEnd;
        break;
      }
      default:
        r.skip(tag & 7, 'batch', end);
    }
  }
  expectEnd(r, end, 'batch');
  const messages = new Array<Message>(count);
  for (let i = 0; i < count; i++) {
    r.pos = messageStarts[i] as number;
    const m = readMessage(r, messageEnds[i] as number, from, to);
    if (m.from !== from || m.to !== to) {
      throw new MalformedMessageError(`message ${i} of a batch from '${from}' to '${to}' is from '${m.from}' to '${m.to}'`);
    }
    messages[i] = m;
  }
  return { clusterId, from, to, messages };
}

/** Decodes one standalone Message. */
export function decodeMessage(bytes: Uint8Array): Message {
  const r = new Reader(bytes);
  return readMessage(r, r.length, '', '');
}

/** Decodes a SnapshotChunk; `data` is a view of `bytes`. Throws MalformedMessageError. */
export function decodeSnapshotChunk(bytes: Uint8Array): SnapshotChunk {
  const r = new Reader(bytes);
  const end = r.length;
  let header: SnapshotHeader | null = null;
  let offset = 0;
  let data = EMPTY_BYTES;
  let last = false;
  while (r.pos < end) {
    const tag = r.uint32('chunk tag');
    switch (tag) {
      case tagOf(CHUNK_HEADER, WIRE_LENGTH_DELIMITED): {
        const headerEnd = r.lengthDelimitedEnd('snapshot header', end);
        header = readSnapshotHeader(r, headerEnd);
        break;
      }
      case tagOf(CHUNK_OFFSET, WIRE_VARINT):
        offset = r.uint64('chunk offset');
        break;
      case tagOf(CHUNK_DATA, WIRE_LENGTH_DELIMITED):
        data = r.bytes('chunk data', end);
        break;
      case tagOf(CHUNK_LAST, WIRE_VARINT):
        last = r.bool('chunk last');
        break;
      default:
        r.skip(tag & 7, 'chunk', end);
    }
  }
  expectEnd(r, end, 'chunk');
  return { header, offset, data, last };
}

function readSnapshotHeader(r: Reader, end: number): SnapshotHeader {
  let clusterId = '';
  let message: Message | null = null;
  while (r.pos < end) {
    const tag = r.uint32('snapshot header tag');
    if (tag === tagOf(HEADER_CLUSTER_ID, WIRE_LENGTH_DELIMITED)) {
      clusterId = r.string('cluster id', end);
    } else if (tag === tagOf(HEADER_MESSAGE, WIRE_LENGTH_DELIMITED)) {
      const messageEnd = r.lengthDelimitedEnd('snapshot message', end);
      message = readMessage(r, messageEnd, '', '');
    } else {
      r.skip(tag & 7, 'snapshot header', end);
    }
  }
  expectEnd(r, end, 'snapshot header');
  if (message === null || message.type !== 'snapshot') {
    throw new MalformedMessageError(`a snapshot header must carry a 'snapshot' message (got ${message === null ? 'none' : `'${message.type}'`})`);
  }
  return { clusterId, message };
}

export function decodeSnapshotAck(bytes: Uint8Array): number {
  const r = new Reader(bytes);
  let sizeBytes = 0;
  while (r.pos < r.length) {
    const tag = r.uint32('ack tag');
    if (tag === tagOf(ACK_SIZE_BYTES, WIRE_VARINT)) sizeBytes = r.uint64('size_bytes');
    else r.skip(tag & 7, 'snapshot ack', r.length);
  }
  return sizeBytes;
}
