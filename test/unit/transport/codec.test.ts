/**
 * The hand-written raft.proto codec: every Message variant round-trips, the
 * bytes are what protobufjs reading raft.proto makes of them (both ways),
 * 64-bit fields stay safe integers, and malformed input is refused with
 * MalformedMessageError rather than anything else.
 */
import type * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Entry, Message, NodeId } from '../../../src/raft/index.ts';
import { loadProtos } from '../../../src/proto/loader.ts';
import {
  decodeBatch,
  decodeMessage,
  decodeSnapshotAck,
  decodeSnapshotChunk,
  encodeBatch,
  encodeBatches,
  encodeMessage,
  encodeSnapshotAck,
  encodeSnapshotChunk,
} from '../../../src/transport/codec.ts';
import { MalformedMessageError } from '../../../src/transport/errors.ts';
import { decodeForwardedCalls, decodeForwardedReplies, encodeForwardedCalls, encodeForwardedReplies } from '../../../src/transport/forward-codec.ts';
import { Reader, varintSize, Writer } from '../../../src/transport/wire.ts';

const definition = loadProtos().packageDefinition;
function codec(name: string): protoLoader.MessageTypeDefinition<object, object> {
  const d = definition[name];
  if (d === undefined || !('format' in d) || d.format !== 'Protocol Buffer 3 DescriptorProto') throw new Error(`${name} is not a message`);
  return d as protoLoader.MessageTypeDefinition<object, object>;
}
const pbBatch = codec('quorumkv.raft.v1.MessageBatch');
const pbMessage = codec('quorumkv.raft.v1.Message');
const pbChunk = codec('quorumkv.raft.v1.SnapshotChunk');

// --- generators ---------------------------------------------------------

const u64 = fc.oneof(
  fc.constantFrom(0, 1, 127, 128, 16383, 16384, 2 ** 28 - 1, 2 ** 28, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35, 2 ** 49, 2 ** 52, Number.MAX_SAFE_INTEGER),
  fc.nat(),
  fc.maxSafeNat(),
);
const nodeId = fc.oneof(fc.constantFrom('n1', 'n2', 'n3', 'node-with-a-long-name', 'nœud-é', '節点'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }));
const entry: fc.Arbitrary<Entry> = fc.record({
  index: u64,
  term: u64,
  type: fc.constantFrom('normal' as const, 'noop' as const, 'config' as const),
  data: fc.uint8Array({ maxLength: 40 }),
});
const confState = fc.record({ voters: fc.array(nodeId, { maxLength: 5 }), learners: fc.array(nodeId, { maxLength: 3 }) });

function messageOf(from: NodeId, to: NodeId): fc.Arbitrary<Message> {
  const env = { from: fc.constant(from), to: fc.constant(to), term: u64 };
  return fc.oneof(
    fc.record({ ...env, type: fc.constantFrom('preVote' as const, 'vote' as const), lastLogIndex: u64, lastLogTerm: u64, leaderTransfer: fc.boolean() }),
    fc.record({ ...env, type: fc.constantFrom('preVoteResp' as const, 'voteResp' as const), reject: fc.boolean() }),
    fc.record({ ...env, type: fc.constant('append' as const), prevIndex: u64, prevTerm: u64, entries: fc.array(entry, { maxLength: 6 }), commit: u64 }),
    fc.record({ ...env, type: fc.constant('appendResp' as const), reject: fc.boolean(), index: u64, hintIndex: u64, hintTerm: u64 }),
    fc.record({ ...env, type: fc.constant('heartbeat' as const), commit: u64, readRound: u64 }),
    fc.record({ ...env, type: fc.constant('heartbeatResp' as const), readRound: u64 }),
    fc.record({ ...env, type: fc.constant('snapshot' as const), snapshot: fc.record({ index: u64, term: u64, confState }) }),
    fc.record({ ...env, type: fc.constant('timeoutNow' as const), commit: u64 }),
  );
}
const anyMessage = fc.tuple(nodeId, nodeId).chain(([from, to]) => messageOf(from, to));
const batch = fc
  .tuple(fc.string({ maxLength: 20 }), nodeId, nodeId)
  .chain(([clusterId, from, to]) => fc.record({ clusterId: fc.constant(clusterId), from: fc.constant(from), to: fc.constant(to), messages: fc.array(messageOf(from, to), { maxLength: 12 }) }));

/** One example of every variant, with values that exercise every field. */
const EXAMPLES: Message[] = [
  { type: 'preVote', from: 'n1', to: 'n2', term: 8, lastLogIndex: 120, lastLogTerm: 7, leaderTransfer: false },
  { type: 'vote', from: 'n1', to: 'n2', term: 8, lastLogIndex: 2 ** 40, lastLogTerm: 7, leaderTransfer: true },
  { type: 'preVoteResp', from: 'n1', to: 'n2', term: 8, reject: true },
  { type: 'voteResp', from: 'n1', to: 'n2', term: 8, reject: false },
  {
    type: 'append',
    from: 'n1',
    to: 'n2',
    term: 3,
    prevIndex: 99,
    prevTerm: 2,
    commit: 98,
    entries: [
      { index: 100, term: 3, type: 'noop', data: new Uint8Array(0) },
      { index: 101, term: 3, type: 'normal', data: new Uint8Array([1, 2, 3]) },
      { index: 102, term: 3, type: 'config', data: new TextEncoder().encode('{"type":"addLearner"}') },
    ],
  },
  { type: 'appendResp', from: 'n1', to: 'n2', term: 3, reject: true, index: 99, hintIndex: 80, hintTerm: 2 },
  { type: 'heartbeat', from: 'n1', to: 'n2', term: 3, commit: 98, readRound: 17 },
  { type: 'heartbeatResp', from: 'n1', to: 'n2', term: 3, readRound: 17 },
  { type: 'snapshot', from: 'n1', to: 'n2', term: 5, snapshot: { index: 10_000, term: 4, confState: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] } } },
  { type: 'timeoutNow', from: 'n1', to: 'n2', term: 5, commit: 41 },
];

// --- protobufjs's view of a Message ------------------------------------------

const BODY_NAMES: Record<Message['type'], string> = {
  preVote: 'pre_vote',
  vote: 'vote',
  preVoteResp: 'pre_vote_resp',
  voteResp: 'vote_resp',
  append: 'append',
  appendResp: 'append_resp',
  heartbeat: 'heartbeat',
  heartbeatResp: 'heartbeat_resp',
  snapshot: 'snapshot',
  timeoutNow: 'timeout_now',
};

function bodyOf(m: Message): object {
  switch (m.type) {
    case 'preVote':
    case 'vote':
      return { last_log_index: m.lastLogIndex, last_log_term: m.lastLogTerm, leader_transfer: m.leaderTransfer };
    case 'preVoteResp':
    case 'voteResp':
      return { reject: m.reject };
    case 'append':
      return {
        prev_index: m.prevIndex,
        prev_term: m.prevTerm,
        commit: m.commit,
        entries: m.entries.map((e) => ({ index: e.index, term: e.term, type: e.type.toUpperCase(), data: Buffer.from(e.data) })),
      };
    case 'appendResp':
      return { reject: m.reject, index: m.index, hint_index: m.hintIndex, hint_term: m.hintTerm };
    case 'heartbeat':
      return { commit: m.commit, read_round: m.readRound };
    case 'heartbeatResp':
      return { read_round: m.readRound };
    case 'snapshot':
      return { snapshot: { index: m.snapshot.index, term: m.snapshot.term, conf_state: { voters: [...m.snapshot.confState.voters], learners: [...m.snapshot.confState.learners] } } };
    case 'timeoutNow':
      return { commit: m.commit };
  }
}

/** The object protobufjs (keepCase, longs Number, enums String, defaults, oneofs) decodes a Message to. */
function protoObject(m: Message, inBatch: boolean): object {
  const body = BODY_NAMES[m.type];
  return { from: inBatch ? '' : m.from, to: inBatch ? '' : m.to, term: m.term, body, [body]: bodyOf(m) };
}

/** Byte arrays of every kind compared by content (decoded data are Buffer views, generated ones Uint8Arrays). */
function plain(value: unknown): unknown {
  if (value instanceof Uint8Array) return Array.from(value);
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

// --- tests ----------------------------------------------------------------

describe('codec: round trips', () => {
  it.each(EXAMPLES.map((m) => [m.type, m] as const))('%s survives a batch and a standalone encoding', (_type, m) => {
    const decoded = decodeBatch(encodeBatch('cluster-a', m.from, m.to, [m]));
    expect(decoded).toMatchObject({ clusterId: 'cluster-a', from: m.from, to: m.to });
    expect(plain(decoded.messages)).toEqual(plain([m]));
    expect(plain(decodeMessage(encodeMessage(m)))).toEqual(plain(m));
  });

  it('round-trips any batch of any messages', () => {
    fc.assert(
      fc.property(batch, ({ clusterId, from, to, messages }) => {
        const decoded = decodeBatch(encodeBatch(clusterId, from, to, messages));
        expect(plain(decoded)).toEqual(plain({ clusterId, from, to, messages }));
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips any standalone message', () => {
    fc.assert(
      fc.property(anyMessage, (m) => {
        expect(plain(decodeMessage(encodeMessage(m)))).toEqual(plain(m));
      }),
      { numRuns: 500 },
    );
  });

  it('hands entry data out as views of the received buffer, not copies', () => {
    const append = EXAMPLES.find((m) => m.type === 'append');
    if (append?.type !== 'append') throw new Error('no append example');
    const bytes = encodeBatch('c', 'n1', 'n2', [append]);
    const decoded = decodeBatch(bytes).messages[0];
    if (decoded?.type !== 'append') throw new Error('not an append');
    const data = decoded.entries[1]?.data;
    expect(data?.buffer).toBe(bytes.buffer);
    expect(Array.from(data ?? [])).toEqual([1, 2, 3]);
  });

  it('leaves out per-message from/to inside a batch, and keeps them when they differ', () => {
    const heartbeat: Message = { type: 'heartbeat', from: 'n1', to: 'n2', term: 1, commit: 0, readRound: 0 };
    const batched = encodeBatch('c', 'n1', 'n2', [heartbeat, heartbeat]);
    const alone = encodeMessage(heartbeat);
    // Batch: cluster id (3 bytes), from (4), to (4); then per message its tag and length (2), term (2)
    // and empty heartbeat body (2): no ids. Alone, the message carries from (4) and to (4).
    expect(batched.length).toBe(3 + 4 + 4 + 2 * (2 + 2 + 2));
    expect(alone.length).toBe(4 + 4 + 2 + 2);
    // A message whose ids differ from the batch's is refused on decode, but encodes faithfully.
    const stray: Message = { ...heartbeat, from: 'n9' };
    expect(() => decodeBatch(encodeBatch('c', 'n1', 'n2', [stray]))).toThrow(/is from 'n9'/);
  });
});

describe('codec: the bytes are raft.proto', () => {
  it('decodes to what protobufjs makes of raft.proto', () => {
    fc.assert(
      fc.property(batch, ({ clusterId, from, to, messages }) => {
        const viaProtobufjs = pbBatch.deserialize(encodeBatch(clusterId, from, to, messages));
        expect(plain(viaProtobufjs)).toEqual(plain({ cluster_id: clusterId, from, to, messages: messages.map((m) => protoObject(m, true)) }));
      }),
      { numRuns: 300 },
    );
    for (const m of EXAMPLES) expect(plain(pbMessage.deserialize(encodeMessage(m)))).toEqual(plain(protoObject(m, false)));
  });

  it('decodes what protobufjs encodes from raft.proto, with or without per-message ids', () => {
    fc.assert(
      fc.property(batch, fc.boolean(), ({ clusterId, from, to, messages }, explicitIds) => {
        const bytes = pbBatch.serialize({ cluster_id: clusterId, from, to, messages: messages.map((m) => protoObject(m, !explicitIds)) });
        expect(plain(decodeBatch(bytes))).toEqual(plain({ clusterId, from, to, messages }));
      }),
      { numRuns: 300 },
    );
  });

  it('encodes snapshot chunks and acks as raft.proto says', () => {
    const message = EXAMPLES.find((m) => m.type === 'snapshot');
    if (message?.type !== 'snapshot') throw new Error('no snapshot example');
    const data = new Uint8Array([9, 8, 7]);
    const first = encodeSnapshotChunk({ header: { clusterId: 'c', message }, offset: 0, data: new Uint8Array(0), last: false });
    expect(plain(pbChunk.deserialize(first))).toEqual(plain({ header: { cluster_id: 'c', message: protoObject(message, false) }, offset: 0, data: Buffer.alloc(0), last: false }));
    expect(plain(decodeSnapshotChunk(first))).toEqual(plain({ header: { clusterId: 'c', message }, offset: 0, data: [], last: false }));
    const middle = pbChunk.serialize({ offset: 2 ** 33, data: Buffer.from(data), last: true });
    expect(plain(decodeSnapshotChunk(middle))).toEqual(plain({ header: null, offset: 2 ** 33, data, last: true }));
    expect(decodeSnapshotAck(encodeSnapshotAck(5 * 1024 * 1024))).toBe(5 * 1024 * 1024);
    expect(codec('quorumkv.raft.v1.SnapshotAck').deserialize(encodeSnapshotAck(77))).toEqual({ size_bytes: 77 });
  });

  it('skips fields it does not know (a newer sender)', () => {
    const heartbeat = EXAMPLES.find((m) => m.type === 'heartbeat');
    if (heartbeat === undefined) throw new Error('no heartbeat example');
    const known = encodeMessage(heartbeat);
    // Field 14 (varint 300), field 15 (a string), appended to the message: both unknown to this build.
    const w = Writer.alloc(known.length + 3 + 5);
    w.buf.set(known, 0);
    w.pos = known.length;
    w.tag(14, 0);
    w.varint(300);
    w.string(15, 'new', 3);
    expect(decodeMessage(w.finish())).toEqual(heartbeat);
  });
});

describe('codec: limits and malformed input', () => {
  it('writes and reads varints at every length boundary up to 2^53 - 1', () => {
    fc.assert(
      fc.property(u64, (n) => {
        const w = Writer.alloc(varintSize(n));
        w.varint(n);
        const r = new Reader(w.finish());
        expect(r.uint64('n')).toBe(n);
        expect(r.pos).toBe(r.length);
      }),
    );
  });

  it('refuses a uint64 of 2^53 or more, which the core cannot hold exactly', () => {
    for (const value of ['9007199254740992', '18446744073709551615']) {
      const bytes = pbMessage.serialize({ term: value, heartbeat: {} });
      expect(() => decodeMessage(bytes)).toThrow(MalformedMessageError);
      expect(() => decodeMessage(bytes)).toThrow(/2\^53/);
    }
  });

  it('refuses to encode indexes that are not safe non-negative integers', () => {
    for (const term of [-1, 1.5, 2 ** 53, Number.NaN]) {
      expect(() => encodeMessage({ type: 'timeoutNow', from: 'a', to: 'b', term, commit: 0 })).toThrow(RangeError);
    }
  });

  it('refuses messages without a body, unknown entry types, and snapshots without meta', () => {
    expect(() => decodeMessage(pbMessage.serialize({ from: 'a', to: 'b', term: 1 }))).toThrow(/no body/);
    // Message { term: 1, append: { entries: [{ type: 7, index: 1 }] } }, written by hand: protobufjs will not encode an unknown enum value.
    const w = Writer.alloc(10);
    w.uint(3, 1, 'term');
    w.lengthDelimited(8, 6);
    w.lengthDelimited(3, 4);
    w.uint(3, 7, 'type');
    w.uint(1, 1, 'index');
    expect(() => decodeMessage(w.finish())).toThrow(/entry type 7/);
    expect(() => decodeMessage(pbMessage.serialize({ term: 1, snapshot: {} }))).toThrow(/no snapshot meta/);
  });

  it('throws only MalformedMessageError on arbitrary or damaged bytes', () => {
    const isRefusal = (fn: () => unknown): boolean => {
      try {
        fn();
        return true;
      } catch (err) {
        return err instanceof MalformedMessageError;
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        expect(isRefusal(() => decodeBatch(bytes))).toBe(true);
        expect(isRefusal(() => decodeSnapshotChunk(bytes))).toBe(true);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(batch, fc.nat(), fc.integer({ min: 0, max: 255 }), ({ clusterId, from, to, messages }, at, value) => {
        const bytes = Buffer.from(encodeBatch(clusterId, from, to, messages));
        if (bytes.length === 0) return;
        const i = at % bytes.length;
        expect(isRefusal(() => decodeBatch(bytes.subarray(0, i)))).toBe(true);
        bytes[i] = value;
        expect(isRefusal(() => decodeBatch(bytes))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('codec: splitting into batches', () => {
  it('keeps order, fits every batch in the limit, and sets aside what can never fit', () => {
    fc.assert(
      fc.property(batch, fc.integer({ min: 16, max: 400 }), ({ clusterId, from, to, messages }, maxBytes) => {
        const { batches, oversized } = encodeBatches(clusterId, from, to, messages, maxBytes);
        const sent = batches.flatMap((b) => {
          expect(b.length).toBeLessThanOrEqual(maxBytes);
          const decoded = decodeBatch(b);
          expect(decoded.messages.length).toBeGreaterThan(0);
          return decoded.messages;
        });
        for (const m of oversized) expect(encodeBatch(clusterId, from, to, [m]).length).toBeGreaterThan(maxBytes);
        // What was sent is the input minus the oversized ones, in the input's order.
        const oversizedSet = new Set(oversized);
        expect(plain(sent)).toEqual(plain(messages.filter((m) => !oversizedSet.has(m))));
      }),
      { numRuns: 300 },
    );
  });

  it('puts everything in one batch when it fits', () => {
    const { batches, oversized } = encodeBatches('c', 'n1', 'n2', EXAMPLES.map((m) => ({ ...m, from: 'n1', to: 'n2' })), 1 << 20);
    expect(batches).toHaveLength(1);
    expect(oversized).toHaveLength(0);
  });
});

describe('codec: forwarded calls and replies are raft.proto', () => {
  const pbCalls = codec('quorumkv.raft.v1.ForwardedCalls');
  const pbReplies = codec('quorumkv.raft.v1.ForwardedReplies');
  const text = fc.string({ maxLength: 12, unit: 'grapheme' });
  const id = fc.nat({ max: 2 ** 40 });
  const calls = fc.array(
    fc.record({ id, method: text, timeoutMs: fc.nat({ max: 2 ** 31 }), request: fc.uint8Array({ maxLength: 40 }), user: text, authorization: text }),
    { maxLength: 5 },
  );
  const replies = fc.array(
    fc.record({ id, code: fc.nat({ max: 16 }), response: fc.uint8Array({ maxLength: 40 }), details: text, trailers: fc.dictionary(text, text, { maxKeys: 3 }) }),
    { maxLength: 5 },
  );

  it('encodes calls as protobufjs reads them, and decodes what protobufjs writes', () => {
    fc.assert(
      fc.property(calls, (list) => {
        const asProto = list.map((c) => ({ id: c.id, method: c.method, timeout_ms: c.timeoutMs, request: Buffer.from(c.request), user: c.user, authorization: c.authorization }));
        expect(plain(pbCalls.deserialize(encodeForwardedCalls(list)))).toEqual(plain({ calls: asProto }));
        expect(plain(decodeForwardedCalls(pbCalls.serialize({ calls: asProto })))).toEqual(plain(list));
      }),
      { numRuns: 200 },
    );
  });

  it('encodes replies as protobufjs reads them, and decodes what protobufjs writes', () => {
    fc.assert(
      fc.property(replies, (list) => {
        const asProto = list.map((r) => ({
          id: r.id,
          code: r.code,
          response: Buffer.from(r.response),
          details: r.details,
          trailers: Object.entries(r.trailers).map(([key, value]) => ({ key, value })),
        }));
        expect(plain(pbReplies.deserialize(encodeForwardedReplies(list)))).toEqual(plain({ replies: asProto }));
        expect(plain(decodeForwardedReplies(pbReplies.serialize({ replies: asProto })))).toEqual(plain(list));
      }),
      { numRuns: 200 },
    );
  });

  it('keeps a trailer of any legal metadata name, __proto__ too (a plain object would drop it)', () => {
    // Found by the property above (seed -2022702269): `{}[key] = value` with key __proto__ sets no entry.
    const trailers = Object.fromEntries([['__proto__', 'a'], ['constructor', 'b'], ['x-leader', 'c']]) as Record<string, string>;
    const [reply] = decodeForwardedReplies(encodeForwardedReplies([{ id: 7, code: 9, response: new Uint8Array(0), details: 'd', trailers }]));
    expect(Object.entries(reply?.trailers ?? {})).toEqual([['__proto__', 'a'], ['constructor', 'b'], ['x-leader', 'c']]);
  });

  it('refuses a batch cut in the middle of a call', () => {
    const bytes = encodeForwardedCalls([{ id: 1, method: '/quorumkv.v1.KV/Set', timeoutMs: 100, request: new Uint8Array([1, 2, 3]), user: '', authorization: '' }]);
    expect(() => decodeForwardedCalls(bytes.subarray(0, bytes.length - 2))).toThrow(MalformedMessageError);
  });
});
