/**
 * What only the leader decides, proposed as ordinary entries so that every
 * replica applies the same deletions: sweeping expired keys, and evicting
 * least-recently-used keys when memory passes the budget.
 */
import type { Logger } from 'pino';
import type { Metrics } from './metrics.ts';
import type { RaftNode } from './raft-node.ts';

export interface LeaderChoresOptions {
  readonly node: RaftNode;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly maxMemoryBytes: number;
  readonly evict: boolean;
  readonly intervalMs: number;
  readonly requestTimeoutMs: number;
  readonly now: () => number;
}

/** Keys per sweep entry: bounded, so a mass expiry becomes many small entries, not one huge one. */
const SWEEP_BATCH = 1000;

export class LeaderChores {
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(private readonly options: LeaderChoresOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.run(), this.options.intervalMs);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** One round; at most one round's proposals are in flight at a time. */
  async run(): Promise<void> {
    const { node, metrics } = this.options;
    // A leader still restoring its state has nothing to sweep or evict yet.
    if (this.busy || !node.isLeader || node.restoring) return;
    this.busy = true;
    try {
      const expired = node.state.expiredKeys(this.options.now(), SWEEP_BATCH);
      if (expired.length > 0) {
        await node.propose({ op: 'expireSweep', keys: expired }, null, this.options.requestTimeoutMs);
        metrics.keysExpired += expired.length;
      }
      const budget = this.options.maxMemoryBytes;
      const used = node.state.memoryUsed();
      if (this.options.evict && budget > 0 && used > budget) {
        const victims = node.state.evictionCandidates(used - budget);
        if (victims.length > 0) {
          await node.propose({ op: 'evict', keys: victims }, null, this.options.requestTimeoutMs);
          metrics.keysEvicted += victims.length;
        }
      }
    } catch (error) {
      // Leadership lost or a timeout: the next leader, or the next round, tries again.
      this.options.logger.debug({ err: error }, 'leader chores round did not complete');
    } finally {
      this.busy = false;
    }
  }
}
