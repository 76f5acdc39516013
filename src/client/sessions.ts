/**
 * Exactly-once sessions for writes. The server keeps, per client_id, only
 * the highest sequence applied and its result, and refuses a lower sequence
 * (its result is gone). So a session must have at most one write in flight:
 * a client that writes concurrently takes one session per concurrent write
 * from a pool. Sessions are reused most-recent-first, so a client that
 * writes one at a time uses one client_id for its whole life.
 *
 * A write keeps its (client_id, sequence) across every retry. When a write
 * gives up with its outcome unknown, the session's next write uses a higher
 * sequence; should the old one still arrive, the server refuses it as stale
 * rather than applying it late.
 */
import { randomUUID } from 'node:crypto';

export interface WriteSession {
  readonly clientId: string;
  readonly sequence: number;
}

class Session {
  private sequence = 0;
  constructor(readonly clientId: string) {}
  next(): WriteSession {
    this.sequence += 1;
    return { clientId: this.clientId, sequence: this.sequence };
  }
}

export class SessionPool {
  private readonly idle: Session[] = [];
  private created = 0;

  /** `baseId` names this client instance; extra concurrent sessions are `${baseId}.${n}`. */
  constructor(readonly baseId: string = randomUUID()) {}

  /** Runs `write` with a session no other write holds until it settles. */
  async run<T>(write: (session: WriteSession) => Promise<T>): Promise<T> {
    const session = this.idle.pop() ?? this.create();
    try {
      return await write(session.next());
    } finally {
      this.idle.push(session);
    }
  }

  /** How many sessions this client has used (its most concurrent writes). */
  get size(): number {
    return this.created;
  }

  private create(): Session {
    const n = this.created++;
    return new Session(n === 0 ? this.baseId : `${this.baseId}.${n}`);
  }
}
