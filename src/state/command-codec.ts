/**
 * Binary encoding of commands and of log entry payloads (a log entry's data,
 * opaque to Raft). Compact and versioned: the first byte is the format, so a
 * reader meets a future format as a clear CodecError, never as garbage.
 *
 * Entry payload, format 1:
 *   u8      format (1)
 *   u8      flags: bit 0 = a client session follows; other bits must be 0
 *   varint  time: the leader's timestamp in ms (log time, never goes backwards)
 *   [session: string client id, varint sequence]
 *   command (below)
 *
 * Standalone command (encodeCommand): u8 format (1), then the command.
 *
 * Command: u8 opcode (OPCODES), then its fields in declaration order, where
 *   string = varint byte length + UTF-8, bytes = varint length + bytes,
 *   varint = unsigned LEB128, zigzag = signed LEB128 (index, start, stop),
 *   list<T> = varint count + T*. Set carries u8 flags (bits 0-1 condition:
 *   0 always, 1 ifAbsent, 2 ifPresent; bit 2 keepTtl) before ttl and value.
 *   A compare is u8 target (0 value, 1 type, 2 length), key, u8 op
 *   (eq ne lt le gt ge = 0..5), then bytes / u8 type (none string list hash = 0..3) / varint.
 *   Txn = list<compare>, list<command>, list<command>; a Txn inside a Txn is refused.
 */
import { ByteReader, ByteWriter } from './bytes.ts';
import type { Command, Compare, CompareOp, EvictTarget, SetCondition, TxnOpCommand } from './commands.ts';
import { CodecError, InvalidArgumentError } from './errors.ts';
import type { ValueType } from './values.ts';

export const FORMAT_V1 = 1;

/** Opcodes are part of the log format: never renumber, only add. */
export const OPCODES = {
  get: 1,
  set: 2,
  delete: 3,
  exists: 4,
  expire: 5,
  ttl: 6,
  type: 7,
  keys: 8,
  size: 9,
  clear: 10,
  lpush: 16,
  rpush: 17,
  lpop: 18,
  rpop: 19,
  lindex: 20,
  lset: 21,
  lrange: 22,
  llen: 23,
  hset: 32,
  hget: 33,
  hdel: 34,
  hgetall: 35,
  hlen: 36,
  txn: 48,
  expireSweep: 64,
  evict: 65,
} as const satisfies Record<Command['op'], number>;

/** A client's identity for exactly-once writes: a retried (clientId, sequence) answers the first result. */
export interface ClientSession {
  readonly clientId: string;
  readonly sequence: number;
}

/** What a log entry carries for the state machine. */
export interface EntryPayload {
  /** The leader's timestamp in ms: "now" for this entry. */
  readonly timeMs: number;
  readonly session: ClientSession | null;
  readonly command: Command;
}

const CONDITIONS: readonly SetCondition[] = ['always', 'ifAbsent', 'ifPresent'];
const COMPARE_OPS: readonly CompareOp[] = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'];
const TYPES: readonly (ValueType | 'none')[] = ['none', 'string', 'list', 'hash'];
const FLAG_SESSION = 1;
const SET_KEEP_TTL = 4;


const writer = new ByteWriter(1024);
const entryReader = new ByteReader(new Uint8Array(0));

export function encodeCommand(command: Command): Uint8Array {
  writer.reset();
  writer.u8(FORMAT_V1);
  writeCommand(writer, command, false);
  return writer.finish();
}

export function decodeCommand(bytes: Uint8Array): Command {
  const reader = new ByteReader(bytes);
  readFormat(reader);
  const command = readCommand(reader, false);
  reader.expectEnd('command');
  return command;
}

export function encodeEntry(payload: EntryPayload): Uint8Array {
  writer.reset();
  writer.u8(FORMAT_V1);
  writer.u8(payload.session === null ? 0 : FLAG_SESSION);
  writer.varint(payload.timeMs);
  if (payload.session !== null) {
    writer.string(payload.session.clientId);
    writer.varint(payload.session.sequence);
  }
  writeCommand(writer, payload.command, false);
  return writer.finishPooled();
}

export function decodeEntry(bytes: Uint8Array): EntryPayload {
  // Not re-entrant, and need not be: decoding never calls out.
  const reader = entryReader;
  reader.reset(bytes);
  readFormat(reader);
  const flags = reader.u8();
  if ((flags & ~FLAG_SESSION) !== 0) throw new CodecError(`entry has unknown flags 0x${flags.toString(16)}`);
  const timeMs = reader.varint();
  let session: ClientSession | null = null;
  if ((flags & FLAG_SESSION) !== 0) {
    const clientId = reader.string();
    session = { clientId, sequence: reader.varint() };
  }
  const command = readCommand(reader, false);
  reader.expectEnd('entry');
  return { timeMs, session, command };
}

function readFormat(reader: ByteReader): void {
  if (reader.remaining === 0) throw new CodecError('empty payload');
  const format = reader.u8();
  if (format !== FORMAT_V1) {
    throw new CodecError(`unsupported payload format ${format} (this build reads format ${FORMAT_V1}): is a newer version writing the log?`);
  }
}

function writeStrings(w: ByteWriter, values: readonly string[]): void {
  w.varint(values.length);
  for (const value of values) w.string(value);
}

function writeCommand(w: ByteWriter, c: Command, inTxn: boolean): void {
  if (inTxn && (c.op === 'txn' || c.op === 'expireSweep' || c.op === 'evict')) {
    throw new InvalidArgumentError(`'${c.op}' cannot be part of a Txn`);
  }
  w.u8(OPCODES[c.op]);
  switch (c.op) {
    case 'get':
    case 'ttl':
    case 'type':
    case 'llen':
    case 'hgetall':
    case 'hlen':
      w.string(c.key);
      return;
    case 'set': {
      const condition = CONDITIONS.indexOf(c.condition ?? 'always');
      if (condition < 0) throw new InvalidArgumentError(`unknown set condition '${String(c.condition)}'`);
      w.string(c.key);
      w.u8(condition | (c.keepTtl === true ? SET_KEEP_TTL : 0));
      w.varint(c.ttlMs ?? 0);
      w.bytes(c.value);
      return;
    }
    case 'delete':
    case 'exists':
    case 'expireSweep':
      writeStrings(w, c.keys);
      return;
    case 'expire':
      w.string(c.key);
      w.varint(c.ttlMs);
      return;
    case 'keys':
      w.string(c.pattern ?? '');
      w.varint(c.limit ?? 0);
      w.string(c.cursor ?? '');
      return;
    case 'size':
    case 'clear':
      return;
    case 'lpush':
    case 'rpush':
      w.string(c.key);
      w.varint(c.values.length);
      for (const value of c.values) w.bytes(value);
      return;
    case 'lpop':
    case 'rpop':
      w.string(c.key);
      w.varint(c.count ?? 0);
      return;
    case 'lindex':
      w.string(c.key);
      w.zigzag(c.index);
      return;
    case 'lset':
      w.string(c.key);
      w.zigzag(c.index);
      w.bytes(c.value);
      return;
    case 'lrange':
      w.string(c.key);
      w.zigzag(c.start);
      w.zigzag(c.stop);
      return;
    case 'hset':
      w.string(c.key);
      w.varint(c.fields.length);
      for (const [field, value] of c.fields) {
        w.string(field);
        w.bytes(value);
      }
      return;
    case 'hget':
      w.string(c.key);
      w.string(c.field);
      return;
    case 'hdel':
      w.string(c.key);
      writeStrings(w, c.fields);
      return;
    case 'txn':
      w.varint(c.compares.length);
      for (const compare of c.compares) writeCompare(w, compare);
      for (const branch of [c.success, c.failure]) {
        w.varint(branch.length);
        for (const op of branch) writeCommand(w, op, true);
      }
      return;
    case 'evict':
      w.varint(c.keys.length);
      for (const target of c.keys) {
        w.string(target.key);
        w.varint(target.fingerprint);
      }
      return;
  }
}

function writeCompare(w: ByteWriter, c: Compare): void {
  switch (c.target) {
    case 'value':
      w.u8(0);
      w.string(c.key);
      w.u8(opCode(c.op));
      w.bytes(c.value);
      return;
    case 'type': {
      if (c.op !== 'eq' && c.op !== 'ne') throw new InvalidArgumentError(`a type compare takes eq or ne, not '${String(c.op)}'`);
      w.u8(1);
      w.string(c.key);
      w.u8(opCode(c.op));
      const type = TYPES.indexOf(c.type);
      if (type < 0) throw new InvalidArgumentError(`unknown type '${String(c.type)}' in compare`);
      w.u8(type);
      return;
    }
    case 'length':
      w.u8(2);
      w.string(c.key);
      w.u8(opCode(c.op));
      w.varint(c.length);
      return;
  }
}

function opCode(op: CompareOp): number {
  const code = COMPARE_OPS.indexOf(op);
  if (code < 0) throw new InvalidArgumentError(`unknown compare op '${String(op)}'`);
  return code;
}

function readStrings(r: ByteReader): string[] {
  const n = r.length();
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = r.string();
  return out;
}

function readCommand(r: ByteReader, inTxn: boolean): Command {
  const code = r.u8();
  // A numeric switch: this is the hot path of every apply.
  switch (code) {
    case OPCODES.get:
      return { op: 'get', key: r.string() };
    case OPCODES.set: {
      const key = r.string();
      const flags = r.u8();
      const condition = CONDITIONS[flags & 3];
      if (condition === undefined || (flags & ~7) !== 0) throw new CodecError(`set has bad flags 0x${flags.toString(16)}`);
      const ttlMs = r.varint();
      return { op: 'set', key, ttlMs, condition, keepTtl: (flags & SET_KEEP_TTL) !== 0, value: r.stringValue() };
    }
    case OPCODES.delete:
      return { op: 'delete', keys: readStrings(r) };
    case OPCODES.exists:
      return { op: 'exists', keys: readStrings(r) };
    case OPCODES.expire:
      return { op: 'expire', key: r.string(), ttlMs: r.varint() };
    case OPCODES.ttl:
      return { op: 'ttl', key: r.string() };
    case OPCODES.type:
      return { op: 'type', key: r.string() };
    case OPCODES.keys: {
      const pattern = r.string();
      return { op: 'keys', pattern, limit: r.varint(), cursor: r.string() };
    }
    case OPCODES.size:
      return { op: 'size' };
    case OPCODES.clear:
      return { op: 'clear' };
    case OPCODES.lpush:
    case OPCODES.rpush: {
      const key = r.string();
      const n = r.length();
      const values = new Array<Uint8Array>(n);
      for (let i = 0; i < n; i++) values[i] = r.bytes();
      return { op: code === OPCODES.lpush ? 'lpush' : 'rpush', key, values };
    }
    case OPCODES.lpop:
      return { op: 'lpop', key: r.string(), count: r.varint() };
    case OPCODES.rpop:
      return { op: 'rpop', key: r.string(), count: r.varint() };
    case OPCODES.lindex:
      return { op: 'lindex', key: r.string(), index: r.zigzag() };
    case OPCODES.lset: {
      const key = r.string();
      const index = r.zigzag();
      return { op: 'lset', key, index, value: r.bytes() };
    }
    case OPCODES.lrange: {
      const key = r.string();
      const start = r.zigzag();
      return { op: 'lrange', key, start, stop: r.zigzag() };
    }
    case OPCODES.llen:
      return { op: 'llen', key: r.string() };
    case OPCODES.hset: {
      const key = r.string();
      const n = r.length(2);
      const fields = new Array<readonly [string, Uint8Array]>(n);
      for (let i = 0; i < n; i++) {
        const field = r.string();
        fields[i] = [field, r.bytes()];
      }
      return { op: 'hset', key, fields };
    }
    case OPCODES.hget: {
      const key = r.string();
      return { op: 'hget', key, field: r.string() };
    }
    case OPCODES.hdel: {
      const key = r.string();
      return { op: 'hdel', key, fields: readStrings(r) };
    }
    case OPCODES.hgetall:
      return { op: 'hgetall', key: r.string() };
    case OPCODES.hlen:
      return { op: 'hlen', key: r.string() };
    case OPCODES.txn: {
      if (inTxn) throw new CodecError('a Txn inside a Txn');
      const nCompares = r.length(3);
      const compares = new Array<Compare>(nCompares);
      for (let i = 0; i < nCompares; i++) compares[i] = readCompare(r);
      const success = readBranch(r);
      const failure = readBranch(r);
      return { op: 'txn', compares, success, failure };
    }
    case OPCODES.expireSweep:
      return { op: 'expireSweep', keys: readStrings(r) };
    case OPCODES.evict: {
      const n = r.length(2);
      const keys = new Array<EvictTarget>(n);
      for (let i = 0; i < n; i++) {
        const key = r.string();
        keys[i] = { key, fingerprint: r.varint() };
      }
      return { op: 'evict', keys };
    }
    default:
      throw new CodecError(`unknown opcode ${code}`);
  }
}

function readBranch(r: ByteReader): TxnOpCommand[] {
  const n = r.length();
  const ops = new Array<TxnOpCommand>(n);
  for (let i = 0; i < n; i++) {
    const command = readCommand(r, true);
    if (command.op === 'txn' || command.op === 'expireSweep' || command.op === 'evict') {
      throw new CodecError(`'${command.op}' cannot be part of a Txn`);
    }
    ops[i] = command;
  }
  return ops;
}

function readCompare(r: ByteReader): Compare {
  const target = r.u8();
  const key = r.string();
  const op = COMPARE_OPS[r.u8()];
  if (op === undefined) throw new CodecError('compare has an unknown op');
  switch (target) {
    case 0:
      return { target: 'value', key, op, value: r.bytes() };
    case 1: {
      const type = TYPES[r.u8()];
      if (type === undefined) throw new CodecError('compare has an unknown type');
      if (op !== 'eq' && op !== 'ne') throw new CodecError(`type compare with op '${op}'`);
      return { target: 'type', key, op, type };
    }
    case 2:
      return { target: 'length', key, op, length: r.varint() };
    default:
      throw new CodecError(`compare has an unknown target ${target}`);
  }
}
