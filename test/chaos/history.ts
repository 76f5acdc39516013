/**
 * What a chaos run records: every operation (invoked, then ok, fail or
 * unknown, with times in ms since the run began), every fault window, and
 * notable events. It is written out as the report's history.json and is
 * everything the checks look at.
 */

export type Outcome = 'ok' | 'fail' | 'unknown';
export type WorkloadName = 'register' | 'list' | 'hash' | 'filler';
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface OpRecord {
  readonly id: number;
  /** The sequential client that issued it; -1 for the runner's own probes and final reads. */
  readonly client: number;
  readonly workload: WorkloadName;
  /** 'run' while faults are injected; 'final' for the reads after healing. */
  readonly phase: 'run' | 'final';
  /** The node the request went to. */
  readonly node: string;
  /** The operation: get, put, cas, rpush, lrange, hset, hdel, hget, hgetall, fill. */
  readonly f: string;
  readonly key: string;
  readonly input: Json;
  readonly call: number;
  /** Null while pending, and for an unknown outcome. */
  ret: number | null;
  outcome: Outcome | 'pending';
  output: Json;
  error: string | null;
}

export interface FaultRecord {
  readonly id: number;
  readonly nemesis: string;
  readonly description: string;
  readonly targets: readonly string[];
  readonly start: number;
  /** When healing began and when it was done. */
  healStart: number | null;
  end: number | null;
  /** When every fault of this fault's cycle was healed (faults injected together heal together). */
  cycleHealed: number | null;
  /** When a write first succeeded after that; null if none did within the bound. */
  recovered: number | null;
  /** A single-node kill that took the leader down (for the unavailability figure). */
  readonly leaderKilled: boolean;
  error: string | null;
}

export interface EventRecord {
  readonly at: number;
  readonly text: string;
}

export class History {
  readonly ops: OpRecord[] = [];
  readonly faults: FaultRecord[] = [];
  readonly events: EventRecord[] = [];

  private readonly clock: () => number;

  constructor(clock: () => number) {
    // Microseconds are plenty, and keep explanations and history.json readable.
    this.clock = () => Math.round(clock() * 1000) / 1000;
  }

  now(): number {
    return this.clock();
  }

  invoke(op: Omit<OpRecord, 'id' | 'call' | 'ret' | 'outcome' | 'output' | 'error'>): OpRecord {
    const record: OpRecord = { ...op, id: this.ops.length, call: this.clock(), ret: null, outcome: 'pending', output: null, error: null };
    this.ops.push(record);
    return record;
  }

  complete(op: OpRecord, outcome: Outcome, output: Json, error: string | null = null): void {
    if (op.outcome !== 'pending') throw new Error(`operation ${op.id} completed twice`);
    op.outcome = outcome;
    op.output = output;
    op.error = error;
    op.ret = outcome === 'unknown' ? null : this.clock();
  }

  addFault(fault: Omit<FaultRecord, 'id' | 'start' | 'healStart' | 'end' | 'cycleHealed' | 'recovered' | 'error'>, start = this.clock()): FaultRecord {
    const record: FaultRecord = { ...fault, id: this.faults.length, start, healStart: null, end: null, cycleHealed: null, recovered: null, error: null };
    this.faults.push(record);
    return record;
  }

  event(text: string): void {
    this.events.push({ at: this.clock(), text });
  }
}
