/**
 * A Watch that survives reconnects. Events carry the log index of the entry
 * that made them, and one entry may make several events (a Delete of many
 * keys, a Txn). So after a break the stream is reopened from the last index
 * seen, not the one after it, and the events of that index already
 * delivered are recognised and dropped: nothing is missed, nothing repeats.
 *
 * A watch "from now" first asks a node for its applied index and starts just
 * after it, so even a break before the first event leaves no gap.
 *
 * Reconnects follow the client's retry policy (leader hints, next endpoint,
 * backoff); the failure budget (maxAttempts, timeoutMs) counts from the last
 * time the watch worked: an event arrived, or a stream stayed up for
 * timeoutMs. Besides the usual transient codes, a watch is resumed after
 * RESOURCE_EXHAUSTED (the node dropped a watcher that fell behind) and after
 * a stream the node ended cleanly. OUT_OF_RANGE (a node no longer holds
 * events that old: it restarted or installed a snapshot) sends the watch to
 * the other endpoints, which may still hold them; when every endpoint
 * refuses, the watch fails rather than skip events.
 */
import type * as grpc from '@grpc/grpc-js';
import type { Endpoints } from './endpoints.ts';
import { fromCallError, QuorumError, type StatusName } from './errors.ts';
import { fromWireType, type ValueType } from './operations.ts';
import { aborted, backoffMs, nextAddress, sleep, type RetryPolicy } from './retry.ts';
import { plainBytes } from './values.ts';
import type { WireWatchEvent } from './wire.ts';

export type WatchEventType = 'put' | 'delete' | 'expire' | 'evict';

export interface WatchEvent {
  /** The log index of the entry that made the change. */
  readonly index: number;
  readonly type: WatchEventType;
  readonly key: string;
  /** For a put of a string: the new value; else null (read lists and hashes with lrange / hgetall). */
  readonly value: Uint8Array | null;
  /** For a put: the type the key now holds; 'none' for removals. */
  readonly valueType: ValueType;
}

export interface WatchOptions {
  /** Watch every key starting with `key`. */
  readonly prefix?: boolean;
  /** Deliver the changes of log entries at or after this index first; omitted or 0: from now on. */
  readonly fromIndex?: number;
  /** Ends the watch (the iterator then finishes without error). */
  readonly signal?: AbortSignal;
}

export interface WatchDeps {
  readonly endpoints: Endpoints;
  readonly policy: RetryPolicy;
  open(address: string, request: object): grpc.ClientReadableStream<unknown>;
  /** The index a watch "from now" starts at; 0 when no node could tell. */
  startIndex(signal?: AbortSignal): Promise<number>;
}

const RESUMABLE: ReadonlySet<StatusName> = new Set(['UNAVAILABLE', 'ABORTED', 'DEADLINE_EXCEEDED', 'CANCELLED', 'RESOURCE_EXHAUSTED']);

function toEvent(wire: WireWatchEvent): WatchEvent {
  const type = wire.type.toLowerCase() as WatchEventType;
  const valueType = fromWireType(wire.value_type);
  return { index: wire.index, type, key: wire.key, value: type === 'put' && valueType === 'string' ? plainBytes(wire.value) : null, valueType };
}

function sameEvent(a: WatchEvent, b: WatchEvent): boolean {
  if (a.index !== b.index || a.type !== b.type || a.key !== b.key || a.valueType !== b.valueType) return false;
  if (a.value === null || b.value === null) return a.value === b.value;
  return a.value.length === b.value.length && a.value.every((byte, i) => byte === b.value?.[i]);
}

export async function* resumableWatch(deps: WatchDeps, key: string, options: WatchOptions = {}): AsyncGenerator<WatchEvent, void, undefined> {
  const { endpoints, policy } = deps;
  const signal = options.signal;
  let from = options.fromIndex ?? 0;
  if (from === 0) from = await deps.startIndex(signal);
  /** The highest index delivered, and the events delivered at it. */
  let lastIndex = 0;
  let atLast: WatchEvent[] = [];
  let address = endpoints.preferred;
  let streakStart = Date.now();
  let attempts = 0;
  let round = 0;
  const tried = new Set<string>();
  /** Endpoints that answered OUT_OF_RANGE since the last event. */
  const refused = new Set<string>();

  while (!aborted(signal)) {
    const call = deps.open(address, { key, prefix: options.prefix ?? false, from_index: lastIndex > 0 ? lastIndex : from });
    const onAbort = (): void => call.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    const openedAt = Date.now();
    let delivered = false;
    let failure: QuorumError;
    // Events of lastIndex the new stream will repeat, to drop once each.
    const repeats = [...atLast];
    try {
      for await (const raw of call) {
        const event = toEvent(raw as WireWatchEvent);
        if (event.index < lastIndex) continue;
        if (event.index === lastIndex) {
          const i = repeats.findIndex((seen) => sameEvent(seen, event));
          if (i >= 0) {
            repeats.splice(i, 1);
            continue;
          }
          atLast.push(event);
        } else {
          lastIndex = event.index;
          atLast = [event];
          repeats.length = 0;
        }
        if (!delivered) {
          delivered = true;
          refused.clear();
          endpoints.succeeded(address);
        }
        yield event;
      }
      failure = new QuorumError('UNAVAILABLE', 'the node ended the watch stream', { endpoint: address });
    } catch (raw) {
      failure = fromCallError(raw, address);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      call.cancel();
    }
    if (aborted(signal)) return;
    if (failure.code === 'OUT_OF_RANGE') {
      refused.add(address);
      const next = endpoints.all.find((a) => !refused.has(a));
      if (next === undefined) throw failure;
      address = next;
      continue;
    }
    if (!RESUMABLE.has(failure.code)) throw failure;

    if (delivered || Date.now() - openedAt >= policy.timeoutMs) {
      streakStart = Date.now();
      attempts = 0;
      round = 0;
      tried.clear();
    }
    attempts += 1;
    if (attempts >= policy.maxAttempts || Date.now() - streakStart >= policy.timeoutMs) throw failure.withAttempts(attempts);
    tried.add(address);
    address = nextAddress(endpoints, address, failure);
    if (tried.has(address)) {
      try {
        await sleep(backoffMs(policy, ++round), signal);
      } catch {
        return;
      }
      tried.clear();
    }
  }
}
