/**
 * What the clients do. Each workload plans one request at a time for a
 * client and says how to read its answer into the history.
 *
 * Keys rotate: a key lives for one "generation" of keyLifeMs, then clients
 * move to fresh keys. That keeps every key's history short, which is what
 * keeps the linearizability search (exponential in the worst case) fast.
 * Values are unique (client.sequence), so a read names the write it saw.
 */
import type { SeededRandom } from '../../src/raft/index.ts';
import type { Reply } from '../support/cluster-harness.ts';
import type { Json, WorkloadName } from './history.ts';

export interface PlannedOp {
  readonly workload: WorkloadName;
  readonly f: string;
  readonly key: string;
  readonly input: Json;
  readonly method: string;
  readonly request: object;
  /** The output to record from the reply. */
  readonly read: (reply: Reply) => Json;
  /**
   * Sent with the client's session (client_id, sequence), and retried with the
   * same sequence while its outcome is unknown: the server must apply it once.
   */
  readonly exactlyOnce?: boolean;
}

/** One sequential client's own state. */
export class ClientState {
  private seq = 0;
  private sessionSeq = 0;
  /** Values this client last saw or wrote per register key, to aim its compare-and-sets. */
  readonly lastSeen = new Map<string, string | null>();
  private lastSeenGen = -1;

  constructor(
    readonly id: number,
    readonly rng: SeededRandom,
  ) {}

  /** A value no other write in the run uses. */
  uniqueValue(): string {
    return `${this.id}.${++this.seq}`;
  }

  /** The next sequence of this client's session. */
  nextSequence(): number {
    return ++this.sessionSeq;
  }

  /** Forgets register values of past generations. */
  enterGeneration(gen: number): void {
    if (gen === this.lastSeenGen) return;
    this.lastSeenGen = gen;
    this.lastSeen.clear();
  }
}

export interface Workload {
  readonly name: WorkloadName;
  next(client: ClientState, nowMs: number): PlannedOp;
  /** Tells the workload how an operation of its own ended (ok only). */
  observe?(client: ClientState, op: PlannedOp, output: Json): void;
  /** The read that closes a key's history after healing; null if the workload is not checked. */
  finalRead(key: string): PlannedOp | null;
}

export interface WorkloadOptions {
  readonly keyLifeMs: number;
  /** TTLs on some register writes; keys may vanish (expiry, eviction). */
  readonly volatile: boolean;
}

const text = (value: unknown): string => (value instanceof Uint8Array ? Buffer.from(value).toString() : String(value));
const bytes = (value: string): Buffer => Buffer.from(value);

function generation(nowMs: number, keyLifeMs: number): number {
  return Math.floor(nowMs / keyLifeMs);
}

// ---------------------------------------------------------------------------

export class RegisterWorkload implements Workload {
  readonly name = 'register';
  constructor(
    private readonly options: WorkloadOptions,
    private readonly slots = 3,
  ) {}

  next(client: ClientState, nowMs: number): PlannedOp {
    const gen = generation(nowMs, this.options.keyLifeMs);
    client.enterGeneration(gen);
    const key = `r/${gen}/${client.rng.int(this.slots)}`;
    const dice = client.rng.next();
    const seen = client.lastSeen.get(key);
    if (dice < 0.4) return this.get(key);
    // A volatile key may vanish under a compare-and-set aimed at "absent", which the volatile model cannot follow: those become plain writes.
    const canCas = seen !== undefined && !(this.options.volatile && seen === null);
    const value = client.uniqueValue();
    const ttlMs = this.options.volatile && client.rng.next() < 0.3 ? 100 + client.rng.int(2900) : 0;
    if (dice < 0.7 || !canCas) return this.put(key, value, ttlMs);
    const expected = seen;
    return {
      workload: 'register',
      f: 'cas',
      key,
      input: { expected, value, ttlMs },
      method: 'Txn',
      request: {
        compares: [expected === null ? { key, op: 'EQUAL', exists: false } : { key, op: 'EQUAL', value: bytes(expected) }],
        success: [{ set: { key, value: bytes(value), ttl_ms: ttlMs } }],
        failure: [],
      },
      read: (reply) => ({ applied: reply['succeeded'] === true }),
    };
  }

  put(key: string, value: string, ttlMs = 0): PlannedOp {
    return {
      workload: 'register',
      f: 'put',
      key,
      input: { value, ttlMs },
      method: 'Set',
      request: { key, value: bytes(value), ttl_ms: ttlMs },
      read: () => ({}),
    };
  }

  observe(client: ClientState, op: PlannedOp, output: Json): void {
    const input = op.input as { value?: string; expected?: string | null };
    const out = output as { value?: string | null; applied?: boolean };
    if (op.f === 'get') client.lastSeen.set(op.key, out.value ?? null);
    else if (op.f === 'put' || (op.f === 'cas' && out.applied === true)) client.lastSeen.set(op.key, input.value ?? null);
  }

  finalRead(key: string): PlannedOp {
    return this.get(key);
  }

  private get(key: string): PlannedOp {
    return {
      workload: 'register',
      f: 'get',
      key,
      input: {},
      method: 'Get',
      request: { key },
      read: (reply) => ({ value: reply['found'] === true ? text(reply['value']) : null }),
    };
  }
}

// ---------------------------------------------------------------------------

export class ListWorkload implements Workload {
  readonly name = 'list';
  constructor(
    private readonly options: WorkloadOptions,
    private readonly slots = 2,
  ) {}

  next(client: ClientState, nowMs: number): PlannedOp {
    const key = `l/${generation(nowMs, this.options.keyLifeMs)}/${client.rng.int(this.slots)}`;
    if (client.rng.next() < 0.45) return this.finalRead(key);
    const value = client.uniqueValue();
    return {
      workload: 'list',
      f: 'rpush',
      key,
      input: { value },
      method: 'RPush',
      request: { key, values: [bytes(value)] },
      read: (reply) => ({ length: Number(reply['length']) }),
      // Applied twice, the value would be in the list twice: the checker sees it.
      exactlyOnce: true,
    };
  }

  finalRead(key: string): PlannedOp {
    return {
      workload: 'list',
      f: 'lrange',
      key,
      input: {},
      method: 'LRange',
      request: { key, start: 0, stop: -1 },
      read: (reply) => ({ values: ((reply['values'] as unknown[] | undefined) ?? []).map(text) }),
    };
  }
}

// ---------------------------------------------------------------------------

const HASH_FIELDS = ['f0', 'f1', 'f2', 'f3'];

export class HashWorkload implements Workload {
  readonly name = 'hash';
  constructor(
    private readonly options: WorkloadOptions,
    private readonly slots = 2,
  ) {}

  next(client: ClientState, nowMs: number): PlannedOp {
    const key = `h/${generation(nowMs, this.options.keyLifeMs)}/${client.rng.int(this.slots)}`;
    const dice = client.rng.next();
    const field = HASH_FIELDS[client.rng.int(HASH_FIELDS.length)] as string;
    if (dice < 0.35) {
      // One or two fields at once: a read must never see half of a two-field write.
      const fields: Record<string, string> = { [field]: client.uniqueValue() };
      if (client.rng.next() < 0.5) {
        const other = HASH_FIELDS[client.rng.int(HASH_FIELDS.length)] as string;
        if (other !== field) fields[other] = client.uniqueValue();
      }
      const wire: Record<string, Buffer> = {};
      for (const [f, v] of Object.entries(fields)) wire[f] = bytes(v);
      // Applied twice, the second would answer added 0: the model sees it.
      return { workload: 'hash', f: 'hset', key, input: { fields }, method: 'HSet', request: { key, fields: wire }, read: (reply) => ({ added: Number(reply['added']) }), exactlyOnce: true };
    }
    if (dice < 0.45) {
      return { workload: 'hash', f: 'hdel', key, input: { fields: [field] }, method: 'HDel', request: { key, fields: [field] }, read: (reply) => ({ deleted: Number(reply['deleted']) }) };
    }
    if (dice < 0.65) {
      return {
        workload: 'hash',
        f: 'hget',
        key,
        input: { field },
        method: 'HGet',
        request: { key, field },
        read: (reply) => ({ value: reply['found'] === true ? text(reply['value']) : null }),
      };
    }
    return this.finalRead(key);
  }

  finalRead(key: string): PlannedOp {
    return {
      workload: 'hash',
      f: 'hgetall',
      key,
      input: {},
      method: 'HGetAll',
      request: { key },
      read: (reply) => {
        const fields: Record<string, string> = {};
        for (const [f, v] of Object.entries((reply['fields'] as Record<string, unknown> | undefined) ?? {})) fields[f] = text(v);
        return { fields };
      },
    };
  }
}

// ---------------------------------------------------------------------------

/** Big values, half of them with TTLs: memory pressure, so that eviction and expiry run under faults. Not checked. */
export class FillerWorkload implements Workload {
  readonly name = 'filler';

  next(client: ClientState): PlannedOp {
    const key = `fill/${client.uniqueValue()}`;
    const size = 512 + client.rng.int(1536);
    const ttlMs = client.rng.next() < 0.5 ? 500 + client.rng.int(4500) : 0;
    return {
      workload: 'filler',
      f: 'fill',
      key,
      input: { size, ttlMs },
      method: 'Set',
      request: { key, value: Buffer.alloc(size, 120), ttl_ms: ttlMs },
      read: () => ({}),
    };
  }

  finalRead(): null {
    return null;
  }
}
