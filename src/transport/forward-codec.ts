/**
 * The Forward stream's messages (raft.proto: ForwardedCalls, ForwardedReplies),
 * hand-written like the rest of the peer wire format: each batch is encoded
 * into one exactly sized buffer, and decoded requests and responses are views
 * of the received buffer. test/unit/transport checks them against protobufjs.
 */
import { expectEnd } from './codec.ts';
import { lengthFieldSize, Reader, uintFieldSize, utf8Length, WIRE_LENGTH_DELIMITED, WIRE_VARINT, Writer } from './wire.ts';

export interface ForwardedCall {
  readonly id: number;
  /** The gRPC method path, e.g. /quorumkv.v1.KV/Set. */
  readonly method: string;
  readonly timeoutMs: number;
  readonly request: Uint8Array;
  /** The user the follower authenticated; '' when authentication is off. */
  readonly user: string;
  /** The client's authorization header; '' when it sent none. */
  readonly authorization: string;
}

export interface ForwardedReply {
  readonly id: number;
  /** gRPC status code; 0: `response` is the answer. */
  readonly code: number;
  readonly response: Uint8Array;
  readonly details: string;
  readonly trailers: Readonly<Record<string, string>>;
}

/**
 * Bytes of requests (or responses) one ForwardedCalls (or ForwardedReplies)
 * message carries before the rest go in another: the peer server refuses
 * messages above 64 MiB (TransportTuning.maxReceiveBytes), and a turn's calls
 * can add up to more. One item larger than this still goes, alone.
 */
export const FORWARD_BATCH_BYTES = 4 * 1024 * 1024;

/** `items` in order, cut into runs whose `bytes` add up to at most FORWARD_BATCH_BYTES (a larger item alone). */
export function forwardBatches<T>(items: readonly T[], bytes: (item: T) => number): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    const itemBytes = bytes(item);
    if (current.length > 0 && size + itemBytes > FORWARD_BATCH_BYTES) {
      batches.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += itemBytes;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

// ForwardedCalls / ForwardedReplies
const BATCH_ITEMS = 1;
// ForwardedCall
const CALL_ID = 1;
const CALL_METHOD = 2;
const CALL_TIMEOUT_MS = 3;
const CALL_REQUEST = 4;
const CALL_USER = 5;
const CALL_AUTHORIZATION = 6;
// ForwardedReply
const REPLY_ID = 1;
const REPLY_CODE = 2;
const REPLY_RESPONSE = 3;
const REPLY_DETAILS = 4;
const REPLY_TRAILERS = 5;
// Trailer
const TRAILER_KEY = 1;
const TRAILER_VALUE = 2;

const tagOf = (field: number, wireType: number): number => (field << 3) | wireType;
const stringFieldSize = (byteLength: number): number => (byteLength === 0 ? 0 : lengthFieldSize(byteLength));

export function encodeForwardedCalls(calls: readonly ForwardedCall[]): Buffer {
  const lengths = calls.map((c) => [utf8Length(c.method), utf8Length(c.user), utf8Length(c.authorization)] as const);
  const sizes = calls.map((c, i) => {
    const [method, user, authorization] = lengths[i] as readonly [number, number, number];
    return (
      uintFieldSize(c.id) +
      stringFieldSize(method) +
      uintFieldSize(c.timeoutMs) +
      stringFieldSize(c.request.length) +
      stringFieldSize(user) +
      stringFieldSize(authorization)
    );
  });
  const w = Writer.alloc(sizes.reduce((sum, size) => sum + lengthFieldSize(size), 0));
  calls.forEach((c, i) => {
    const [method, user, authorization] = lengths[i] as readonly [number, number, number];
    w.lengthDelimited(BATCH_ITEMS, sizes[i] as number);
    w.uint(CALL_ID, c.id, 'call id');
    w.string(CALL_METHOD, c.method, method);
    w.uint(CALL_TIMEOUT_MS, c.timeoutMs, 'call timeout');
    w.bytes(CALL_REQUEST, c.request);
    w.string(CALL_USER, c.user, user);
    w.string(CALL_AUTHORIZATION, c.authorization, authorization);
  });
  return w.finish();
}

/** Throws MalformedMessageError. Requests are views of `bytes`. */
export function decodeForwardedCalls(bytes: Uint8Array): ForwardedCall[] {
  return readItems(bytes, 'forwarded call', readCall);
}

export function encodeForwardedReplies(replies: readonly ForwardedReply[]): Buffer {
  const encodedTrailers = replies.map((reply) =>
    Object.entries(reply.trailers).map(([key, value]) => {
      const keyLength = utf8Length(key);
      const valueLength = utf8Length(value);
      return { key, value, keyLength, valueLength, size: stringFieldSize(keyLength) + stringFieldSize(valueLength) };
    }),
  );
  const detailLengths = replies.map((reply) => utf8Length(reply.details));
  const sizes = replies.map(
    (reply, i) =>
      uintFieldSize(reply.id) +
      uintFieldSize(reply.code) +
      stringFieldSize(reply.response.length) +
      stringFieldSize(detailLengths[i] as number) +
      (encodedTrailers[i] ?? []).reduce((sum, t) => sum + lengthFieldSize(t.size), 0),
  );
  const w = Writer.alloc(sizes.reduce((sum, size) => sum + lengthFieldSize(size), 0));
  replies.forEach((reply, i) => {
    w.lengthDelimited(BATCH_ITEMS, sizes[i] as number);
    w.uint(REPLY_ID, reply.id, 'reply id');
    w.uint(REPLY_CODE, reply.code, 'status code');
    w.bytes(REPLY_RESPONSE, reply.response);
    w.string(REPLY_DETAILS, reply.details, detailLengths[i] as number);
    for (const t of encodedTrailers[i] ?? []) {
      w.lengthDelimited(REPLY_TRAILERS, t.size);
      w.string(TRAILER_KEY, t.key, t.keyLength);
      w.string(TRAILER_VALUE, t.value, t.valueLength);
    }
  });
  return w.finish();
}

/** Throws MalformedMessageError. Responses are views of `bytes`. */
export function decodeForwardedReplies(bytes: Uint8Array): ForwardedReply[] {
  return readItems(bytes, 'forwarded reply', readReply);
}

function readItems<T>(bytes: Uint8Array, what: string, readItem: (r: Reader, end: number) => T): T[] {
  const r = new Reader(bytes);
  const end = r.length;
  const items: T[] = [];
  while (r.pos < end) {
    const tag = r.uint32(`${what} batch tag`);
    if (tag === tagOf(BATCH_ITEMS, WIRE_LENGTH_DELIMITED)) {
      const itemEnd = r.lengthDelimitedEnd(what, end);
      items.push(readItem(r, itemEnd));
      expectEnd(r, itemEnd, what);
    } else {
      r.skip(tag & 7, `${what} batch`, end);
    }
  }
  return items;
}

function readCall(r: Reader, end: number): ForwardedCall {
  let id = 0;
  let method = '';
  let timeoutMs = 0;
  let request: Uint8Array = new Uint8Array(0);
  let user = '';
  let authorization = '';
  while (r.pos < end) {
    const tag = r.uint32('forwarded call tag');
    switch (tag) {
      case tagOf(CALL_ID, WIRE_VARINT):
        id = r.uint64('call id');
        break;
      case tagOf(CALL_METHOD, WIRE_LENGTH_DELIMITED):
        method = r.string('call method', end);
        break;
      case tagOf(CALL_TIMEOUT_MS, WIRE_VARINT):
        timeoutMs = r.uint64('call timeout');
        break;
      case tagOf(CALL_REQUEST, WIRE_LENGTH_DELIMITED):
        request = r.bytes('call request', end);
        break;
      case tagOf(CALL_USER, WIRE_LENGTH_DELIMITED):
        user = r.string('call user', end);
        break;
      case tagOf(CALL_AUTHORIZATION, WIRE_LENGTH_DELIMITED):
        authorization = r.string('call authorization', end);
        break;
      default:
        r.skip(tag & 7, 'forwarded call', end);
    }
  }
  return { id, method, timeoutMs, request, user, authorization };
}

function readReply(r: Reader, end: number): ForwardedReply {
  let id = 0;
  let code = 0;
  let response: Uint8Array = new Uint8Array(0);
  let details = '';
  // No prototype: a trailer may be named __proto__, which `{}[key] = value` would not store.
  const trailers = Object.create(null) as Record<string, string>;
  while (r.pos < end) {
    const tag = r.uint32('forwarded reply tag');
    switch (tag) {
      case tagOf(REPLY_ID, WIRE_VARINT):
        id = r.uint64('reply id');
        break;
      case tagOf(REPLY_CODE, WIRE_VARINT):
        code = r.uint32('status code');
        break;
      case tagOf(REPLY_RESPONSE, WIRE_LENGTH_DELIMITED):
        response = r.bytes('reply response', end);
        break;
      case tagOf(REPLY_DETAILS, WIRE_LENGTH_DELIMITED):
        details = r.string('reply details', end);
        break;
      case tagOf(REPLY_TRAILERS, WIRE_LENGTH_DELIMITED): {
        const trailerEnd = r.lengthDelimitedEnd('trailer', end);
        let key = '';
        let value = '';
        while (r.pos < trailerEnd) {
          const trailerTag = r.uint32('trailer tag');
          if (trailerTag === tagOf(TRAILER_KEY, WIRE_LENGTH_DELIMITED)) key = r.string('trailer key', trailerEnd);
          else if (trailerTag === tagOf(TRAILER_VALUE, WIRE_LENGTH_DELIMITED)) value = r.string('trailer value', trailerEnd);
          else r.skip(trailerTag & 7, 'trailer', trailerEnd);
        }
        expectEnd(r, trailerEnd, 'trailer');
        trailers[key] = value;
        break;
      }
      default:
        r.skip(tag & 7, 'forwarded reply', end);
    }
  }
  return { id, code, response, details, trailers };
}
