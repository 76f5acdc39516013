/**
 * TEST ONLY: faults the chaos suite (test/chaos) injects into a running node.
 *
 * Enabled by `--test-faults-file PATH` and by nothing else; without that flag
 * node.ts never creates a FaultInjection and every code path is the
 * production one. The file holds a JSON TestFaults object. The node reads it
 * at start and watches it (a stat poll every 50 ms), so the suite changes
 * faults by rewriting the file (atomically, by rename) while the node runs:
 *
 * - clockOffsetMs moves the wall clock the node stamps log entries with and
 *   judges expiry by (a clock jumped forward or back);
 * - persistDelayMs makes every persist slower (a slow disk), and a new
 *   persistStallId makes the next persist take persistStallMs more (a stalled
 *   fsync). A synchronous persist blocks the event loop for it, as its fsync
 *   does; the Ready loop's persistAsync only resolves later, as its fsync on
 *   the thread pool would;
 * - holdRestore, while true, keeps the state restored from the snapshot at
 *   start-up from being taken into use (the rows are read and checked, then
 *   the restore waits): a restore as slow as a test needs, during which the
 *   node takes part in Raft but cannot apply;
 * - peerDial names, per peer, the address to dial instead of the one in the
 *   address book: the suite points each ordered pair of nodes at its own port
 *   of a fault-injecting TCP proxy, so that A->B can fail while B->A works.
 *   (Peers announce one address to everyone, so only the dialling side can
 *   tell the links apart.)
 */
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import type { NodeStorage } from '../storage/index.ts';

export interface TestFaults {
  readonly clockOffsetMs?: number;
  readonly persistDelayMs?: number;
  readonly persistStallMs?: number;
  /** A stall happens once per new id; the id present when the node starts is taken as done. */
  readonly persistStallId?: number;
  readonly peerDial?: Readonly<Record<string, string>>;
  readonly holdRestore?: boolean;
}

const POLL_MS = 50;
// Atomics.wait needs a shared buffer; nothing ever notifies it, so a wait is a plain sleep.
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));

function sleepSync(ms: number): void {
  if (ms > 0) Atomics.wait(SLEEPER, 0, 0, ms);
}

export class FaultInjection {
  private faults: TestFaults = {};
  private lastStallId: number | undefined;
  private stallPendingMs = 0;
  private readonly listeners: (() => void)[] = [];
  private restoreWaiters: (() => void)[] = [];
  private readonly watcher: () => void;

  private constructor(
    private readonly path: string,
    private readonly logger: Logger,
  ) {
    this.faults = this.read() ?? {};
    this.lastStallId = this.faults.persistStallId;
    this.logger.warn({ path, faults: this.faults }, 'TEST ONLY: fault injection is on');
    this.watcher = () => this.reload();
    watchFile(path, { interval: POLL_MS, persistent: false }, this.watcher);
  }

  static start(path: string, logger: Logger): FaultInjection {
    return new FaultInjection(path, logger);
  }

  /** The node's wall clock, moved by the injected offset. */
  readonly now = (): number => Date.now() + (this.faults.clockOffsetMs ?? 0);

  /** Where to dial `peer`: the injected address if there is one, else the address book's. */
  dialAddress(peer: string, address: string): string {
    return this.faults.peerDial?.[peer] ?? address;
  }

  /** Delays every persist of `storage` by the injected amounts. */
  wrapPersist(storage: NodeStorage): void {
    const persist = storage.persist.bind(storage);
    storage.persist = (batch) => {
      sleepSync(this.takeDelayMs());
      persist(batch);
    };
    const persistAsync = storage.persistAsync.bind(storage);
    storage.persistAsync = async (batch) => {
      const delayMs = this.takeDelayMs();
      await persistAsync(batch);
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    };
  }

  private takeDelayMs(): number {
    const stallMs = this.stallPendingMs;
    this.stallPendingMs = 0;
    return stallMs + (this.faults.persistDelayMs ?? 0);
  }

  /** Resolves once holdRestore is not set (at once if it is not). */
  restoreReleased(): Promise<void> {
    if (this.faults.holdRestore !== true) return Promise.resolve();
    this.logger.warn({}, 'TEST ONLY: the state restore is held until holdRestore is cleared');
    return new Promise((resolve) => this.restoreWaiters.push(resolve));
  }

  /** Called after the faults change (peer dial addresses, say). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  stop(): void {
    unwatchFile(this.path, this.watcher);
  }

  private reload(): void {
    const faults = this.read();
    if (faults === null) return;
    this.faults = faults;
    if (faults.persistStallId !== undefined && faults.persistStallId !== this.lastStallId) {
      this.lastStallId = faults.persistStallId;
      this.stallPendingMs = faults.persistStallMs ?? 0;
    }
    this.logger.warn({ faults }, 'TEST ONLY: injected faults changed');
    if (faults.holdRestore !== true) {
      for (const release of this.restoreWaiters) release();
      this.restoreWaiters = [];
    }
    for (const listener of this.listeners) listener();
  }

  /** The file's faults, or null when it cannot be read or parsed (the last good faults then stay). */
  private read(): TestFaults | null {
    try {
      const parsed = JSON.parse(readFileSync(this.path, 'utf8')) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
      return parsed as TestFaults;
    } catch (error) {
      this.logger.error({ path: this.path, err: error }, 'TEST ONLY: cannot read the faults file; keeping the previous faults');
      return null;
    }
  }
}
