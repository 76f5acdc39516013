/**
 * Watch: turns the stream of applied entries into key events, keeps a window
 * of recent ones so a watcher can resume from an index, and fans them out.
 * Every replica applies the same log, so any node serves any watcher, and a
 * watcher that reconnects elsewhere with from_index = last + 1 sees no gap and
 * no duplicate.
 */
import type { Entry } from '../raft/index.ts';
import type { StateMachine } from '../state/index.ts';
import { OutOfRangeError, ResourceExhaustedError, decodeEntry } from '../state/index.ts';

export type WatchEventType = 'PUT' | 'DELETE' | 'EXPIRE' | 'EVICT';
export type WatchValueType = 'NONE' | 'STRING' | 'LIST' | 'HASH';

export interface WatchEvent {
  readonly index: number;
  readonly type: WatchEventType;
  readonly key: string;
  /** The new value of a string key; empty for lists, hashes and removals. */
  readonly value: Uint8Array;
  readonly valueType: WatchValueType;
}

export interface WatchFilter {
  readonly key: string;
  readonly prefix: boolean;
}

export interface Watcher {
  /** Delivers one event; returns false when the watcher cannot keep up. */
  deliver(event: WatchEvent): boolean;
  /** Ends the watch with an error (the watcher fell behind, or history is gone). */
  fail(error: Error): void;
}

const EMPTY = new Uint8Array(0);
const TYPE_NAMES = { none: 'NONE', string: 'STRING', list: 'LIST', hash: 'HASH' } as const;

interface Subscription {
  readonly filter: WatchFilter;
  readonly watcher: Watcher;
}

export class WatchHub {
  private readonly history: WatchEvent[] = [];
  /** Every event after this index is in history (or was trimmed, see trimmedThrough). */
  private historyStart: number;
  private trimmedThrough = 0;
  private readonly subscriptions = new Set<Subscription>();

  constructor(
    appliedIndex: number,
    private readonly maxHistory = 100_000,
  ) {
    this.historyStart = appliedIndex;
  }

  get watcherCount(): number {
    return this.subscriptions.size;
  }

  /**
   * Subscribes from `fromIndex` (0: from now on). Refuses with OUT_OF_RANGE
   * when events that old are no longer held here.
   */
  subscribe(filter: WatchFilter, fromIndex: number, watcher: Watcher): () => void {
    const oldest = Math.max(this.historyStart, this.trimmedThrough) + 1;
    if (fromIndex !== 0 && fromIndex < oldest) {
      throw new OutOfRangeError(`events before index ${oldest} are no longer held by this node; watch from ${oldest} or later (or 0 for new events only)`);
    }
    const subscription: Subscription = { filter, watcher };
    if (fromIndex !== 0) {
      for (const event of this.history) {
        if (event.index >= fromIndex && matches(filter, event.key) && !watcher.deliver(event)) {
          watcher.fail(new ResourceExhaustedError('the watcher fell behind while catching up; resume from its last index'));
          return () => {};
        }
      }
    }
    this.subscriptions.add(subscription);
    return () => this.subscriptions.delete(subscription);
  }

  /** Called after each applied entry with the keys the state machine reported changed. */
  onApplied(entry: Entry, state: StateMachine): void {
    const changed = state.takeChangedKeys();
    if (changed.length === 0) return;
    const now = state.logTimeMs;
    // Decoded only when a key went away (to say why): a put, the common case, needs no second decode.
    let removal: WatchEventType | null = null;
    for (const key of changed.length === 1 ? changed : new Set(changed)) {
      const typeResult = state.read({ op: 'type', key }, now);
      const type = typeResult.kind === 'type' ? typeResult.type : 'none';
      let value: Uint8Array = EMPTY;
      if (type === 'string') {
        const got = state.read({ op: 'get', key }, now);
        if (got.kind === 'value' && got.value !== null) value = got.value;
      }
      const eventType = type === 'none' ? (removal ??= removalType(entry)) : 'PUT';
      this.publish({ index: entry.index, type: eventType, key, value, valueType: TYPE_NAMES[type] });
    }
  }

  /** The state was replaced by a snapshot: what happened in between is unknown here. */
  onSnapshotInstalled(index: number): void {
    this.history.length = 0;
    this.historyStart = index;
    this.trimmedThrough = 0;
    for (const subscription of [...this.subscriptions]) {
      subscription.watcher.fail(new OutOfRangeError(`this node caught up by installing a snapshot at ${index}; resume the watch on another member or from ${index + 1}`));
      this.subscriptions.delete(subscription);
    }
  }

  private publish(event: WatchEvent): void {
    this.history.push(event);
    // Trimmed in chunks, so that the copy is paid once per quarter of the window, not per event.
    if (this.history.length > this.maxHistory + (this.maxHistory >> 2)) {
      const dropped = this.history.splice(0, this.history.length - this.maxHistory);
      this.trimmedThrough = (dropped[dropped.length - 1] as WatchEvent).index;
    }
    for (const subscription of this.subscriptions) {
      if (!matches(subscription.filter, event.key)) continue;
      if (!subscription.watcher.deliver(event)) {
        this.subscriptions.delete(subscription);
        subscription.watcher.fail(new ResourceExhaustedError('the watcher fell behind; resume from its last index'));
      }
    }
  }
}

function removalType(entry: Entry): WatchEventType {
  const op = decodeEntry(entry.data).command.op;
  return op === 'expireSweep' ? 'EXPIRE' : op === 'evict' ? 'EVICT' : 'DELETE';
}

function matches(filter: WatchFilter, key: string): boolean {
  return filter.prefix ? key.startsWith(filter.key) : key === filter.key;
}
