/**
 * The worker thread of readSnapshotRowsInWorker (snapshot-read-thread.ts):
 * reads and checks a snapshot file's rows with SnapshotFileReader (keyBatches
 * and sessions), and posts the keys as packed batches, at most
 * MAX_BATCHES_AHEAD ahead of what the main thread has taken.
 */
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { CorruptDataError } from './errors.ts';
import { sharedCopy } from './packed-key-rows.ts';
import type { PackedKeyRows } from './packed-key-rows.ts';
import { SnapshotFileReader } from './snapshot-file.ts';
import { CONSUMED, GIVE_WAY, GIVE_WAY_NICE, MAX_BATCHES_AHEAD, STOP } from './snapshot-read-thread.ts';
import type { ReadRequest, WorkerError, WorkerMessage } from './snapshot-read-thread.ts';

/** How long one wait for the main thread lasts before the stop flag is looked at again. */
const WAIT_MS = 100;

class Stopped extends Error {}

function run(port: NonNullable<typeof parentPort>, request: ReadRequest): void {
  const control = new Int32Array(request.control);
  const post = (message: WorkerMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);
  let sent = 0;
  let gaveWay = false;
  const send = (batch: PackedKeyRows): void => {
    for (;;) {
      if (Atomics.load(control, STOP) !== 0) throw new Stopped();
      if (!gaveWay && Atomics.load(control, GIVE_WAY) !== 0) {
        gaveWay = true;
        giveWay();
      }
      const consumed = Atomics.load(control, CONSUMED);
      if (sent - consumed < MAX_BATCHES_AHEAD) break;
      Atomics.wait(control, CONSUMED, consumed, WAIT_MS);
    }
    post({ kind: 'keys', batch: sharedCopy(batch) }, [batch.fields.buffer as ArrayBuffer]);
    sent++;
  };
  const reader = SnapshotFileReader.open(request.path, request.expect);
  try {
    for (const batch of reader.keyBatches()) send(batch);
    post({ kind: 'done', sessions: [...reader.sessions()] });
  } finally {
    reader.close();
  }
}

/** Lowers this thread's CPU priority: on Linux (who = 0) nice applies to the calling thread only, not the node's other threads. */
function giveWay(): void {
  if (process.platform !== 'linux') return;
  try {
    setPriority(0, GIVE_WAY_NICE);
  } catch {
    // Only a hint: a thread that may not lower its priority reads at the normal one.
  }
}

function describe(error: unknown): WorkerError {
  if (error instanceof CorruptDataError) return { kind: 'corrupt', file: error.file, detail: error.detail };
  const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
  return { kind: 'other', name, message };
}

const port = parentPort;
if (port === null) throw new Error('snapshot-read-worker.ts runs only as a worker thread');
try {
  run(port, workerData as ReadRequest);
} catch (error) {
  if (!(error instanceof Stopped)) port.postMessage({ kind: 'error', error: describe(error) } satisfies WorkerMessage);
}
