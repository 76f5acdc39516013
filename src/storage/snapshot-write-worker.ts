/**
 * The worker thread of SnapshotWriterThread (snapshot-write-thread.ts):
 * lowers its own priority, then runs one SnapshotFileWriter or
 * SnapshotFileUpdater at a time on the batches the main thread sends,
 * answering each batch once it is in (the main thread's flow control).
 */
import * as fs from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { CorruptDataError, InvalidWriteError } from './errors.ts';
import { SnapshotFileWriter } from './snapshot-file.ts';
import { IncrementalDeclinedError, SnapshotFileUpdater } from './snapshot-update.ts';
import { WRITER_NICE } from './snapshot-write-thread.ts';
import type { WriterError, WriterReply, WriterRequest } from './snapshot-write-thread.ts';

type ActiveWrite =
  | { readonly id: number; readonly kind: 'whole'; readonly file: SnapshotFileWriter }
  | { readonly id: number; readonly kind: 'update'; readonly file: SnapshotFileUpdater };

/** This thread's id as the OS knows it (Linux), for the main thread to report and tests to look up. */
function osThreadId(): number | null {
  try {
    return Number(fs.readFileSync('/proc/thread-self/stat', 'utf8').split(' ', 1)[0]);
  } catch {
    return null;
  }
}

/** Sets this thread's nice value (on Linux, this thread's only); a system that refuses leaves it as it was. */
function lowerPriority(): number | null {
  try {
    setPriority(0, WRITER_NICE);
  } catch {
    // A container or platform that does not allow it: the writer still works, at normal priority.
  }
  try {
    return getPriority(0);
  } catch {
    return null;
  }
}

function describe(error: unknown): WriterError {
  if (error instanceof CorruptDataError) return { kind: 'corrupt', file: error.file, detail: error.detail };
  if (error instanceof IncrementalDeclinedError) return { kind: 'declined', message: error.message };
  if (error instanceof InvalidWriteError) return { kind: 'invalid-write', message: error.message };
  const { name, message } = error instanceof Error ? error : { name: 'Error', message: String(error) };
  return { kind: 'other', name, message };
}

const port = parentPort;
if (port === null) throw new Error('snapshot-write-worker.ts runs only as a worker thread');
const reply = (message: WriterReply): void => port.postMessage(message);

let active: ActiveWrite | null = null;

/** Handles one request; throws what the write failed with. */
function handle(request: WriterRequest): void {
  if (request.kind === 'whole' || request.kind === 'update') {
    // A new write supersedes one the main thread abandoned without a word (it never does).
    active?.file.abort();
    active = null;
    active =
      request.kind === 'whole'
        ? { id: request.id, kind: 'whole', file: SnapshotFileWriter.create(request.path, request.header, request.identity) }
        : { id: request.id, kind: 'update', file: SnapshotFileUpdater.open(request.plan) };
    return;
  }
  const write = active;
  if (write === null || write.id !== request.id) {
    // A write that failed already: the main thread learns it from that reply; its later batches are dropped.
    if (request.kind === 'abort') reply({ kind: 'aborted', id: request.id });
    return;
  }
  switch (request.kind) {
    case 'changed':
    case 'delete-changed':
      if (write.kind !== 'update') throw new Error(`'${request.kind}' is for an incremental write`);
      if (request.kind === 'changed') {
        write.file.findChanged(request.batch);
        reply({ kind: 'taken', id: request.id });
      } else {
        write.file.deleteChanged();
        reply({ kind: 'changed-deleted', id: request.id });
      }
      return;
    case 'keys':
      write.file.addKeys(request.batch);
      reply({ kind: 'taken', id: request.id });
      return;
    case 'finish': {
      const info = write.file.finish(request.sessions, request.summary);
      active = null;
      reply({ kind: 'written', id: request.id, info });
      return;
    }
    case 'abort':
      write.file.abort();
      active = null;
      reply({ kind: 'aborted', id: request.id });
      return;
  }
}

port.on('message', (request: WriterRequest) => {
  try {
    handle(request);
  } catch (error) {
    active?.file.abort();
    active = null;
    reply({ kind: 'failed', id: request.id, error: describe(error) });
  }
});
reply({ kind: 'started', osThreadId: osThreadId(), nice: lowerPriority() });
