/**
 * The messages between the benchmark (cluster.ts) and its load-generator
 * processes (load-worker.ts), over the IPC channel of child_process.fork.
 * Times that both sides must agree on are wall-clock epoch milliseconds;
 * each side measures durations with its own monotonic clock.
 */
import type { SerializedHistogram } from './load-histogram.ts';
import type { ClientKind } from './load-transport.ts';
import type { SystemName, WorkloadOptions } from './load-workloads.ts';

export interface LoadSpec {
  readonly system: SystemName;
  readonly workload: WorkloadOptions;
  readonly client: ClientKind;
  /** One server address per connection this process opens. */
  readonly connections: readonly string[];
  /** Closed loop: requests kept in flight. Open loop: the most in flight at once. */
  readonly concurrency: number;
  /** Open loop: requests per second this process sends (0 = closed loop). */
  readonly ratePerSecond: number;
  /** Open loop: this process's first request is due this long after the start, so that processes interleave. */
  readonly rateOffsetMs: number;
  /**
   * When > 0, the measured window is also recorded in slices this long (by due
   * time in open loop, by completion in closed loop), so that a part of the
   * window (e.g. while a snapshot was being taken) can be told apart.
   */
  readonly sliceMs: number;
}

export interface Window {
  /** Sending starts here. */
  readonly startAtMs: number;
  /** Requests that complete (closed loop) or are due (open loop) from here on are measured. */
  readonly measureFromMs: number;
  /** Sending stops here, and so does measuring. */
  readonly endAtMs: number;
  /** How long to wait after endAtMs for requests still in flight before counting them as unfinished. */
  readonly drainMs: number;
}

export type ParentMessage =
  | { readonly type: 'preload'; readonly spec: LoadSpec; readonly firstKey: number; readonly keyStep: number }
  | { readonly type: 'prepare'; readonly spec: LoadSpec }
  | { readonly type: 'go'; readonly window: Window };

export interface OpResult {
  /** Latencies of the successful requests measured. */
  readonly histogram: SerializedHistogram;
  /** Failed requests measured, by gRPC status name. */
  readonly errors: Readonly<Record<string, number>>;
}

export interface WorkerResult {
  readonly ops: Readonly<Record<string, OpResult>>;
  /** Measured requests with no answer by the end of the drain (open loop: including those never sent). */
  readonly unfinished: number;
  /** Open loop: the most requests that were due but not yet sent, in the measured window (0 in closed loop). */
  readonly maxBacklog: number;
  /** With LoadSpec.sliceMs: slice i covers [measureFromMs + i * sliceMs, + sliceMs); all ops together. */
  readonly slices: readonly SliceResult[];
}

export interface SliceResult {
  /** Latencies of the successful requests in the slice. */
  readonly histogram: SerializedHistogram;
  /** Failed requests in the slice. */
  readonly errors: number;
}

export type WorkerMessage =
  | { readonly type: 'preloaded'; readonly keys: number; readonly errors: Readonly<Record<string, number>> }
  | { readonly type: 'ready' }
  /** Cumulative answers since the start (measured or not), once a second, stamped with the worker's epoch time. */
  | { readonly type: 'progress'; readonly completed: number; readonly failed: number; readonly atMs: number }
  | { readonly type: 'result'; readonly result: WorkerResult }
  | { readonly type: 'failed'; readonly message: string };
