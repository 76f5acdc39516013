/**
 * Client sessions, for exactly-once writes (Raft dissertation §6.3). A
 * session keeps the highest sequence applied for a client and that write's
 * encoded result; a retry with that sequence gets the result back instead of
 * applying again. One outstanding write per client id: a sequence below the
 * recorded one is refused (STALE_SEQUENCE), since its result is gone.
 *
 * Expiry is decided by log time alone, so every replica forgets the same
 * sessions at the same entry:
 * - before each entry applies, sessions with lastSeenMs + idleMs <= the
 *   entry's time are removed (a client must not retry later than that);
 * - a new session beyond maxSessions first evicts the least recently seen,
 *   ties broken by the smaller client id: an order that depends only on the
 *   rows, so a replica restored from a snapshot evicts the same one.
 *
 * Sessions are part of the digest: two replicas that disagree on them would
 * later disagree on whether a retry applies.
 */
import { DigestSum, sessionPart } from './digest.ts';
import { lanes } from './hash.ts';
import type { SessionRow } from './rows.ts';

export class Session {
  heapPos = -1;
  c0 = 0;
  c1 = 0;
  constructor(
    readonly clientId: string,
    public sequence: number,
    public result: Uint8Array,
    public lastSeenMs: number,
  ) {}
}

function before(a: Session, b: Session): boolean {
  if (a.lastSeenMs !== b.lastSeenMs) return a.lastSeenMs < b.lastSeenMs;
  return a.clientId < b.clientId;
}

export class SessionTable {
  private readonly map = new Map<string, Session>();
  /** Min-heap by (lastSeenMs, clientId): the next to expire or evict is at the top. */
  private readonly heap: Session[] = [];
  readonly sum = new DigestSum();

  constructor(
    private readonly idleMs: number,
    private readonly maxSessions: number,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(clientId: string): Session | undefined {
    return this.map.get(clientId);
  }

  /** Forgets sessions idle at nowMs. */
  expire(nowMs: number): void {
    for (let top = this.heap[0]; top !== undefined && top.lastSeenMs + this.idleMs <= nowMs; top = this.heap[0]) {
      this.remove(top);
    }
  }

  /** Records a write's result for its client, as of log time nowMs. */
  record(clientId: string, sequence: number, result: Uint8Array, nowMs: number): void {
    let s = this.map.get(clientId);
    if (s === undefined) {
      // Make room first: the session being recorded must never be the one evicted.
      while (this.map.size >= this.maxSessions && this.heap[0] !== undefined) this.remove(this.heap[0]);
      s = new Session(clientId, sequence, result, nowMs);
      this.map.set(clientId, s);
      this.insert(s);
      this.hashIn(s);
      return;
    }
    this.hashOut(s);
    s.sequence = sequence;
    s.result = result;
    s.lastSeenMs = nowMs;
    this.hashIn(s);
    this.down(s.heapPos);
    this.up(s.heapPos);
  }

  /** A retry seen at nowMs: the session stays alive, its result unchanged. */
  seen(s: Session, nowMs: number): void {
    if (s.lastSeenMs === nowMs) return;
    this.record(s.clientId, s.sequence, s.result, nowMs);
  }

  /** Adds a session from a snapshot row, as it was (no expiry or cap applied). */
  restore(row: SessionRow): void {
    if (this.map.has(row.clientId)) throw new RangeError(`snapshot repeats session '${row.clientId}'`);
    const s = new Session(row.clientId, row.sequence, row.result, row.lastSeenMs);
    this.map.set(row.clientId, s);
    this.insert(s);
    this.hashIn(s);
  }

  rows(): SessionRow[] {
    const out: SessionRow[] = [];
    for (const s of this.map.values()) out.push({ clientId: s.clientId, sequence: s.sequence, result: s.result, lastSeenMs: s.lastSeenMs });
    return out;
  }

  private hashIn(s: Session): void {
    sessionPart(s.clientId, s.sequence, s.result, s.lastSeenMs);
    s.c0 = lanes[0] as number;
    s.c1 = lanes[1] as number;
    this.sum.add(s.c0, s.c1);
  }

  private hashOut(s: Session): void {
    this.sum.sub(s.c0, s.c1);
  }

  private remove(s: Session): void {
    this.hashOut(s);
    this.map.delete(s.clientId);
    const i = s.heapPos;
    const last = this.heap.pop() as Session;
    s.heapPos = -1;
    if (last === s) return;
    this.heap[i] = last;
    last.heapPos = i;
    this.down(i);
    this.up(last.heapPos);
  }

  private insert(s: Session): void {
    s.heapPos = this.heap.length;
    this.heap.push(s);
    this.up(s.heapPos);
  }

  private up(i: number): void {
    const heap = this.heap;
    const s = heap[i] as Session;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p] as Session;
      if (!before(s, parent)) break;
      heap[i] = parent;
      parent.heapPos = i;
      i = p;
    }
    heap[i] = s;
    s.heapPos = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const s = heap[i] as Session;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let child = l;
      if (r < n && before(heap[r] as Session, heap[l] as Session)) child = r;
      const c = heap[child] as Session;
      if (!before(c, s)) break;
      heap[i] = c;
      c.heapPos = i;
      i = child;
    }
    heap[i] = s;
    s.heapPos = i;
  }
}
