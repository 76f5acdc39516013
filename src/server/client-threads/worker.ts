/**
 * One client thread: a grpc-js server on the shared client port that does the
 * HTTP/2 and TLS work and none of the protobuf work. Every method of KV,
 * Cluster and Health is registered with identity (de)serializers and passed
 * to the main thread as raw bytes (see protocol.ts); reflection, being
 * static, is answered here.
 *
 * The listening socket: the first worker opens it and hands its fd to the
 * main thread, the others listen on that same fd, and the kernel spreads new
 * connections over them. Every worker accepts with its own net.Server and
 * injects the sockets into grpc-js.
 */
import * as net from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';
import * as grpc from '@grpc/grpc-js';
import { addReflection, loadProtos } from '../../proto/loader.ts';
import { NodeTls } from '../../tls/node-tls.ts';
import { Http2GrpcServer } from '../../transport/http2/grpc-server.ts';
import { FORWARDED_METADATA, REPLY_FIELDS, ReplyKind, clientMethods, packBytes } from './protocol.ts';
import type { CallBatch, ConnectionFacts, MainToWorker, ReplyBatch, StatusReply, WorkerSettings, WorkerToMain } from './protocol.ts';

interface Connection {
  readonly id: number;
  /** null for a connection first seen in a call (not at accept). */
  readonly socket: net.Socket | null;
  announced: boolean;
}

type UnaryCallback = grpc.sendUnaryData<Buffer>;

const port = parentPort;
if (port === null) throw new Error('client-threads/worker.ts runs only as a worker thread');
const settings = workerData.settings as WorkerSettings;
const post = (message: WorkerToMain, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

const identity = (bytes: Buffer): Buffer => bytes;
const protos = loadProtos();
const methods = clientMethods(protos);
const server = new Http2GrpcServer({
  maxReceiveBytes: settings.serverOptions['grpc.max_receive_message_length'] as number | undefined,
  maxSendBytes: settings.serverOptions['grpc.max_send_message_length'] as number | undefined,
  limits: { maxConcurrentStreams: (settings.serverOptions['grpc.max_concurrent_streams'] as number | undefined) ?? 100 },
});

/** Connections by their peer address, which is what a call tells (call.getPeer()). */
const connections = new Map<string, Connection>();
let nextConnectionId = 1;
let nextCallId = 1;
const unaryCalls = new Map<number, UnaryCallback>();
const streamCalls = new Map<number, grpc.ServerWritableStream<Buffer, Buffer>>();

// ---- Outgoing: one batch per event-loop turn ----------------------------------

let calls: number[] = [];
let metadata: (string | null)[][] = [];
let announced: ConnectionFacts[] = [];
let closed: number[] = [];
let cancels: number[] = [];
let acks: number[] = [];
let requests: Buffer[] = [];
let requestBytes = 0;
let flushScheduled = false;

function scheduleFlush(): void {
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(flush);
}

function flush(): void {
  flushScheduled = false;
  const data = packBytes(requests, requestBytes);
  const batch: CallBatch = { type: 'calls', calls, metadata, connections: announced, closed, cancels, acks, data };
  calls = [];
  metadata = [];
  announced = [];
  closed = [];
  cancels = [];
  acks = [];
  requests = [];
  requestBytes = 0;
  post(batch, data === null ? [] : [data]);
}

function enqueueCall(id: number, method: number, call: grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer>): void {
  const connection = connectionOf(call);
  const deadline = call.getDeadline();
  let metadataIndex = -1;
  const values = FORWARDED_METADATA.map((key) => {
    const [value] = call.metadata.get(key);
    return typeof value === 'string' ? value : null;
  });
  if (values.some((value) => value !== null)) {
    metadataIndex = metadata.length;
    metadata.push(values);
  }
  const request = call.request;
  calls.push(id, method, connection, deadline instanceof Date ? deadline.getTime() : deadline, request.length, metadataIndex);
  requests.push(request);
  requestBytes += request.length;
  scheduleFlush();
}

/** The call's connection id; the first call of a connection also sends what the main thread keeps of it. */
function connectionOf(call: grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer>): number {
  const peer = call.getPeer();
  let connection = connections.get(peer);
  if (connection === undefined) {
    // Not seen at accept (should not happen): tracked from here on.
    connection = { id: nextConnectionId++, socket: null, announced: false };
    connections.set(peer, connection);
  }
  if (!connection.announced) {
    connection.announced = true;
    const certificate = (call.getAuthContext() as { sslPeerCertificate?: PeerCertificate }).sslPeerCertificate ?? null;
    announced.push({ id: connection.id, peer, certificate });
  }
  return connection.id;
}

// ---- The gRPC server ------------------------------------------------------------

for (const [index, method] of methods.entries()) {
  const definition = { ...method.definition, requestDeserialize: identity, responseSerialize: identity } as grpc.MethodDefinition<Buffer, Buffer>;
  const handler = method.definition.responseStream
    ? (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
        const id = nextCallId++;
        streamCalls.set(id, call);
        call.on('cancelled', () => {
          if (!streamCalls.delete(id)) return;
          cancels.push(id);
          scheduleFlush();
        });
        enqueueCall(id, index, call);
      }
    : (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: UnaryCallback) => {
        const id = nextCallId++;
        unaryCalls.set(id, callback);
        enqueueCall(id, index, call);
      };
  server.addService({ [method.name]: definition } as grpc.ServiceDefinition, { [method.name]: handler as grpc.UntypedHandleCall });
}
addReflection(server);

const tls = settings.tls === null ? null : NodeTls.load(settings.tls.files, settings.tls.nodeId);
const tlsOptions = tls === null ? null : { material: () => tls.material, requireClientCertificate: settings.tls?.requireClientCertificate ?? false };

let draining = false;
const listener = net.createServer((socket) => {
  if (draining) {
    socket.destroy();
    return;
  }
  const peer = `${socket.remoteAddress}:${socket.remotePort}`;
  const connection: Connection = { id: nextConnectionId++, socket, announced: false };
  connections.set(peer, connection);
  socket.once('close', () => {
    if (connections.get(peer) === connection) connections.delete(peer);
    if (connection.announced) {
      closed.push(connection.id);
      scheduleFlush();
    }
  });
  socket.setNoDelay(true);
  if (tlsOptions === null) server.serve(socket);
  else server.serveTls(socket, tlsOptions);
});
let listeningNow = false;
// Before listening an error (port taken) fails the start; after, one failed accept (EMFILE) is logged, as grpc-js's own server would go on.
listener.on('error', (error) => post(listeningNow ? { type: 'warning', message: error.message } : { type: 'failed', message: error.message }));
const listening = (): void => {
  listeningNow = true;
  const address = listener.address() as net.AddressInfo;
  const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
  post({ type: 'listening', port: address.port, fd });
};
// The first worker opens the port; the others are told its fd once it has ('listen').
if (settings.index === 0) listener.listen({ host: settings.host, port: settings.port }, listening);

// ---- Incoming: answers and orders from the main thread ----------------------------

port.on('message', (message: MainToWorker) => {
  switch (message.type) {
    case 'replies':
      deliver(message);
      break;
    case 'reload':
      reloadTls();
      break;
    case 'drain':
      drain(message.graceMs);
      break;
    case 'listen':
      listener.listen({ fd: message.fd }, listening);
      break;
  }
});

function deliver(batch: ReplyBatch): void {
  const { replies, statuses, data } = batch;
  let offset = 0;
  let status = 0;
  for (let i = 0; i < replies.length; i += REPLY_FIELDS) {
    const id = replies[i] as number;
    const kind = replies[i + 1] as ReplyKind;
    const length = replies[i + 2] as number;
    const bytes = length === 0 || data === null ? Buffer.alloc(0) : Buffer.from(data, offset, length);
    offset += length;
    switch (kind) {
      case ReplyKind.Unary: {
        const callback = unaryCalls.get(id);
        unaryCalls.delete(id);
        callback?.(null, bytes);
        break;
      }
      case ReplyKind.StreamMessage: {
        const call = streamCalls.get(id);
        call?.write(bytes, () => {
          acks.push(id, length);
          scheduleFlush();
        });
        break;
      }
      case ReplyKind.StreamEnd: {
        const call = streamCalls.get(id);
        streamCalls.delete(id);
        call?.end();
        break;
      }
      case ReplyKind.Status: {
        const error = toServiceError(statuses[status++] as StatusReply);
        const callback = unaryCalls.get(id);
        if (callback !== undefined) {
          unaryCalls.delete(id);
          callback(error);
          break;
        }
        const call = streamCalls.get(id);
        streamCalls.delete(id);
        call?.emit('error', error);
        break;
      }
    }
  }
}

function toServiceError(reply: StatusReply): grpc.ServerErrorResponse {
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(reply.metadata)) metadata.set(key, value);
  return Object.assign(new Error(reply.details), { code: reply.code, details: reply.details, metadata });
}

/** SIGHUP reached the main thread: new handshakes here use the re-read files (a failure keeps the old ones). */
function reloadTls(): void {
  if (tls === null) return;
  try {
    const { serialNumber } = tls.reload();
    post({ type: 'reloaded', ok: true, serialNumber });
  } catch (error) {
    post({ type: 'reloaded', ok: false, error: (error as Error).message });
  }
}

/**
 * Refuses new connections, lets calls in flight finish for `graceMs`, then
 * cuts what is left. The listening socket stays open (and refusing) until the
 * process ends: the workers share its one fd, and a worker that closed it
 * would leave the fd number to be reused while the others still hold it.
 */
function drain(graceMs: number): void {
  draining = true;
  void server.close(graceMs);
  const cut = setTimeout(() => {
    for (const { socket } of connections.values()) socket?.destroy();
  }, graceMs + 500);
  const poll = setInterval(() => {
    if ([...connections.values()].some(({ socket }) => socket !== null && !socket.destroyed)) return;
    clearInterval(poll);
    clearTimeout(cut);
    if (flushScheduled) flush();
    post({ type: 'drained' });
  }, 20);
}
