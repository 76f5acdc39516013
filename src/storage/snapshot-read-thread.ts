/**
 * Reads a snapshot file's rows in a worker thread (snapshot-read-worker.ts):
 * SQLite reads and checksum checks run on another core while the main thread
 * rebuilds the state from the batches the worker posts. Same checks and same
 * errors as SnapshotFileReader.keys() / sessions(): the worker runs
 * keyBatches() / sessions().
 */
import { readFileSync } from 'node:fs';
import { startWorker } from '../threads/start-worker.ts';
import { CorruptDataError } from './errors.ts';
import type { PackedKeyRows } from './packed-key-rows.ts';
import type { SnapshotExpectation } from './snapshot-file.ts';
import type { SnapshotSessionRow } from './types.ts';

/** Batches the worker may post before the main thread has taken them: bounds the memory between the two. */
export const MAX_BATCHES_AHEAD = 8;
/** Slots of the shared control array: batches the main thread has taken, its request to stop, and its request to give way. */
export const CONSUMED = 0;
export const STOP = 1;
export const GIVE_WAY = 2;
/** The nice value a reader thread that gives way takes (Linux, where nice is per thread): a tenth of a normal thread's share of a busy core, not none (a leader that fails over to this node waits for this restore). */
export const GIVE_WAY_NICE = 10;

/**
 * A batch taken while giving way, during which the main thread waited for a
 * core (runnable, not running) more than this share of the batch's time, is
 * followed by a pause: the machine is busy.
 */
export const BUSY_WAIT_SHARE = 0.2;
/** That pause, in multiples of the batch's wall time: on a busy machine the main thread then restores at most a ninth of the time. */
export const BUSY_PAUSE_FACTOR = 8;

/**
 * Lets the caller of a read ask it to give way to other work on a busy
 * machine (a follower's restore to its leader's, on two cores):
 * - the reader thread lowers its own CPU priority for the rest of the read
 *   (an unprivileged thread cannot raise it again);
 * - the main thread, whose priority must stay (it serves Raft), pauses after
 *   each batch during which it waited for a core, for 8 times the batch's time.
 * On a machine with a free core neither costs anything. Linux only (nice is
 * per thread there, and /proc tells how long a thread waited); elsewhere the
 * request is ignored.
 */
export class ReadPriority {
  private control: Int32Array | null = null;
  private lowered = false;
  private readonly threadWaitMs: () => number | null;

  /** `threadWaitMs`: how long the calling thread has waited for a core so far, or null where unknown; a test may pass its own. */
  constructor(threadWaitMs: () => number | null = runQueueWaitMs) {
    this.threadWaitMs = threadWaitMs;
  }

  /** Asks the read's thread (now, or once it starts) to lower its priority. */
  lower(): void {
    this.lowered = true;
    if (this.control !== null) Atomics.store(this.control, GIVE_WAY, 1);
  }

  get isLowered(): boolean {
    return this.lowered;
  }

  /**
   * @internal readSnapshotRowsInWorker's pacing: called as a batch begins, a
   * function that gives the pause to take once it ends; null when not giving
   * way (or the wait cannot be known).
   */
  pacer(): (() => number) | null {
    if (!this.lowered) return null;
    const began = performance.now();
    const waitedBefore = this.threadWaitMs();
    if (waitedBefore === null) return null;
    return () => this.pauseAfter(performance.now() - began, (this.threadWaitMs() ?? waitedBefore) - waitedBefore);
  }

  /** @internal The pause after a batch that took `wallMs`, of which the thread waited `waitedMs` for a core. */
  pauseAfter(wallMs: number, waitedMs: number): number {
    return this.lowered && waitedMs > wallMs * BUSY_WAIT_SHARE ? wallMs * BUSY_PAUSE_FACTOR : 0;
  }

  /** @internal Called by readSnapshotRowsInWorker with the read's control array. */
  attach(control: Int32Array): void {
    this.control = control;
    if (this.lowered) Atomics.store(control, GIVE_WAY, 1);
  }
}

/** workerData of the worker. */
export interface ReadRequest {
  readonly path: string;
  readonly expect: SnapshotExpectation;
  /** Int32Array slots CONSUMED, STOP and GIVE_WAY. */
  readonly control: SharedArrayBuffer;
}

/** A CorruptDataError travels as its parts and is rebuilt with the same message; anything else as name and message. */
export type WorkerError = { kind: 'corrupt'; file: string; detail: string } | { kind: 'other'; name: string; message: string };

export type WorkerMessage =
  | { readonly kind: 'keys'; readonly batch: PackedKeyRows }
  | { readonly kind: 'done'; readonly sessions: SnapshotSessionRow[] }
  | { readonly kind: 'error'; readonly error: WorkerError };

/**
 * Reads the keys and sessions of the snapshot file at `path`, checking every
 * row and, at the end, each table's row count and checksum sum. `onKeys` gets
 * the key rows in write order, a batch at a time (synchronously, one batch
 * per event-loop turn); the promise resolves with the sessions once every row
 * passed. Rejects with CorruptDataError on damage, as SnapshotFileReader
 * would: whatever `onKeys` built from the batches must then be discarded. If
 * `onKeys` throws, the worker is stopped and the promise rejects with that.
 */
export function readSnapshotRowsInWorker(
  path: string,
  expect: SnapshotExpectation,
  onKeys: (batch: PackedKeyRows) => void,
  priority: ReadPriority | null = null,
): Promise<SnapshotSessionRow[]> {
  const control = new Int32Array(new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT));
  priority?.attach(control);
  const request: ReadRequest = { path, expect, control: control.buffer as SharedArrayBuffer };
  const worker = startWorker('storage/snapshot-read-worker.ts', { workerData: request });
  return new Promise<SnapshotSessionRow[]>((resolve, reject) => {
    let settled = false;
    const settle = (outcome: { sessions: SnapshotSessionRow[] } | { error: Error }): void => {
      if (settled) return;
      settled = true;
      Atomics.store(control, STOP, 1);
      Atomics.notify(control, CONSUMED);
      void worker.terminate();
      if ('error' in outcome) reject(outcome.error);
      else resolve(outcome.sessions);
    };
    // Node hands a port's queued messages over in one go (as long as the worker keeps posting,
    // the whole snapshot): each batch waits here and is taken in its own event-loop turn, so
    // timers and sockets (the node's Raft heartbeats) are served between batches.
    const waiting: PackedKeyRows[] = [];
    let done: SnapshotSessionRow[] | null = null;
    let takeScheduled = false;
    const takeOne = (): void => {
      takeScheduled = false;
      if (settled) return;
      const batch = waiting.shift();
      let pauseMs = 0;
      if (batch !== undefined) {
        const pause = priority?.pacer() ?? null;
        try {
          onKeys(batch);
        } catch (error) {
          settle({ error: error as Error });
          return;
        }
        Atomics.add(control, CONSUMED, 1);
        Atomics.notify(control, CONSUMED);
        pauseMs = pause?.() ?? 0;
      }
      if (waiting.length > 0) scheduleTake(pauseMs);
      else if (done !== null) settle({ sessions: done });
    };
    const scheduleTake = (pauseMs = 0): void => {
      if (takeScheduled) return;
      takeScheduled = true;
      if (pauseMs > 0) setTimeout(takeOne, pauseMs);
      else setImmediate(takeOne);
    };
    worker.on('message', (message: WorkerMessage) => {
      if (settled) return;
      if (message.kind === 'keys') {
        waiting.push(message.batch);
        scheduleTake();
      } else if (message.kind === 'done') {
        done = message.sessions;
        scheduleTake();
      } else {
        settle({ error: rebuild(message.error, path) });
      }
    });
    worker.on('error', (error) => settle({ error: new Error(`reading snapshot ${path}: the reader thread failed: ${error.message}`, { cause: error }) }));
    worker.on('exit', (code) => {
      // After 'done' the worker may end before the last batches are taken here: that is its normal end.
      if (done === null) settle({ error: new Error(`reading snapshot ${path}: the reader thread exited (code ${code}) before it finished`) });
    });
  });
}

/**
 * How long the calling thread has waited runnable for a core, in ms (Linux:
 * the second field of /proc/thread-self/schedstat, in ns; it is exact, where
 * the first, CPU time, lags by up to a scheduler tick); null elsewhere.
 */
function runQueueWaitMs(): number | null {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 2)[1]) / 1e6;
  } catch {
    return null;
  }
}

function rebuild(error: WorkerError, path: string): Error {
  if (error.kind === 'corrupt') return new CorruptDataError(error.file, error.detail);
  return new Error(`reading snapshot ${path}: ${error.name}: ${error.message}`);
}
