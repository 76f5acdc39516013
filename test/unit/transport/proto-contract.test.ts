/**
 * The .proto files are the public contract (API.md): these tests fail when an
 * RPC or a field that clients, the CLI or the chaos suite rely on is renamed
 * or removed, and when reflection stops describing the API to grpcurl.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CLUSTER_METHODS,
  addReflection,
  KV_METHODS,
  loadProtos,
  PROTO_DIR,
  reflectionDefinition,
  uint64ToNumber,
} from '../../../src/proto/loader.ts';
import { FORWARD_PATH, INSTALL_SNAPSHOT_PATH, RAFT_SERVICE, SEND_PATH } from '../../../src/transport/service.ts';
import { askReflection } from '../../support/reflection.ts';

interface FieldInfo {
  readonly name: string;
  readonly number: number;
  readonly label: string;
  readonly type: string;
  readonly typeName: string;
  readonly oneofIndex?: number;
}
interface MessageInfo {
  readonly name: string;
  readonly field: readonly FieldInfo[];
  readonly oneofDecl: readonly { readonly name: string }[];
  readonly nestedType: readonly MessageInfo[];
}
interface EnumInfo {
  readonly value: readonly { readonly name: string; readonly number: number }[];
}

const protos = loadProtos();
const definition = protos.packageDefinition;

function message(name: string): MessageInfo {
  const d = definition[name];
  if (d === undefined || !('format' in d) || d.format !== 'Protocol Buffer 3 DescriptorProto') throw new Error(`${name} is not a message`);
  return d.type as MessageInfo;
}

/** A top-level enum's values, or a nested one's (proto-loader lists only top-level types; nested ones live in their message). */
function enumValues(name: string): string[] {
  const d = definition[name];
  let info: EnumInfo | undefined;
  if (d !== undefined && 'format' in d && d.format === 'Protocol Buffer 3 EnumDescriptorProto') {
    info = d.type as EnumInfo;
  } else {
    const parent = message(name.slice(0, name.lastIndexOf('.'))) as MessageInfo & { enumType: readonly (EnumInfo & { name: string })[] };
    info = parent.enumType.find((e) => e.name === name.slice(name.lastIndexOf('.') + 1));
  }
  if (info === undefined) throw new Error(`${name} is not an enum`);
  return info.value.map((v) => `${v.name}=${v.number}`);
}

function codec(name: string): protoLoader.MessageTypeDefinition<object, object> {
  const d = definition[name];
  if (d === undefined || !('format' in d) || d.format !== 'Protocol Buffer 3 DescriptorProto') throw new Error(`${name} is not a message`);
  return d as protoLoader.MessageTypeDefinition<object, object>;
}

function fieldNames(name: string): string[] {
  return message(name).field.map((f) => f.name);
}

function field(messageName: string, fieldName: string): FieldInfo {
  const f = message(messageName).field.find((x) => x.name === fieldName);
  if (f === undefined) throw new Error(`${messageName} has no field ${fieldName}`);
  return f;
}

function method(service: string, name: string): protoLoader.MethodDefinition<object, object> {
  const s = definition[service] as protoLoader.ServiceDefinition | undefined;
  const m = s?.[name];
  if (m === undefined) throw new Error(`${service} has no method ${name}`);
  return m;
}

/** API.md's table: RPC -> main request fields, main response fields. */
const KV_CONTRACT: Record<string, readonly [request: readonly string[], response: readonly string[]]> = {
  Get: [['key'], ['found', 'value']],
  Set: [['key', 'value', 'ttl_ms', 'condition', 'keep_ttl'], ['applied', 'previous_found', 'previous']],
  Delete: [['keys'], ['deleted']],
  Exists: [['keys'], ['count']],
  Expire: [['key', 'ttl_ms'], ['applied']],
  Ttl: [['key'], ['ttl_ms']],
  Type: [['key'], ['type']],
  Keys: [['pattern', 'limit', 'cursor'], ['keys', 'next_cursor']],
  Size: [[], ['keys']],
  Clear: [[], ['deleted']],
  LPush: [['key', 'values'], ['length']],
  RPush: [['key', 'values'], ['length']],
  LPop: [['key', 'count'], ['values']],
  RPop: [['key', 'count'], ['values']],
  LIndex: [['key', 'index'], ['found', 'value']],
  LSet: [['key', 'index', 'value'], []],
  LRange: [['key', 'start', 'stop'], ['values']],
  LLen: [['key'], ['length']],
  HSet: [['key', 'fields'], ['added']],
  HGet: [['key', 'field'], ['found', 'value']],
  HDel: [['key', 'fields'], ['deleted']],
  HGetAll: [['key'], ['fields']],
  HLen: [['key'], ['length']],
  Txn: [['compares', 'success', 'failure'], ['succeeded', 'responses']],
  Watch: [['key', 'prefix', 'from_index'], ['index', 'type', 'key', 'value']],
};

const READS = ['Get', 'Exists', 'Ttl', 'Type', 'Keys', 'Size', 'LIndex', 'LRange', 'LLen', 'HGet', 'HGetAll', 'HLen'];
const WRITES = ['Set', 'Delete', 'Expire', 'Clear', 'LPush', 'RPush', 'LPop', 'RPop', 'LSet', 'HSet', 'HDel', 'Txn'];

describe('quorumkv.v1.KV', () => {
  it('has exactly the RPCs of API.md', () => {
    expect(Object.keys(definition['quorumkv.v1.KV'] ?? {}).sort()).toEqual([...KV_METHODS].sort());
    expect(Object.keys(KV_CONTRACT).sort()).toEqual([...KV_METHODS].sort());
  });

  it.each(Object.entries(KV_CONTRACT))('%s has the request and response fields of API.md', (rpc, [request, response]) => {
    const m = method('quorumkv.v1.KV', rpc);
    expect(m.path).toBe(`/quorumkv.v1.KV/${rpc}`);
    expect(m.requestStream).toBe(false);
    expect(m.responseStream).toBe(rpc === 'Watch');
    expect(fieldNames(`quorumkv.v1.${rpc}Request`)).toEqual(expect.arrayContaining([...request]));
    const responseType = rpc === 'Watch' ? 'quorumkv.v1.WatchEvent' : `quorumkv.v1.${rpc}Response`;
    expect(fieldNames(responseType)).toEqual(expect.arrayContaining([...response]));
  });

  it('gives every read a consistency and every write client_id and sequence', () => {
    expect([...READS, ...WRITES, 'Watch'].sort()).toEqual([...KV_METHODS].sort());
    for (const rpc of READS) {
      expect(field(`quorumkv.v1.${rpc}Request`, 'consistency').typeName).toMatch(/Consistency$/);
    }
    for (const rpc of WRITES) {
      expect(field(`quorumkv.v1.${rpc}Request`, 'client_id').type).toBe('TYPE_STRING');
      expect(field(`quorumkv.v1.${rpc}Request`, 'sequence').type).toBe('TYPE_UINT64');
    }
  });

  it('keeps the enum names grpcurl users type, with the default first', () => {
    expect(enumValues('quorumkv.v1.Consistency')).toEqual(['LINEARIZABLE=0', 'SERIALIZABLE=1']);
    expect(enumValues('quorumkv.v1.SetRequest.Condition')).toEqual(['ALWAYS=0', 'IF_ABSENT=1', 'IF_PRESENT=2']);
    expect(enumValues('quorumkv.v1.ValueType')).toEqual(['NONE=0', 'STRING=1', 'LIST=2', 'HASH=3']);
    expect(enumValues('quorumkv.v1.WatchEvent.EventType')).toEqual(expect.arrayContaining(['PUT=0', 'DELETE=1', 'EXPIRE=2']));
  });

  it('types keys as strings, values as bytes and hash fields as map<string, bytes>', () => {
    expect(field('quorumkv.v1.GetRequest', 'key').type).toBe('TYPE_STRING');
    expect(field('quorumkv.v1.SetRequest', 'value').type).toBe('TYPE_BYTES');
    expect(field('quorumkv.v1.GetResponse', 'value').type).toBe('TYPE_BYTES');
    expect(field('quorumkv.v1.LPushRequest', 'values')).toMatchObject({ type: 'TYPE_BYTES', label: 'LABEL_REPEATED' });
    expect(field('quorumkv.v1.DeleteRequest', 'keys')).toMatchObject({ type: 'TYPE_STRING', label: 'LABEL_REPEATED' });
    for (const name of ['quorumkv.v1.HSetRequest', 'quorumkv.v1.HGetAllResponse']) {
      const entry = message(name).nestedType[0];
      expect(field(name, 'fields').label).toBe('LABEL_REPEATED');
      expect(entry?.field.map((f) => [f.name, f.type])).toEqual([
        ['key', 'TYPE_STRING'],
        ['value', 'TYPE_BYTES'],
      ]);
    }
  });

  it('lets a Txn hold every KV operation except Txn and Watch, with matching responses', () => {
    const ops = KV_METHODS.filter((m) => m !== 'Txn' && m !== 'Watch').map((m) => m.toLowerCase());
    const request = message('quorumkv.v1.RequestOp');
    const response = message('quorumkv.v1.ResponseOp');
    expect(request.field.map((f) => f.name).sort()).toEqual([...ops].sort());
    expect(response.field.map((f) => f.name).sort()).toEqual([...ops].sort());
    for (const f of request.field) {
      expect(f.typeName.toLowerCase()).toBe(`${f.name}request`);
      expect(response.field.find((r) => r.name === f.name)?.number).toBe(f.number);
    }
    expect(fieldNames('quorumkv.v1.Compare')).toEqual(expect.arrayContaining(['key', 'op', 'value', 'type', 'exists']));
    expect(message('quorumkv.v1.Compare').oneofDecl.map((o) => o.name)).toEqual(['target']);
  });
});

describe('quorumkv.v1.Cluster', () => {
  it('has the RPCs of API.md, Backup streaming', () => {
    expect(Object.keys(definition['quorumkv.v1.Cluster'] ?? {}).sort()).toEqual([...CLUSTER_METHODS].sort());
    expect(method('quorumkv.v1.Cluster', 'Backup').responseStream).toBe(true);
  });

  it('reports what API.md lists', () => {
    expect(fieldNames('quorumkv.v1.StatusResponse')).toEqual(
      expect.arrayContaining([
        'id',
        'role',
        'term',
        'leader_id',
        'commit_index',
        'applied_index',
        'log_first_index',
        'log_last_index',
        'snapshot_index',
        'keys',
        'memory_used_bytes',
        'state_digest',
      ]),
    );
    expect(fieldNames('quorumkv.v1.Member')).toEqual(expect.arrayContaining(['id', 'peer_address', 'client_address', 'kind', 'match_index', 'lag_entries']));
    expect(enumValues('quorumkv.v1.MemberKind')).toEqual(['VOTER=0', 'LEARNER=1']);
    expect(fieldNames('quorumkv.v1.AddMemberRequest')).toEqual(expect.arrayContaining(['id', 'peer_address', 'client_address']));
    expect(fieldNames('quorumkv.v1.SnapshotResponse')).toEqual(expect.arrayContaining(['index', 'size_bytes']));
    expect(fieldNames('quorumkv.v1.BackupChunk')).toEqual(expect.arrayContaining(['offset', 'data']));
  });
});

describe('quorumkv.raft.v1.Raft', () => {
  it('matches the hand-written service definition the transport uses', () => {
    for (const [name, ours] of Object.entries(RAFT_SERVICE)) {
      const loaded = method('quorumkv.raft.v1.Raft', name);
      expect({ path: loaded.path, requestStream: loaded.requestStream, responseStream: loaded.responseStream }).toEqual({
        path: ours.path,
        requestStream: ours.requestStream,
        responseStream: ours.responseStream,
      });
    }
    expect([SEND_PATH, INSTALL_SNAPSHOT_PATH, FORWARD_PATH]).toEqual(['/quorumkv.raft.v1.Raft/Send', '/quorumkv.raft.v1.Raft/InstallSnapshot', '/quorumkv.raft.v1.Raft/Forward']);
  });

  it('has a Message body for every message type, named after it', () => {
    const body = message('quorumkv.raft.v1.Message').field.filter((f) => f.typeName !== '');
    expect(body.map((f) => f.name).sort()).toEqual(
      ['pre_vote', 'vote', 'pre_vote_resp', 'vote_resp', 'append', 'append_resp', 'heartbeat', 'heartbeat_resp', 'snapshot', 'timeout_now'].sort(),
    );
    expect(fieldNames('quorumkv.raft.v1.MessageBatch')).toEqual(['cluster_id', 'from', 'to', 'messages']);
    expect(fieldNames('quorumkv.raft.v1.Entry')).toEqual(['index', 'term', 'type', 'data']);
    expect(enumValues('quorumkv.raft.v1.Entry.Type')).toEqual(['NORMAL=0', 'NOOP=1', 'CONFIG=2']);
    expect(fieldNames('quorumkv.raft.v1.SnapshotMeta')).toEqual(['index', 'term', 'conf_state']);
    expect(fieldNames('quorumkv.raft.v1.ConfState')).toEqual(['voters', 'learners']);
  });

  it('uses uint64 for every index and term', () => {
    for (const [messageName, names] of [
      ['quorumkv.raft.v1.Message', ['term']],
      ['quorumkv.raft.v1.VoteRequest', ['last_log_index', 'last_log_term']],
      ['quorumkv.raft.v1.AppendRequest', ['prev_index', 'prev_term', 'commit']],
      ['quorumkv.raft.v1.AppendResponse', ['index', 'hint_index', 'hint_term']],
      ['quorumkv.raft.v1.Heartbeat', ['commit', 'read_round']],
      ['quorumkv.raft.v1.Entry', ['index', 'term']],
      ['quorumkv.raft.v1.SnapshotMeta', ['index', 'term']],
    ] as const) {
      for (const name of names) expect(field(messageName, name).type, `${messageName}.${name}`).toBe('TYPE_UINT64');
    }
  });
});

describe('proto-loader', () => {
  it('finds the proto folder from the module, not the cwd', () => {
    expect(path.isAbsolute(PROTO_DIR)).toBe(true);
    expect(PROTO_DIR.endsWith(`${path.sep}proto`)).toBe(true);
  });

  it('decodes 64-bit fields as numbers and enums as names', () => {
    const type = codec('quorumkv.v1.SetRequest');
    const bytes = type.serialize({ key: 'k', ttl_ms: 2 ** 40, condition: 'IF_ABSENT', client_id: 'c', sequence: 7 });
    expect(type.deserialize(bytes)).toMatchObject({ key: 'k', ttl_ms: 2 ** 40, condition: 'IF_ABSENT', keep_ttl: false, sequence: 7 });
  });

  it('refuses 64-bit values that are not safe integers', () => {
    expect(uint64ToNumber(42, 'ttl_ms')).toBe(42);
    expect(uint64ToNumber('9007199254740991', 'ttl_ms')).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => uint64ToNumber(2 ** 53, 'ttl_ms')).toThrow(/ttl_ms must be an integer/);
    expect(() => uint64ToNumber('18446744073709551615', 'sequence')).toThrow(/sequence/);
    expect(() => uint64ToNumber(-1, 'index')).toThrow(RangeError);
    expect(uint64ToNumber(-2, 'index', -Number.MAX_SAFE_INTEGER)).toBe(-2);
    // A uint64 of 2^53 + 1 decodes to the double 2^53: still refused, so Number decoding hides no overflow.
    const type = codec('quorumkv.raft.v1.Entry');
    const decoded = type.deserialize(type.serialize({ index: '9007199254740993' })) as { index: number };
    expect(() => uint64ToNumber(decoded.index, 'index')).toThrow(RangeError);
  });
});

describe('server reflection', () => {
  let server: grpc.Server | null = null;
  afterEach(() => {
    server?.forceShutdown();
    server = null;
  });

  const require = createRequire(import.meta.url);
  const descriptor = require(createRequire(require.resolve('@grpc/proto-loader')).resolve('protobufjs/ext/descriptor')) as {
    FileDescriptorProto: { decode(bytes: Uint8Array): unknown; toObject(m: unknown): Record<string, unknown> };
  };

  it.each(['v1', 'v1alpha'] as const)('serves grpc.reflection.%s with corrected, commented descriptors of the client services only', async (version) => {
    server = new grpc.Server();
    // As the client port adds it: built on the first reflection call.
    addReflection(server);
    const s = server;
    const port = await new Promise<number>((resolve, reject) =>
      s.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const [list, kv, raft] = await askReflection(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
      [{ list_services: '' }, { file_containing_symbol: 'quorumkv.v1.KV' }, { file_containing_symbol: 'quorumkv.raft.v1.Raft' }],
      version,
    );
    expect(list?.list_services_response?.service.map((x) => x.name).sort()).toEqual(['grpc.health.v1.Health', 'quorumkv.v1.Cluster', 'quorumkv.v1.KV']);
    expect(raft?.error_response?.error_code).toBe(grpc.status.NOT_FOUND);

    const files = (kv?.file_descriptor_response?.file_descriptor_proto ?? []).map((b) => descriptor.FileDescriptorProto.toObject(descriptor.FileDescriptorProto.decode(b)));
    const file = files.find((f) => f['package'] === 'quorumkv.v1') as
      | {
          messageType: { name: string; field?: { name: string; typeName?: string }[]; nestedType?: { name: string }[] }[];
          service: { name: string }[];
          sourceCodeInfo: { location: { path: number[]; leadingComments?: string }[] };
        }
      | undefined;
    expect(file).toBeDefined();
    const hset = file?.messageType.find((m) => m.name === 'HSetRequest');
    // grpcurl (Go's protodesc) refuses a map whose entry type is not named <Field>Entry.
    expect(hset?.nestedType?.map((n) => n.name)).toEqual(['FieldsEntry']);
    expect(hset?.field?.find((f) => f.name === 'fields')?.typeName).toBe('.quorumkv.v1.HSetRequest.FieldsEntry');
    for (const m of file?.messageType ?? []) for (const f of m.field ?? []) if (f.typeName) expect(f.typeName.startsWith('.'), `${m.name}.${f.name}`).toBe(true);
    const kvIndex = file?.service.findIndex((x) => x.name === 'KV') ?? -1;
    const getComment = file?.sourceCodeInfo.location.find((l) => l.path.join() === [6, kvIndex, 2, 0].join())?.leadingComments;
    expect(getComment).toBe(' The string value of a key (like GET).\n');
  });

  it('exposes only the requested packages', () => {
    const def = reflectionDefinition(['quorumkv.raft.v1.Raft']);
    expect(Object.keys(def).every((name) => name.startsWith('quorumkv.raft.v1.'))).toBe(true);
  });
});
