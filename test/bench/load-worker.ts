/**
 * A load-generator process, forked by cluster.ts (never run on its own). It
 * runs apart from the benchmark's own process so that its CPU can be measured
 * and so that nothing else on its event loop delays a send or a completion.
 *
 * Closed loop: each of `concurrency` slots sends a request, and sends the
 * next one as soon as the answer arrives. Latency runs from send to answer.
 *
 * Open loop (`ratePerSecond` > 0): requests are due on a fixed schedule
 * (RateSchedule) and sent as soon as they are due and a slot is free; latency
 * runs from the due time, so time spent queued behind a slow server counts.
 */
import * as grpc from '@grpc/grpc-js';
import { Histogram } from './load-histogram.ts';
import type { LoadSpec, OpResult, ParentMessage, SliceResult, Window, WorkerMessage, WorkerResult } from './load-protocol.ts';
import { RateSchedule } from './load-rate.ts';
import { STATUS_OK, connect } from './load-transport.ts';
import type { Connection } from './load-transport.ts';
import { workloadFor } from './load-workloads.ts';
import type { OpKind } from './load-workloads.ts';

/** A slot whose request failed waits this long before the next, so that a down server is not hammered in a tight loop. */
const RETRY_PAUSE_MS = 10;
const CONNECT_TIMEOUT_MS = 10_000;
/**
 * Requests per op kind encoded before the clock starts (10,000 keys take about
 * 0.1 s). A larger key space encodes the rest on first use, during warmup
 * mostly, rather than hold millions of buffers.
 */
const EAGER_ENCODE_LIMIT = 250_000;

function send(message: WorkerMessage): void {
  process.send?.(message);
}

const statusName = (code: number): string => grpc.status[code] ?? `CODE_${code}`;

/** Encoded requests of one op kind, kept: the same key and variant is the same bytes every time. */
class RequestTable {
  private readonly prepared: (Buffer | undefined)[];

  constructor(
    readonly op: OpKind,
    private readonly keys: number,
    private readonly connection: Connection,
  ) {
    this.prepared = new Array<Buffer | undefined>(keys * op.variants);
  }

  get(key: number, variant: number): Buffer {
    const slot = key * this.op.variants + variant;
    let request = this.prepared[slot];
    if (request === undefined) {
      request = this.connection.prepare(this.op.encode(key, variant));
      this.prepared[slot] = request;
    }
    return request;
  }

  /** Encodes the first `limit` requests now. */
  fill(limit: number): void {
    const count = Math.min(limit, this.prepared.length);
    for (let slot = 0; slot < count; slot++) this.get(Math.floor(slot / this.op.variants), slot % this.op.variants);
  }

  random(): Buffer {
    const key = Math.floor(Math.random() * this.keys);
    const variant = this.op.variants === 1 ? 0 : Math.floor(Math.random() * this.op.variants);
    return this.get(key, variant);
  }
}

interface Prepared {
  readonly spec: LoadSpec;
  readonly connections: Connection[];
  readonly tables: RequestTable[];
  /** Cumulative weights of the tables, for picking one per request. */
  readonly cumulative: number[];
}

async function prepare(spec: LoadSpec, ops: readonly OpKind[]): Promise<Prepared> {
  const connections = spec.connections.map((address, i) => connect(spec.client, address, i));
  try {
    await Promise.all(connections.map((c) => c.ready(CONNECT_TIMEOUT_MS)));
  } catch (error) {
    for (const c of connections) c.close();
    throw error;
  }
  // Prepared bytes do not depend on the connection, only on the client kind: any connection can prepare them.
  const tables = ops.map((op) => new RequestTable(op, spec.workload.keys, connections[0]!));
  for (const table of tables) table.fill(EAGER_ENCODE_LIMIT);
  let total = 0;
  const cumulative = ops.map((op) => (total += op.weight));
  return { spec, connections, tables, cumulative };
}

function pickTable(p: Prepared): number {
  if (p.tables.length === 1) return 0;
  const x = Math.random() * p.cumulative[p.cumulative.length - 1]!;
  let i = 0;
  while (x >= p.cumulative[i]!) i++;
  return i;
}

/** Sends one preload request per key in firstKey, firstKey + keyStep, ... with `concurrency` in flight. */
async function preload(spec: LoadSpec, firstKey: number, keyStep: number): Promise<WorkerMessage> {
  const workload = workloadFor(spec.system, spec.workload);
  if (workload.preload === null) return { type: 'preloaded', keys: 0, errors: {} };
  const p = await prepare(spec, [workload.preload]);
  const table = p.tables[0]!;
  const errors: Record<string, number> = {};
  let next = firstKey;
  let done = 0;
  try {
    await new Promise<void>((resolve) => {
      let inflight = 0;
      const issue = (slot: number): void => {
        if (next >= spec.workload.keys) {
          if (inflight === 0) resolve();
          return;
        }
        const key = next;
        next += keyStep;
        inflight++;
        p.connections[slot % p.connections.length]!.call(table.op.path, table.get(key, 0), (code) => {
          inflight--;
          done++;
          if (code !== STATUS_OK) errors[statusName(code)] = (errors[statusName(code)] ?? 0) + 1;
          issue(slot);
        });
      };
      for (let slot = 0; slot < spec.concurrency; slot++) issue(slot);
      if (inflight === 0) resolve();
    });
  } finally {
    for (const c of p.connections) c.close();
  }
  return { type: 'preloaded', keys: done, errors };
}

class Recorder {
  readonly histograms: Histogram[];
  readonly errors: Record<string, number>[];
  private readonly slices: { histogram: Histogram; errors: number }[] = [];
  completed = 0;
  failed = 0;

  /** `sliceMs` > 0: also record by slice of the window, from `fromMs` on this process's monotonic clock. */
  constructor(
    private readonly tables: readonly RequestTable[],
    private readonly fromMs: number,
    private readonly sliceMs: number,
  ) {
    this.histograms = tables.map(() => new Histogram());
    this.errors = tables.map(() => ({}));
  }

  /** `atMs`: the instant that places the request in a slice (its due time, or its completion in closed loop). */
  record(table: number, code: number, latencyMs: number, atMs: number): void {
    const slice = this.sliceMs > 0 ? this.sliceAt(atMs) : null;
    if (code === STATUS_OK) {
      this.histograms[table]!.record(latencyMs * 1000);
      slice?.histogram.record(latencyMs * 1000);
    } else {
      const errors = this.errors[table]!;
      const name = statusName(code);
      errors[name] = (errors[name] ?? 0) + 1;
      if (slice !== null) slice.errors++;
    }
  }

  private sliceAt(atMs: number): { histogram: Histogram; errors: number } {
    const index = Math.max(0, Math.floor((atMs - this.fromMs) / this.sliceMs));
    while (this.slices.length <= index) this.slices.push({ histogram: new Histogram(), errors: 0 });
    return this.slices[index]!;
  }

  sliceResults(): SliceResult[] {
    return this.slices.map((s) => ({ histogram: s.histogram.serialize(), errors: s.errors }));
  }

  ops(): Record<string, OpResult> {
    // Two tables may report under one name (none do today); merge rather than overwrite.
    const merged: Record<string, { histogram: Histogram; errors: Record<string, number> }> = {};
    this.tables.forEach((table, i) => {
      const entry = (merged[table.op.name] ??= { histogram: new Histogram(), errors: {} });
      entry.histogram.merge(this.histograms[i]!);
      for (const [name, n] of Object.entries(this.errors[i]!)) entry.errors[name] = (entry.errors[name] ?? 0) + n;
    });
    return Object.fromEntries(Object.entries(merged).map(([name, e]) => [name, { histogram: e.histogram.serialize(), errors: e.errors }]));
  }
}

/** Runs the measured load over a window and resolves with what was measured. */
function measure(p: Prepared, window: Window): Promise<WorkerResult> {
  // The window in this process's monotonic clock.
  const start = window.startAtMs - performance.timeOrigin;
  const from = window.measureFromMs - performance.timeOrigin;
  const end = window.endAtMs - performance.timeOrigin;
  const recorder = new Recorder(p.tables, from, p.spec.sliceMs);
  const report = (): void => send({ type: 'progress', completed: recorder.completed, failed: recorder.failed, atMs: performance.timeOrigin + performance.now() });
  const progress = setInterval(report, 1000);
  let inflight = 0;
  let finished = false;

  return new Promise<WorkerResult>((resolve) => {
    let drainTimer: NodeJS.Timeout | undefined;
    /** Open loop: requests due before the end that have not been sent yet. */
    let unsent = (): number => 0;
    let maxBacklog = 0;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(progress);
      clearTimeout(drainTimer);
      report();
      resolve({ ops: recorder.ops(), unfinished: inflight + unsent(), maxBacklog, slices: recorder.sliceResults() });
    };
    const maybeDrained = (now: number): void => {
      if (now >= end && inflight === 0 && unsent() === 0) finish();
    };
    const begin = (): void => {
      drainTimer = setTimeout(finish, end - performance.now() + window.drainMs);
      // Nothing may be in flight at the end (a low rate, or slots pausing after errors): check then too.
      setTimeout(() => maybeDrained(performance.now()), Math.max(0, end - performance.now()) + 1);
      if (p.spec.ratePerSecond > 0) openLoop();
      else closedLoop();
    };

    const closedLoop = (): void => {
      const issue = (slot: number): void => {
        const sentAt = performance.now();
        if (finished || sentAt >= end) return; // a slot back from its retry pause after the end
        const t = pickTable(p);
        const table = p.tables[t]!;
        inflight++;
        p.connections[slot % p.connections.length]!.call(table.op.path, table.random(), (code) => {
          inflight--;
          if (finished) return;
          const now = performance.now();
          recorder.completed++;
          if (code !== STATUS_OK) recorder.failed++;
          // Closed loop: measure what completes inside the window.
          if (now >= from && now < end) recorder.record(t, code, now - sentAt, now);
          if (now >= end) maybeDrained(now);
          else if (code === STATUS_OK) issue(slot);
          else setTimeout(issue, RETRY_PAUSE_MS, slot);
        });
      };
      for (let slot = 0; slot < p.spec.concurrency; slot++) issue(slot);
    };

    const openLoop = (): void => {
      const schedule = new RateSchedule(p.spec.ratePerSecond, start + p.spec.rateOffsetMs);
      // Requests due before the end but not sent by the end of the drain (the server fell that far behind) are unfinished too.
      unsent = () => schedule.dueCount(end - 1e-6);
      let nextConnection = 0;
      let timer: NodeJS.Timeout | null = null;
      const pump = (): void => {
        timer = null;
        if (finished) return;
        const now = performance.now();
        // Only the measured window's backlog is reported: a cold server falling behind during warmup is expected.
        if (now >= from) maxBacklog = Math.max(maxBacklog, schedule.dueCount(Math.min(now, end - 1e-6)));
        while (inflight < p.spec.concurrency && schedule.nextDueMs() < end) {
          const due = schedule.take(now);
          if (due === undefined) break;
          const t = pickTable(p);
          const table = p.tables[t]!;
          inflight++;
          p.connections[nextConnection]!.call(table.op.path, table.random(), (code) => {
            inflight--;
            if (finished) return;
            const done = performance.now();
            recorder.completed++;
            if (code !== STATUS_OK) recorder.failed++;
            // Open loop: measure what was due inside the window, from its due time.
            if (due >= from) recorder.record(t, code, done - due, due);
            // A free slot may unblock requests already due.
            if (timer === null) pump();
            maybeDrained(done);
          });
          nextConnection = (nextConnection + 1) % p.connections.length;
        }
        // When every slot is busy, the next completion pumps instead.
        if (inflight < p.spec.concurrency && schedule.nextDueMs() < end) {
          timer = setTimeout(pump, Math.max(0, schedule.nextDueMs() - performance.now()));
        }
        maybeDrained(now);
      };
      pump();
    };

    setTimeout(begin, Math.max(0, start - performance.now()));
  });
}

let prepared: Prepared | null = null;

async function handle(message: ParentMessage): Promise<void> {
  switch (message.type) {
    case 'preload':
      send(await preload(message.spec, message.firstKey, message.keyStep));
      return;
    case 'prepare': {
      const workload = workloadFor(message.spec.system, message.spec.workload);
      prepared = await prepare(message.spec, workload.ops);
      send({ type: 'ready' });
      return;
    }
    case 'go': {
      if (prepared === null) throw new Error('go before prepare');
      const p = prepared;
      prepared = null;
      try {
        send({ type: 'result', result: await measure(p, message.window) });
      } finally {
        for (const c of p.connections) c.close();
      }
      return;
    }
  }
}

if (process.send === undefined) {
  console.error('load-worker.ts is a load-generator process that `npm run bench -- cluster` starts; it does nothing on its own.');
  process.exitCode = 2;
} else {
  process.on('message', (message: ParentMessage) => {
    handle(message).catch((error: unknown) => send({ type: 'failed', message: error instanceof Error ? error.message : String(error) }));
  });
  // The benchmark went away (crashed or killed): nothing left to do.
  process.on('disconnect', () => process.exit(0));
}
