/**
 * The replicated state machine: applies committed log entries in order,
 * answers reads at a given time, and exports/restores snapshots.
 *
 * Determinism: apply reads no clock and no randomness. "Now" for an entry is
 * max(its timestamp, the previous entry's), so log time never goes back even
 * if a leader's clock did. A key whose expiry is at or before now is absent.
 * Everything else apply decides with (budget, limits, session expiry) comes
 * from the config, which must be the same on every replica.
 *
 * What is not state (not in the digest, not in snapshots, free to differ
 * between replicas): LRU recency. It is updated by every applied entry that
 * touches a key (the same everywhere) and by reads with touch: true (only on
 * the node serving them, normally the leader). Only the leader uses it, to
 * pick eviction candidates it then proposes as an 'evict' entry; replicas
 * delete exactly what that entry names, so they never need the same order.
 * After a restore, recency is the snapshot's row order.
 *
 * Incremental snapshots: the state machine tracks which keys changed since its
 * base, the state of the newest snapshot it knows to be stored (the one it was
 * restored from, or its last export whose file was stored). An export hands
 * those keys over (SnapshotView.changes), and the writer updates a copy of the
 * base file instead of writing every key.
 */
import { decodeEntry } from './command-codec.ts';
import type { ClientSession, EntryPayload } from './command-codec.ts';
import type { Command, EvictTarget } from './commands.ts';
import { isReadOnly } from './commands.ts';
import { resolveConfig } from './config.ts';
import type { StateMachineConfig } from './config.ts';
import { digestHex } from './digest.ts';
import { CodecError, InvalidArgumentError, StaleSequenceError } from './errors.ts';
import { Executor } from './executor.ts';
import { NO_EXPIRY } from './key-entry.ts';
import { Keyspace } from './keyspace.ts';
import { utf8Length } from './bytes.ts';
import { decodeResult, encodeResult } from './result-codec.ts';
import { failure } from './results.ts';
import type { Result } from './results.ts';
import type { KeyRow, SessionRow } from './rows.ts';
import { SessionTable } from './sessions.ts';
import { decodeValue } from './values.ts';
import type { ValueType } from './values.ts';

/** A point-in-time export of the whole state (see StateMachine.exportRows). */
export interface SnapshotView {
  readonly lastAppliedIndex: number;
  readonly logTimeMs: number;
  /** digest() at lastAppliedIndex: a restore from these rows must reproduce it. */
  readonly digest: string;
  /** Keys stored at that point, counting expired ones not yet swept: the number of rows keyRows yields. */
  readonly keyCount: number;
  /** Single use. Iterate at leisure: apply may run between steps without changing what it yields. */
  readonly keyRows: IterableIterator<KeyRow>;
  readonly sessionRows: readonly SessionRow[];
  /** What changed since the base snapshot; null when there is no base. Iterate either its rows or keyRows, not both. */
  readonly changes: SnapshotChanges | null;
  /** The file of this export is stored: it is the base of the next one. Call before close(). */
  stored(): void;
  /** Stops copy-on-write early if the rows will not be read to the end; without stored(), the base stays the previous one. */
  close(): void;
}

/** The keys changed between the base snapshot and an export, and their rows as of the export. */
export interface SnapshotChanges {
  /** The base: its applied index and digest(). */
  readonly baseIndex: number;
  readonly baseDigest: string;
  /** Every key created, changed or removed since the base (possibly a few more), least recently changed first. */
  readonly keys: ReadonlySet<string>;
  /** Single use, point in time like keyRows: the rows of those keys that exist in the export. */
  readonly rows: IterableIterator<KeyRow>;
}

/** The state an export captured, and the change set it took from the keyspace. */
interface PendingExport {
  readonly index: number;
  readonly digest: string;
  readonly taken: Set<string> | null;
}

/** What StateMachine.fromRows rebuilds from; a SnapshotView is one. */
export interface SnapshotSource {
  readonly lastAppliedIndex: number;
  readonly logTimeMs: number;
  readonly keyRows: Iterable<KeyRow>;
  readonly sessionRows: Iterable<SessionRow>;
}

/** See StateMachine.restore. */
export interface StateRestore {
  /** Adds a key; keyBytes is its UTF-8 length (-1: not valid Unicode). The value is kept: do not change it afterwards. */
  key(key: string, keyBytes: number, type: ValueType, value: Uint8Array, expiresAtMs: number | null): void;
  session(row: SessionRow): void;
  /** The rebuilt state machine, at the position given to restore(). */
  finish(): StateMachine;
}

/** Figures for metrics and the status page. */
export interface StateStats {
  /** Keys that exist at log time. */
  readonly keys: number;
  /** Keys stored, counting expired ones not yet swept. */
  readonly storedKeys: number;
  readonly sessions: number;
  /** Accounted bytes (see memory.ts). */
  readonly memoryUsedBytes: number;
  /** Bytes of slabs holding small list items and hash values (arena.ts). */
  readonly arenaReservedBytes: number;
  /** Small values held in those slabs. */
  readonly arenaValues: number;
  /** Bytes of the slabs holding string values (value-slabs.ts). */
  readonly valueSlabBytes: number;
}

export interface ReadOptions {
  /** Count the read as an access for LRU (the leader serving clients). Default false. */
  readonly touch?: boolean;
}

export class StateMachine {
  readonly config: StateMachineConfig;
  private readonly keys = new Keyspace();
  private readonly sessions: SessionTable;
  private readonly executor: Executor;
  private applied = 0;
  private logTime = 0;
  /** The state of the newest stored snapshot that changedSinceBase is relative to; null when none. */
  private base: { readonly index: number; readonly digest: string } | null = null;
  /** The open export, until stored() or close(). */
  private pendingExport: PendingExport | null = null;

  constructor(config: Partial<StateMachineConfig> = {}) {
    this.config = resolveConfig(config);
    this.sessions = new SessionTable(this.config.sessionIdleMs, this.config.maxSessions);
    this.executor = new Executor(this.keys, this.config);
  }

  /** Index of the last entry applied (or marked applied); 0 before any. */
  get lastAppliedIndex(): number {
    return this.applied;
  }

  /** Log time of the last applied entry: reads never run at an earlier time. */
  get logTimeMs(): number {
    return this.logTime;
  }

  /**
   * Applies the normal entry at `index` (greater than lastAppliedIndex).
   * Takes ownership of `data`: large values are kept as views of it, so it
   * must not be changed afterwards. Throws CodecError when `data` does not
   * decode; the node must then stop, since skipping the entry would diverge.
   */
  apply(index: number, data: Uint8Array): Result {
    this.checkIndex(index);
    return this.applyEntry(index, decodeEntry(data));
  }

  /** apply() for an already decoded payload. */
  applyEntry(index: number, payload: EntryPayload): Result {
    this.checkIndex(index);
    const now = payload.timeMs > this.logTime ? payload.timeMs : this.logTime;
    this.applied = index;
    this.logTime = now;
    this.sessions.expire(now);
    const session = payload.session;
    if (session === null) return this.executor.run(payload.command, now, 'apply');
    return this.applyInSession(session, payload.command, now);
  }

  /**
   * An entry of a client session: applied once per sequence, its result kept
   * for a retry. Apart from applyEntry, which stays small for V8 to inline.
   */
  private applyInSession(session: ClientSession, command: Command, now: number): Result {
    const known = this.sessions.get(session.clientId);
    if (known !== undefined) {
      if (session.sequence === known.sequence) {
        this.sessions.seen(known, now);
        return decodeResult(known.result);
      }
      if (session.sequence < known.sequence) {
        return failure(
          new StaleSequenceError(
            `client '${session.clientId}' sent sequence ${session.sequence}, but ${known.sequence} was already applied; its result is gone`,
          ),
        );
      }
    }
    const result = this.executor.run(command, now, 'apply');
    this.sessions.record(session.clientId, session.sequence, encodeResult(result), now);
    return result;
  }

  /**
   * Records which keys each apply changes, for Watch; off by default. A Txn
   * that rolls back reports nothing; Clear reports every key it removed.
   */
  trackChanges(enabled: boolean): void {
    this.keys.trackChanges(enabled);
  }

  /** The keys changed since the last call (possibly repeated), in the order they changed. */
  takeChangedKeys(): string[] {
    return this.keys.takeChangedKeys();
  }

  /** Advances lastAppliedIndex over an entry with nothing to apply (noop, config change). */
  markApplied(index: number): void {
    this.checkIndex(index);
    this.applied = index;
  }

  /**
   * Evaluates a read-only command at max(nowMs, logTimeMs) without changing
   * anything: linearizable reads after ReadIndex, and serializable reads. A
   * write answers INVALID_ARGUMENT: it has to go through the log.
   */
  read(command: Command, nowMs: number, options: ReadOptions = {}): Result {
    if (!isReadOnly(command)) return failure(new InvalidArgumentError(`'${command.op}' is a write: propose it through the log`));
    const now = nowMs > this.logTime ? nowMs : this.logTime;
    return this.executor.run(command, now, options.touch === true ? 'readTouch' : 'read');
  }

  /**
   * For the leader: up to `limit` keys expired at nowMs, to propose as an
   * expireSweep entry. Expired keys are already invisible; the sweep frees them.
   */
  expiredKeys(nowMs: number, limit: number): string[] {
    return this.keys.expired(nowMs, limit).map((e) => e.key);
  }

  /** Accounted bytes of all stored keys (see memory.ts). */
  memoryUsed(): number {
    return this.keys.memoryUsed;
  }

  /**
   * For the leader: the least recently used keys whose accounted bytes add up
   * to at least bytesToFree (or all keys), with fingerprints for an evict entry.
   */
  evictionCandidates(bytesToFree: number): EvictTarget[] {
    const out: EvictTarget[] = [];
    let freed = 0;
    for (const e of this.keys.oldestFirst()) {
      if (freed >= bytesToFree) break;
      out.push({ key: e.key, fingerprint: this.keys.fingerprint(e) });
      freed += e.bytes;
    }
    return out;
  }

  /** Keys that exist at nowMs (default: log time). */
  keyCount(nowMs: number = this.logTime): number {
    return this.keys.liveCount(Math.max(nowMs, this.logTime));
  }

  /** Client sessions held. */
  sessionCount(): number {
    return this.sessions.size;
  }

  stats(): StateStats {
    return {
      keys: this.keyCount(),
      storedKeys: this.keys.storedCount,
      sessions: this.sessions.size,
      memoryUsedBytes: this.keys.memoryUsed,
      arenaReservedBytes: this.keys.arena.reservedBytes,
      arenaValues: this.keys.arena.liveValues,
      valueSlabBytes: this.keys.slabs.reservedBytes,
    };
  }

  /** 16 hex digits summarizing keys, values, expiries and sessions; equal on replicas at the same index. */
  digest(): string {
    return digestHex(this.keys.settledSum(), this.sessions.sum);
  }

  /**
   * A point-in-time export for a snapshot. Cheap to take (sessions are copied,
   * keys are not); keyRows then yields the keys as they were at this call
   * while apply goes on, saving a key's old row only when it changes before
   * the walk reaches it. One export at a time: a new one closes the previous.
   */
  exportRows(): SnapshotView {
    // An earlier export still open was not stored (as far as we know): its keys go back.
    if (this.pendingExport !== null) this.settleExport(this.pendingExport, false);
    const capture = this.keys.openSnapshot();
    const keys = this.keys;
    const pending: PendingExport = { index: this.applied, digest: this.digest(), taken: keys.takeChangedSinceBase() };
    this.pendingExport = pending;
    const base = this.base;
    const taken = pending.taken;
    return {
      lastAppliedIndex: this.applied,
      logTimeMs: this.logTime,
      digest: pending.digest,
      keyCount: this.keys.storedCount,
      keyRows: keys.snapshotRows(capture),
      sessionRows: this.sessions.rows(),
      changes:
        base === null || taken === null
          ? null
          : { baseIndex: base.index, baseDigest: base.digest, keys: taken, rows: keys.changedRows(capture, taken) },
      stored: () => this.settleExport(pending, true),
      close: () => {
        keys.closeSnapshot(capture);
        this.settleExport(pending, false);
      },
    };
  }

  /** Ends an export: stored, it becomes the base; otherwise its taken keys go back. A no-op for one already settled. */
  private settleExport(pending: PendingExport, stored: boolean): void {
    if (this.pendingExport !== pending) return;
    this.pendingExport = null;
    if (stored) this.base = { index: pending.index, digest: pending.digest };
    else this.keys.returnChangedSinceBase(pending.taken);
  }

  /** Rebuilds a state machine from exported rows; throws CodecError on rows that cannot be state. */
  static fromRows(source: SnapshotSource, config: Partial<StateMachineConfig> = {}): StateMachine {
    const restore = StateMachine.restore(source, config);
    for (const row of source.keyRows) restore.key(row.key, utf8Length(row.key), row.type, row.value, row.expiresAtMs);
    for (const row of source.sessionRows) restore.session(row);
    return restore.finish();
  }

  /**
   * Rebuilds a state machine row by row, for a caller that has the rows in
   * another form than KeyRow objects (a restore from packed batches). Each
   * call throws CodecError on a row that cannot be state; then discard it all.
   */
  static restore(position: Pick<SnapshotSource, 'lastAppliedIndex' | 'logTimeMs'>, config: Partial<StateMachineConfig> = {}): StateRestore {
    const sm = new StateMachine(config);
    if (!Number.isSafeInteger(position.lastAppliedIndex) || position.lastAppliedIndex < 0) {
      throw new CodecError(`snapshot index ${position.lastAppliedIndex} is not a valid index`);
    }
    if (!Number.isSafeInteger(position.logTimeMs) || position.logTimeMs < 0) throw new CodecError(`snapshot log time ${position.logTimeMs} is not valid`);
    const keys = sm.keys;
    return {
      key(key, keyBytes, type, value, expiresAtMs) {
        if (keyBytes < 0) throw new CodecError(`snapshot key '${key}' is not valid Unicode`);
        if (expiresAtMs !== null && (!Number.isSafeInteger(expiresAtMs) || expiresAtMs < 0)) {
          throw new CodecError(`snapshot key '${key}' has a bad expiry ${expiresAtMs}`);
        }
        const stored = keys.storedCount;
        // A view of a batch's buffer (a restore's values are not copied one by one): a slab of its own, see value-slabs.ts.
        if (type === 'string' && value.byteLength !== value.buffer.byteLength) keys.slabs.share(value.buffer);
        keys.create(key, keyBytes, decodeValue(type, value, keys.arena), expiresAtMs ?? NO_EXPIRY);
        // A repeated key replaced the first in the map only: the state is inconsistent, but it is thrown away.
        if (keys.storedCount === stored) throw new CodecError(`snapshot repeats key '${key}'`);
      },
      session(row) {
        if (!Number.isSafeInteger(row.sequence) || row.sequence < 0 || !Number.isSafeInteger(row.lastSeenMs)) {
          throw new CodecError(`snapshot session '${row.clientId}' has bad numbers`);
        }
        decodeResult(row.result); // a result that cannot be answered later is corruption now
        try {
          sm.sessions.restore(row);
        } catch (error) {
          throw new CodecError(`snapshot session rows are inconsistent: ${(error as Error).message}`, { cause: error });
        }
      },
      finish() {
        keys.slabs.endSharing();
        sm.applied = position.lastAppliedIndex;
        sm.logTime = position.logTimeMs;
        sm.becomeBase();
        return sm;
      },
    };
  }

  /** Rebuilt from a snapshot's rows: that snapshot is the base of incremental ones. */
  private becomeBase(): void {
    this.base = { index: this.applied, digest: this.digest() };
    this.keys.resetChangedSinceBase();
  }

  private checkIndex(index: number): void {
    if (!Number.isSafeInteger(index) || index <= this.applied) throw this.badIndex(index);
  }

  /** checkIndex's error, built apart so that the check stays small enough for V8 to inline into apply. */
  private badIndex(index: number): RangeError {
    return new RangeError(`entry index ${index} must be an integer above the last applied index ${this.applied}`);
  }
}
