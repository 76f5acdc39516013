/**
 * Reads a snapshot file's rows in a worker thread (snapshot-read-worker.ts):
 * SQLite reads and checksum checks run on another core while the main thread
 * rebuilds the state from the batches the worker posts. Same checks and same
 * errors as SnapshotFileReader.keys() / sessions(): the worker runs
 * keyBatches() / sessions().
 */
import { Worker } from 'node:worker_threads';
import { CorruptDataError } from './errors.ts';
import type { PackedKeyRows } from './packed-key-rows.ts';
import type { SnapshotExpectation } from './snapshot-file.ts';
import type { SnapshotSessionRow } from './types.ts';

/** Batches the worker may post before the main thread has taken them: bounds the memory between the two. */
export const MAX_BATCHES_AHEAD = 8;
/** Slots of the shared control array: batches the main thread has taken, and its request to stop. */
export const CONSUMED = 0;
export const STOP = 1;

/** workerData of the worker. */
export interface ReadRequest {
  readonly path: string;
  readonly expect: SnapshotExpectation;
  /** Int32Array slots CONSUMED and STOP. */
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
): Promise<SnapshotSessionRow[]> {
  const control = new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
  const request: ReadRequest = { path, expect, control: control.buffer as SharedArrayBuffer };
  const worker = startWorker(new URL('./snapshot-read-worker.ts', import.meta.url), request);
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
    worker.on('message', (message: WorkerMessage) => {
      if (settled) return;
      if (message.kind === 'keys') {
        try {
          onKeys(message.batch);
        } catch (error) {
          settle({ error: error as Error });
          return;
        }
        Atomics.add(control, CONSUMED, 1);
        Atomics.notify(control, CONSUMED);
      } else if (message.kind === 'done') {
        settle({ sessions: message.sessions });
      } else {
        settle({ error: rebuild(message.error, path) });
      }
    });
    worker.on('error', (error) => settle({ error: new Error(`reading snapshot ${path}: the reader thread failed: ${error.message}`, { cause: error }) }));
    worker.on('exit', (code) => settle({ error: new Error(`reading snapshot ${path}: the reader thread exited (code ${code}) before it finished`) }));
  });
}

function rebuild(error: WorkerError, path: string): Error {
  if (error.kind === 'corrupt') return new CorruptDataError(error.file, error.detail);
  return new Error(`reading snapshot ${path}: ${error.name}: ${error.message}`);
}

/**
 * Starts a worker on a TypeScript module. Worker threads do not inherit the
 * tsx hooks the process was started with (bin/quorumkv.js, vitest), so a
 * one-line bootstrap registers them in the worker before importing it.
 */
export function startWorker(entry: URL, workerData: unknown): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { eval: true, workerData });
}
