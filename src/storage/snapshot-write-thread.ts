/**
 * Writes snapshot files on a worker thread (snapshot-write-worker.ts) that
 * runs at a low OS priority: SQLite inserts, row CRCs, the incremental
 * update's file copy and row replacement, the fsync and the rename all
 * happen there, so a snapshot takes as little as possible from the main
 * thread, which serves requests and drives Raft. The main thread only walks
 * the point-in-time rows it is given (SnapshotContent), checks them, and
 * packs them into transferable batches (packed-key-rows.ts), a few
 * milliseconds at a time, at most MAX_BATCHES_AHEAD ahead of the writer.
 *
 * Same file format, checks and errors as before the writer had a thread of
 * its own: the worker's errors are rebuilt as the classes they were
 * (CorruptDataError, InvalidWriteError, IncrementalDeclinedError). A write
 * that fails, is called off, or whose thread dies leaves neither the temp
 * file nor the named one; the next write starts a new thread if need be.
 */
import type { Worker, WorkerOptions } from 'node:worker_threads';
import { removeIfPresent } from './durable-fs.ts';
import { CorruptDataError, InvalidWriteError } from './errors.ts';
import { KEY_TYPE_CODES, NO_EXPIRY, PackedKeyRowsBuilder } from './packed-key-rows.ts';
import type { PackedKeyRows } from './packed-key-rows.ts';
import { checkKeyRow, checkSessionRow } from './snapshot-file.ts';
import type { SnapshotSummary, SnapshotWriterIdentity } from './snapshot-file.ts';
import { startWorker } from '../threads/start-worker.ts';
import { IncrementalDeclinedError } from './snapshot-update.ts';
import { TimeSlice } from './time-slice.ts';
import type { IncrementalLimits, SnapshotUpdatePlan } from './snapshot-update.ts';
import type { RowSource, SnapshotContent, SnapshotFileInfo, SnapshotHeader, SnapshotKeyChanges, SnapshotKeyRow, SnapshotSessionRow } from './types.ts';

/** Batches the main thread may have sent that the writer has not yet taken: bounds the memory between the two. */
export const MAX_BATCHES_AHEAD = 8;
/**
 * The writer thread's nice value. On Linux a thread's nice value is its own
 * (setpriority(PRIO_PROCESS, 0) in a thread sets that thread's), so the main
 * thread keeps its priority; at 10 the writer gets about a tenth of a core
 * the main thread also wants, and all of an idle one.
 */
export const WRITER_NICE = 10;
const NO_BYTES = new Uint8Array(0);

/** Main thread to writer. `id` names the write a message belongs to. */
export type WriterRequest =
  | { readonly kind: 'whole'; readonly id: number; readonly path: string; readonly header: SnapshotHeader; readonly identity: SnapshotWriterIdentity }
  | { readonly kind: 'update'; readonly id: number; readonly plan: SnapshotUpdatePlan }
  /** Update only: changed keys (rows without values), whose rows in the base go. */
  | { readonly kind: 'changed'; readonly id: number; readonly batch: PackedKeyRows }
  | { readonly kind: 'delete-changed'; readonly id: number }
  | { readonly kind: 'keys'; readonly id: number; readonly batch: PackedKeyRows }
  | { readonly kind: 'finish'; readonly id: number; readonly sessions: readonly SnapshotSessionRow[]; readonly summary: SnapshotSummary }
  | { readonly kind: 'abort'; readonly id: number };

/** A worker error travels as its parts and is rebuilt as the same class with the same message. */
export type WriterError =
  | { readonly kind: 'corrupt'; readonly file: string; readonly detail: string }
  | { readonly kind: 'invalid-write' | 'declined'; readonly message: string }
  | { readonly kind: 'other'; readonly name: string; readonly message: string };

/** Writer to main thread. */
export type WriterReply =
  /** The thread is up: its OS thread id and nice value (null where the OS does not say). */
  | { readonly kind: 'started'; readonly osThreadId: number | null; readonly nice: number | null }
  /** One 'changed' or 'keys' batch is in. */
  | { readonly kind: 'taken'; readonly id: number }
  | { readonly kind: 'changed-deleted'; readonly id: number }
  | { readonly kind: 'written'; readonly id: number; readonly info: SnapshotFileInfo }
  | { readonly kind: 'aborted'; readonly id: number }
  /** The write failed; the writer removed its temp file and drops the write's further messages. */
  | { readonly kind: 'failed'; readonly id: number; readonly error: WriterError };

/** The writer thread as the OS sees it, once it has started. */
export interface WriterThreadInfo {
  readonly osThreadId: number | null;
  readonly nice: number | null;
}

/** One write on the writer thread, as the main thread follows it. */
class WriteCall {
  sent = 0;
  taken = 0;
  changedDeleted = false;
  info: SnapshotFileInfo | null = null;
  aborted = false;
  /** The writer reported a failure (it cleaned up), or its thread died (it did not). */
  failure: Error | null = null;
  threadDied = false;
  private wake: (() => void) | null = null;

  constructor(
    readonly id: number,
    readonly path: string,
    readonly worker: Worker,
  ) {}

  post(request: WriterRequest): void {
    if (request.kind === 'keys' || request.kind === 'changed') {
      const { batch } = request;
      // Keys and values are shared (PackedKeyRowsBuilder), not transferred.
      this.worker.postMessage(request, [batch.fields.buffer as ArrayBuffer]);
      this.sent++;
    } else {
      this.worker.postMessage(request);
    }
  }

  /** Something about this call changed: whoever waits looks again. */
  notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Resolves once `done()` holds; rejects with the failure if the write fails first. */
  async until(done: () => boolean): Promise<void> {
    for (;;) {
      this.throwIfFailed();
      if (done()) return;
      await this.change();
    }
  }

  /** The written file's info, once the writer reports it. */
  async written(): Promise<SnapshotFileInfo> {
    for (;;) {
      this.throwIfFailed();
      if (this.info !== null) return this.info;
      await this.change();
    }
  }

  private change(): Promise<void> {
    return new Promise<void>((resolve) => (this.wake = resolve));
  }

  throwIfFailed(): void {
    if (this.failure !== null) throw this.failure;
  }
}

/**
 * The snapshot writer thread of one data dir, started on the first write
 * and kept for the next (a snapshot is taken every few seconds under load;
 * a thread costs tens of milliseconds to start). One write at a time: a
 * second waits for the first.
 */
export class SnapshotWriterThread {
  private worker: Worker | null = null;
  private call: WriteCall | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private nextId = 1;
  private closed = false;
  private started: WriterThreadInfo | null = null;

  constructor(
    /** Starts the worker thread; a test may start one that dies on purpose. */
    private readonly launch: (options: WorkerOptions) => Worker = (options) => startWorker('storage/snapshot-write-worker.ts', options),
  ) {}

  /** The running writer thread's OS thread id and nice value; null before it has started. */
  get thread(): WriterThreadInfo | null {
    return this.started;
  }

  /** Writes the snapshot whole to `path` (see SnapshotFileWriter). */
  writeWhole(path: string, header: SnapshotHeader, content: SnapshotContent, identity: SnapshotWriterIdentity): Promise<SnapshotFileInfo> {
    return this.exclusive(async () => {
      const call = this.begin(path, (id) => ({ kind: 'whole', id, path, header, identity }));
      return this.run(call, async () => {
        await sendRows(call, content.keys, checkKeyRow);
        return finish(call, content);
      });
    });
  }

  /**
   * Writes the snapshot to `path` as an update of the base file (see
   * SnapshotFileUpdater). Rejects with IncrementalDeclinedError, having
   * consumed no row of `content` or `changes`, when the base does not serve.
   */
  update(
    path: string,
    basePath: string,
    header: SnapshotHeader,
    content: SnapshotContent,
    changes: SnapshotKeyChanges,
    identity: SnapshotWriterIdentity,
    limits: IncrementalLimits,
  ): Promise<SnapshotFileInfo> {
    return this.exclusive(async () => {
      const plan: SnapshotUpdatePlan = {
        path,
        basePath,
        header,
        identity,
        baseIndex: changes.baseIndex,
        baseDigest: changes.baseDigest,
        changedKeys: changes.keys.size,
        limits,
      };
      const call = this.begin(path, (id) => ({ kind: 'update', id, plan }));
      return this.run(call, async () => {
        await sendChangedKeys(call, changes.keys);
        call.post({ kind: 'delete-changed', id: call.id });
        await call.until(() => call.changedDeleted);
        // From here on the changed rows are being consumed: no going back to a whole write.
        await sendRows(call, changes.rows, (row) => {
          checkKeyRow(row);
          if (!changes.keys.has(row.key)) throw new InvalidWriteError(`the changed rows hold key '${row.key}', which is not among the changed keys`);
        });
        return finish(call, content);
      });
    });
  }

  /** Runs a write's steps; a step that fails calls the write off (no file is left), and the call ends either way. */
  private async run(call: WriteCall, steps: () => Promise<SnapshotFileInfo>): Promise<SnapshotFileInfo> {
    try {
      return await steps();
    } catch (error) {
      await this.callOff(call);
      throw error;
    } finally {
      this.end(call);
    }
  }

  /** Starts the thread ahead of the first write (idle, it does not keep the process alive). */
  start(): void {
    if (this.closed || this.worker !== null) return;
    this.startWorker().unref();
  }

  /** Stops the thread once the write in progress (if any) has settled; later writes are refused. */
  close(): void {
    this.closed = true;
    if (this.call === null) this.stopWorker();
  }

  private exclusive<T>(write: () => Promise<T>): Promise<T> {
    const run = (): Promise<T> => {
      if (this.closed) throw new Error('the snapshot writer thread is closed');
      return write();
    };
    const result = this.queue.then(run, run);
    this.queue = result.catch(() => undefined);
    return result;
  }

  private begin(path: string, request: (id: number) => WriterRequest): WriteCall {
    const worker = this.worker ?? this.startWorker();
    // Held while a write runs: a process whose only work is this write must not exit under it.
    worker.ref();
    const call = new WriteCall(this.nextId++, path, worker);
    this.call = call;
    try {
      call.post(request(call.id));
    } catch (error) {
      this.end(call);
      throw error;
    }
    return call;
  }

  private end(call: WriteCall): void {
    if (this.call === call) this.call = null;
    if (this.closed) this.stopWorker();
    else this.worker?.unref();
  }

  /** After a failure: makes sure neither the temp file nor the named one is left. */
  private async callOff(call: WriteCall): Promise<void> {
    if (call.failure === null) {
      // The failure is the main thread's (a row source threw, a bad row): the writer removes its temp file.
      call.post({ kind: 'abort', id: call.id });
      try {
        await call.until(() => call.aborted);
      } catch {
        // It failed or died meanwhile: handled below.
      }
    }
    if (call.threadDied) removeIfPresent(`${call.path}.tmp`);
    // Renamed before the writer could report: a name no catalog records.
    removeIfPresent(call.path);
  }

  private startWorker(): Worker {
    const worker = this.launch({ workerData: null });
    this.worker = worker;
    worker.on('message', (reply: WriterReply) => this.onReply(reply));
    const died = (reason: string): void => {
      if (this.worker === worker) {
        this.worker = null;
        this.started = null;
      }
      const call = this.call;
      if (call === null || call.worker !== worker || call.failure !== null || call.info !== null || call.aborted) return;
      call.failure = new Error(`writing snapshot ${call.path}: the writer thread ${reason} before it finished`);
      call.threadDied = true;
      call.notify();
    };
    worker.on('error', (error) => died(`failed (${error.message})`));
    worker.on('exit', (code) => died(`exited (code ${code})`));
    return worker;
  }

  private stopWorker(): void {
    const worker = this.worker;
    this.worker = null;
    this.started = null;
    if (worker !== null) void worker.terminate();
  }

  private onReply(reply: WriterReply): void {
    if (reply.kind === 'started') {
      this.started = { osThreadId: reply.osThreadId, nice: reply.nice };
      return;
    }
    const call = this.call;
    if (call === null || call.id !== reply.id) return;
    switch (reply.kind) {
      case 'taken':
        call.taken++;
        break;
      case 'changed-deleted':
        call.changedDeleted = true;
        break;
      case 'written':
        call.info = reply.info;
        break;
      case 'aborted':
        call.aborted = true;
        break;
      case 'failed':
        call.failure = rebuild(reply.error, call.path);
        break;
    }
    call.notify();
  }
}

/** Packs the changed keys (rows without values) and sends them. */
async function sendChangedKeys(call: WriteCall, keys: ReadonlySet<string>): Promise<void> {
  const builder = new PackedKeyRowsBuilder();
  const slice = new TimeSlice();
  for (const key of keys) {
    builder.add(key, 0, NO_BYTES, NO_EXPIRY);
    if (builder.full) await send(call, 'changed', builder, slice);
    if (slice.spent()) await pause(call, slice);
  }
  if (builder.rowCount > 0) await send(call, 'changed', builder, slice);
}

/** Checks, packs and sends the key rows, walking a plain iterator without a promise per row. */
async function sendRows(call: WriteCall, rows: RowSource<SnapshotKeyRow>, check: (row: SnapshotKeyRow) => void): Promise<void> {
  const builder = new PackedKeyRowsBuilder();
  const slice = new TimeSlice();
  const add = (row: SnapshotKeyRow): void => {
    check(row);
    builder.add(row.key, KEY_TYPE_CODES[row.type], row.value, row.expiresAtMs ?? NO_EXPIRY);
  };
  if (Symbol.iterator in rows) {
    for (const row of rows) {
      add(row);
      if (builder.full) await send(call, 'keys', builder, slice);
      if (slice.spent()) await pause(call, slice);
    }
  } else {
    for await (const row of rows) {
      add(row);
      if (builder.full) await send(call, 'keys', builder, slice);
      if (slice.spent()) await pause(call, slice);
    }
  }
  if (builder.rowCount > 0) await send(call, 'keys', builder, slice);
}

/** Sends the builder's batch once the writer has room for it. */
async function send(call: WriteCall, kind: 'keys' | 'changed', builder: PackedKeyRowsBuilder, slice: TimeSlice): Promise<void> {
  if (call.sent - call.taken >= MAX_BATCHES_AHEAD) {
    await call.until(() => call.sent - call.taken < MAX_BATCHES_AHEAD);
    slice.restart();
  }
  call.post({ kind, id: call.id, batch: builder.take() });
}

async function pause(call: WriteCall, slice: TimeSlice): Promise<void> {
  await slice.yield();
  // The writer may have failed meanwhile: no point packing more.
  call.throwIfFailed();
}

/** Sends the sessions and waits for the file to be in place. */
async function finish(call: WriteCall, content: SnapshotContent): Promise<SnapshotFileInfo> {
  const sessions = await collectSessions(content.sessions);
  call.post({ kind: 'finish', id: call.id, sessions, summary: { stateDigest: content.stateDigest ?? null, keyCount: content.keyCount ?? null } });
  return call.written();
}

/** The sessions, checked (they are few: they go over as one message). */
async function collectSessions(source: RowSource<SnapshotSessionRow>): Promise<SnapshotSessionRow[]> {
  const sessions: SnapshotSessionRow[] = [];
  const slice = new TimeSlice();
  if (Symbol.iterator in source) {
    for (const row of source) {
      checkSessionRow(row);
      sessions.push(row);
      if (slice.spent()) await slice.yield();
    }
  } else {
    for await (const row of source) {
      checkSessionRow(row);
      sessions.push(row);
      if (slice.spent()) await slice.yield();
    }
  }
  return sessions;
}

function rebuild(error: WriterError, path: string): Error {
  switch (error.kind) {
    case 'corrupt':
      return new CorruptDataError(error.file, error.detail);
    case 'invalid-write':
      return new InvalidWriteError(error.message);
    case 'declined':
      return new IncrementalDeclinedError(error.message);
    case 'other':
      return new Error(`writing snapshot ${path}: ${error.name}: ${error.message}`);
  }
}
