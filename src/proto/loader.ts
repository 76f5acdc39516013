/**
 * Loads the .proto files once for everyone: the client API (quorumkv.v1 KV
 * and Cluster), the peer API (quorumkv.raft.v1 Raft) and gRPC health, plus
 * what server reflection needs.
 *
 * Options: keepCase (field names as in the .proto, so `ttl_ms`, not `ttlMs`),
 * enums as their names, defaults and oneof case names filled in, and 64-bit
 * integers as JS numbers. Numbers are safe to take here because the
 * conversion cannot hide an overflow: a uint64 above 2^53 becomes a double at
 * or above 2^53, which Number.isSafeInteger refuses, so checking at the edge
 * (uint64ToNumber) catches every value the state could not hold exactly.
 *
 * Reflection: @grpc/reflection's ReflectionService serves the file
 * descriptors found in a package definition, but the ones proto-loader builds
 * (via protobufjs) carry no comments (the API reference a grpcurl user reads
 * with `grpcurl describe`) and name map entry types in a way grpcurl refuses.
 * So the descriptors handed to reflection are corrected and given
 * SourceCodeInfo from the comments protobufjs parsed (see describedFiles).
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';

/** The .proto files, relative to the include root (PROTO_DIR). */
export const PROTO_FILES = {
  kv: 'quorumkv/v1/kv.proto',
  cluster: 'quorumkv/v1/cluster.proto',
  raft: 'quorumkv/raft/v1/raft.proto',
  health: 'grpc/health/v1/health.proto',
} as const;

/** Fully qualified service names. */
export const SERVICE_NAMES = {
  kv: 'quorumkv.v1.KV',
  cluster: 'quorumkv.v1.Cluster',
  raft: 'quorumkv.raft.v1.Raft',
  health: 'grpc.health.v1.Health',
} as const;

/** The services of the client port, which reflection describes (the Raft service lives on the peer port). */
export const CLIENT_PORT_SERVICES: readonly string[] = [SERVICE_NAMES.kv, SERVICE_NAMES.cluster, SERVICE_NAMES.health];

export const KV_METHODS = [
  'Get',
  'Set',
  'Delete',
  'Exists',
  'Expire',
  'Ttl',
  'Type',
  'Keys',
  'Size',
  'Clear',
  'LPush',
  'RPush',
  'LPop',
  'RPop',
  'LIndex',
  'LSet',
  'LRange',
  'LLen',
  'HSet',
  'HGet',
  'HDel',
  'HGetAll',
  'HLen',
  'Txn',
  'Watch',
] as const;
export const CLUSTER_METHODS = [
  'Status',
  'Members',
  'AddMember',
  'RemoveMember',
  'PromoteMember',
  'TransferLeadership',
  'Snapshot',
  'Backup',
] as const;
export const RAFT_METHODS = ['Send', 'InstallSnapshot', 'Forward'] as const;
export const HEALTH_METHODS = ['Check', 'Watch'] as const;

export type KvMethod = (typeof KV_METHODS)[number];
export type ClusterMethod = (typeof CLUSTER_METHODS)[number];
export type RaftMethod = (typeof RAFT_METHODS)[number];
export type HealthMethod = (typeof HEALTH_METHODS)[number];

/** A service definition whose method names are known, so an implementation missing one fails to compile. */
export type ServiceOf<M extends string> = grpc.ServiceDefinition<Record<M, grpc.UntypedHandleCall>>;
/** An implementation for server.addService(service, implementation). */
export type ImplementationOf<M extends string> = Record<M, grpc.UntypedHandleCall>;

export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

export interface FileDescriptor {
  /** The proto package, e.g. quorumkv.v1. */
  readonly packageName: string;
  /** An encoded google.protobuf.FileDescriptorProto. */
  readonly bytes: Buffer;
}

export interface Protos {
  /** Every service, message and enum of the four files, for grpc-js. */
  readonly packageDefinition: protoLoader.PackageDefinition;
  readonly kv: ServiceOf<KvMethod>;
  readonly cluster: ServiceOf<ClusterMethod>;
  readonly raft: ServiceOf<RaftMethod>;
  readonly health: ServiceOf<HealthMethod>;
  /** Client constructors: `new protos.clients.kv(address, credentials)`. */
  readonly clients: {
    readonly kv: grpc.ServiceClientConstructor;
    readonly cluster: grpc.ServiceClientConstructor;
    readonly raft: grpc.ServiceClientConstructor;
    readonly health: grpc.ServiceClientConstructor;
  };
}

/** A uint64/int64 field whose value the server cannot hold exactly. Maps to INVALID_ARGUMENT. */
export class ProtoRangeError extends RangeError {
  readonly code = 'INVALID_ARGUMENT';
  constructor(message: string) {
    super(message);
    this.name = 'ProtoRangeError';
  }
}

/**
 * A 64-bit field as a plain number, refusing what is not a safe integer at
 * least `min` (0 for uint64; pass -Number.MAX_SAFE_INTEGER for signed fields).
 * Accepts a decimal string too, for callers that hold one.
 */
export function uint64ToNumber(value: number | string, field: string, min = 0): number {
  const n = typeof value === 'number' ? value : /^-?\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new ProtoRangeError(`${field} must be an integer from ${min} to ${Number.MAX_SAFE_INTEGER} (got ${String(value)})`);
  }
  return n;
}

let loaded: Protos | undefined;
let described: readonly FileDescriptor[] | undefined;

/** The encoded FileDescriptorProtos with comments, one per package (protobufjs merges the files of a package): for reflection only, so made on first use. */
function describedFileDescriptors(): readonly FileDescriptor[] {
  described ??= describedFiles(loadProtos().packageDefinition, Object.values(PROTO_FILES));
  return described;
}

/** The .proto include root: found from this module's location (source or build tree), never from the cwd. */
export const PROTO_DIR: string = findProtoDir(path.dirname(fileURLToPath(import.meta.url)));

function findProtoDir(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'proto');
    if (fs.existsSync(path.join(candidate, PROTO_FILES.kv))) return candidate;
    if (path.dirname(dir) === dir) {
      // Resolved lazily by loadProtos(), which reports the problem; a constant keeps imports side-effect free.
      return path.join(start, '..', '..', 'proto');
    }
  }
}

/** Loads (once) and returns every service; throws naming the file when a .proto is missing or invalid. */
export function loadProtos(): Protos {
  loaded ??= load();
  return loaded;
}

/**
 * A reflection service (grpc.reflection.v1 and v1alpha both) describing
 * `services` with their comments; add it to the client-port server.
 */
export function createReflectionService(services: readonly string[] = CLIENT_PORT_SERVICES): ReflectionService {
  return new ReflectionService(reflectionDefinition(services), { services: [...services] });
}

/**
 * Adds createReflectionService(services) to `server`, built on the first
 * reflection call instead of now: indexing the descriptors costs ~130 ms of
 * CPU, a quarter of a node's start (and of each client thread's), and most
 * processes are never asked.
 */
export function addReflection(server: Pick<grpc.Server, 'addService'>, services: readonly string[] = CLIENT_PORT_SERVICES): void {
  let built: Map<string, grpc.UntypedServiceImplementation> | null = null;
  const implementationOf = (service: string): grpc.UntypedServiceImplementation => {
    if (built === null) {
      const handlers = new Map<string, grpc.UntypedServiceImplementation>();
      createReflectionService(services).addToServer(capturingServer((definition, implementation) => handlers.set(serviceName(definition), implementation)));
      built = handlers;
    }
    const implementation = built.get(service);
    if (implementation === undefined) throw new Error(`reflection has no service ${service}`);
    return implementation;
  };
  // An instance over no package indexes nothing: it is here only for the two services' definitions.
  new ReflectionService({}, {}).addToServer(
    capturingServer((definition, implementation) => {
      const service = serviceName(definition);
      const lazy: grpc.UntypedServiceImplementation = {};
      for (const method of Object.keys(implementation)) {
        lazy[method] = ((...args: unknown[]) => (implementationOf(service)[method] as (...a: unknown[]) => void)(...args)) as grpc.UntypedHandleCall;
      }
      server.addService(definition, lazy);
    }),
  );
}

/** A stand-in server that hands each addService() to `add`. */
function capturingServer(add: (definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation) => void): grpc.Server {
  return { addService: add } as unknown as grpc.Server;
}

/** A service's full name, from the path of its first method ('/pkg.Service/Method'). */
function serviceName(definition: grpc.ServiceDefinition): string {
  const first = Object.values(definition)[0];
  if (first === undefined) throw new Error('a service definition without methods');
  return first.path.slice(1, first.path.lastIndexOf('/'));
}

/**
 * The package definition reflection should see for `services`: only their
 * packages (the `services` option alone hides a service from the list but
 * still answers for its symbols), with the commented descriptors.
 */
export function reflectionDefinition(services: readonly string[] = CLIENT_PORT_SERVICES): protoLoader.PackageDefinition {
  const { packageDefinition } = loadProtos();
  const packages = new Set(services.map((name) => name.slice(0, name.lastIndexOf('.'))));
  const files = describedFileDescriptors().filter((file) => packages.has(file.packageName)).map((file) => file.bytes);
  const definition: protoLoader.PackageDefinition = {};
  for (const [name, value] of Object.entries(packageDefinition)) {
    if (!packages.has(name.slice(0, name.lastIndexOf('.')))) continue;
    definition[name] = isTypeDefinition(value) ? { ...value, fileDescriptorProtos: files } : value;
  }
  return definition;
}

function load(): Protos {
  const files = Object.values(PROTO_FILES);
  for (const file of files) {
    const full = path.join(PROTO_DIR, file);
    if (!fs.existsSync(full)) throw new Error(`proto file ${full} is missing (looked for the proto/ folder above ${fileURLToPath(import.meta.url)})`);
  }
  const packageDefinition = protoLoader.loadSync(files, { ...LOADER_OPTIONS, includeDirs: [PROTO_DIR] });
  const grpcObject = grpc.loadPackageDefinition(packageDefinition);
  return {
    packageDefinition,
    kv: serviceOf(packageDefinition, SERVICE_NAMES.kv, KV_METHODS),
    cluster: serviceOf(packageDefinition, SERVICE_NAMES.cluster, CLUSTER_METHODS),
    raft: serviceOf(packageDefinition, SERVICE_NAMES.raft, RAFT_METHODS),
    health: serviceOf(packageDefinition, SERVICE_NAMES.health, HEALTH_METHODS),
    clients: {
      kv: clientOf(grpcObject, SERVICE_NAMES.kv),
      cluster: clientOf(grpcObject, SERVICE_NAMES.cluster),
      raft: clientOf(grpcObject, SERVICE_NAMES.raft),
      health: clientOf(grpcObject, SERVICE_NAMES.health),
    },
  };
}

/** The named service, checked to have exactly the expected methods (so the exported types cannot drift from the .proto). */
function serviceOf<M extends string>(definition: protoLoader.PackageDefinition, name: string, methods: readonly M[]): ServiceOf<M> {
  const service = definition[name];
  if (service === undefined || isTypeDefinition(service)) throw new Error(`${name} is not a service in the loaded protos`);
  const actual = Object.keys(service).sort();
  const expected = [...methods].sort();
  if (actual.join() !== expected.join()) throw new Error(`${name} has methods ${actual.join(', ')}; this build expects ${expected.join(', ')}`);
  return service as unknown as ServiceOf<M>;
}

function clientOf(root: grpc.GrpcObject, name: string): grpc.ServiceClientConstructor {
  let node: unknown = root;
  for (const part of name.split('.')) node = (node as Record<string, unknown> | undefined)?.[part];
  if (typeof node !== 'function' || !('service' in node)) throw new Error(`${name} is not a service in the loaded protos`);
  return node as grpc.ServiceClientConstructor;
}

// --- reflection descriptors ------------------------------------------------

/** The small part of protobufjs's reflection API used here (protobufjs is proto-loader's own dependency). */
interface PbObject {
  readonly comment: string | null;
}
interface PbField extends PbObject {
  readonly map?: boolean;
  readonly resolvedType: { readonly fullName: string } | null;
}
interface PbType extends PbObject {
  readonly fields: Readonly<Record<string, PbField>>;
  readonly oneofs?: Readonly<Record<string, PbObject>>;
}
interface PbEnum extends PbObject {
  readonly comments: Readonly<Record<string, string | null | undefined>>;
}
interface PbService extends PbObject {
  readonly methods: Readonly<Record<string, PbObject>>;
}
interface PbRoot {
  resolvePath: (origin: string, target: string) => string;
  loadSync(files: string[], options: { keepCase: boolean; alternateCommentMode: boolean }): PbRoot;
  resolveAll(): PbRoot;
  lookup(name: string): PbObject | null;
}
interface Named {
  name?: string | null;
}
interface FieldDesc extends Named {
  typeName?: string | null;
  jsonName?: string | null;
}
interface MessageDesc extends Named {
  readonly field?: FieldDesc[];
  readonly nestedType?: MessageDesc[];
  readonly enumType?: readonly EnumDesc[];
  readonly oneofDecl?: readonly Named[];
}
interface EnumDesc extends Named {
  readonly value?: readonly Named[];
}
interface ServiceDesc extends Named {
  readonly method?: readonly Named[];
}
interface FileDesc extends Named {
  readonly package?: string | null;
  readonly messageType?: readonly MessageDesc[];
  readonly enumType?: readonly EnumDesc[];
  readonly service?: readonly ServiceDesc[];
}
interface Location {
  path: number[];
  span: number[];
  leadingComments: string;
}
interface PbMessageType<T> {
  decode(bytes: Uint8Array): T;
  toObject(message: T): Record<string, unknown>;
  fromObject(object: Record<string, unknown>): T;
  encode(message: T): { finish(): Uint8Array };
}
interface DescriptorNamespace {
  readonly FileDescriptorProto: PbMessageType<FileDesc>;
}

// Field numbers in google/protobuf/descriptor.proto, which SourceCodeInfo paths are made of.
const FILE_MESSAGE_TYPE = 4;
const FILE_ENUM_TYPE = 5;
const FILE_SERVICE = 6;
const MESSAGE_FIELD = 2;
const MESSAGE_NESTED_TYPE = 3;
const MESSAGE_ENUM_TYPE = 4;
const MESSAGE_ONEOF_DECL = 8;
const ENUM_VALUE = 2;
const SERVICE_METHOD = 2;

/** protoc's name for a map field's entry type: `data_map` -> `DataMapEntry`. */
function mapEntryName(field: string): string {
  return `${field.replace(/(?:^|_)([a-z0-9]?)/gi, (_match, c: string) => c.toUpperCase())}Entry`;
}

/** protoc's default JSON name: `ttl_ms` -> `ttlMs`. */
function jsonName(field: string): string {
  return field.replace(/_([a-z0-9]?)/gi, (_match, c: string) => c.toUpperCase());
}

/**
 * proto-loader's file descriptors, corrected the way protoc would write them
 * and with SourceCodeInfo holding every comment. protobufjs names a map's
 * entry type `Fields` where protoc says `FieldsEntry`, and grpcurl (Go's
 * protodesc) refuses the whole file over it ("incorrect implicit map entry
 * name"); it also writes type references relative to the scope, which protoc
 * never does, so they are made fully qualified.
 */
function describedFiles(definition: protoLoader.PackageDefinition, files: readonly string[]): FileDescriptor[] {
  const first = Object.values(definition).find(isTypeDefinition);
  if (first === undefined) throw new Error('the loaded protos hold no message type');
  // The same protobufjs instance proto-loader used, whatever the install layout.
  const requireFromLoader = createRequire(createRequire(import.meta.url).resolve('@grpc/proto-loader'));
  const protobuf = requireFromLoader('protobufjs') as { Root: new () => PbRoot };
  const descriptor = requireFromLoader('protobufjs/ext/descriptor') as DescriptorNamespace;

  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTO_DIR, target));
  root.loadSync([...files], { keepCase: true, alternateCommentMode: true });
  root.resolveAll();

  return first.fileDescriptorProtos.map((bytes) => {
    const file = descriptor.FileDescriptorProto.decode(bytes);
    const locations: Location[] = [];
    const prefix = file.package ? `${file.package}.` : '';
    const add = (pathParts: number[], comment: string | null | undefined): void => {
      if (!comment) return;
      const leadingComments = comment
        .split('\n')
        .map((line) => ` ${line}`)
        .join('\n');
      // protobufjs records no positions; Go's protodesc accepts any three-element span.
      locations.push({ path: pathParts, span: [0, 0, 0], leadingComments: `${leadingComments}\n` });
    };
    const visitEnum = (e: EnumDesc, fullName: string, at: number[]): void => {
      const pbEnum = root.lookup(fullName) as PbEnum | null;
      if (pbEnum === null) return;
      add(at, pbEnum.comment);
      (e.value ?? []).forEach((v, i) => add([...at, ENUM_VALUE, i], pbEnum.comments[v.name ?? '']));
    };
    const visitMessage = (m: MessageDesc, fullName: string, at: number[]): void => {
      const pbType = root.lookup(fullName) as PbType | null;
      if (pbType === null) return; // a map entry: synthesized, nothing to correct or comment
      add(at, pbType.comment);
      (m.field ?? []).forEach((f, i) => {
        const name = f.name ?? '';
        const pbField = pbType.fields[name];
        f.jsonName = jsonName(name);
        if (pbField?.map === true) {
          const entry = (m.nestedType ?? []).find((n) => n.name === f.typeName);
          if (entry === undefined) throw new Error(`map field ${fullName}.${name} has no entry type in its descriptor`);
          entry.name = mapEntryName(name);
          for (const entryField of entry.field ?? []) entryField.jsonName = jsonName(entryField.name ?? '');
          f.typeName = `.${fullName}.${entry.name}`;
        } else if (pbField?.resolvedType) {
          f.typeName = pbField.resolvedType.fullName;
        }
        add([...at, MESSAGE_FIELD, i], pbField?.comment);
      });
      (m.oneofDecl ?? []).forEach((o, i) => add([...at, MESSAGE_ONEOF_DECL, i], pbType.oneofs?.[o.name ?? '']?.comment));
      (m.nestedType ?? []).forEach((n, i) => visitMessage(n, `${fullName}.${n.name ?? ''}`, [...at, MESSAGE_NESTED_TYPE, i]));
      (m.enumType ?? []).forEach((e, i) => visitEnum(e, `${fullName}.${e.name ?? ''}`, [...at, MESSAGE_ENUM_TYPE, i]));
    };
    (file.messageType ?? []).forEach((m, i) => visitMessage(m, `${prefix}${m.name ?? ''}`, [FILE_MESSAGE_TYPE, i]));
    (file.enumType ?? []).forEach((e, i) => visitEnum(e, `${prefix}${e.name ?? ''}`, [FILE_ENUM_TYPE, i]));
    (file.service ?? []).forEach((s, i) => {
      const pbService = root.lookup(`${prefix}${s.name ?? ''}`) as PbService | null;
      if (pbService === null) return;
      add([FILE_SERVICE, i], pbService.comment);
      (s.method ?? []).forEach((m, j) => add([FILE_SERVICE, i, SERVICE_METHOD, j], pbService.methods[m.name ?? '']?.comment));
    });
    const object = descriptor.FileDescriptorProto.toObject(file);
    object['sourceCodeInfo'] = { location: locations };
    const encoded = descriptor.FileDescriptorProto.encode(descriptor.FileDescriptorProto.fromObject(object)).finish();
    return { packageName: file.package ?? '', bytes: Buffer.from(encoded) };
  });
}

/** Messages and enums carry a `format` and their file descriptors; services (records of methods) do not. */
function isTypeDefinition(value: protoLoader.AnyDefinition): value is Exclude<protoLoader.AnyDefinition, protoLoader.ServiceDefinition> {
  return typeof (value as { format?: unknown }).format === 'string';
}
