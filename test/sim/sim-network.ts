import type { SeededRandom } from '../../src/raft/index.ts';
import type { EventQueue } from './event-queue.ts';

/** How one direction of a link misbehaves. */
export interface LinkFaults {
  lossRate: number;
  duplicateRate: number;
  minDelayMs: number;
  maxDelayMs: number;
}

export const HEALTHY_LINK: LinkFaults = { lossRate: 0, duplicateRate: 0, minDelayMs: 0.2, maxDelayMs: 2 };

/**
 * A simulated network between named hosts. Each direction of each link has its
 * own faults; a blocked direction drops everything (a partition, possibly one-way).
 * Random delays reorder messages.
 */
export class SimNetwork {
  faults: LinkFaults = { ...HEALTHY_LINK };
  private readonly linkFaults = new Map<string, LinkFaults>();
  private readonly blocked = new Set<string>();
  sent = 0;
  dropped = 0;

  constructor(
    private readonly queue: EventQueue,
    private readonly random: SeededRandom,
  ) {}

  send(from: string, to: string, deliver: () => void): void {
    this.sent++;
    const key = `${from}>${to}`;
    if (this.blocked.has(key)) {
      this.dropped++;
      return;
    }
    const faults = this.linkFaults.get(key) ?? this.faults;
    if (this.random.chance(faults.lossRate)) {
      this.dropped++;
      return;
    }
    const copies = this.random.chance(faults.duplicateRate) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = faults.minDelayMs + this.random.next() * (faults.maxDelayMs - faults.minDelayMs);
      this.queue.schedule(delay, deliver);
    }
  }

  /** Blocks from -> to only: a one-way partition. */
  blockOneWay(from: string, to: string): void {
    this.blocked.add(`${from}>${to}`);
  }

  /** Cuts every link between the two groups, both ways. */
  partition(a: readonly string[], b: readonly string[]): void {
    for (const x of a) {
      for (const y of b) {
        this.blocked.add(`${x}>${y}`);
        this.blocked.add(`${y}>${x}`);
      }
    }
  }

  setLinkFaults(from: string, to: string, faults: LinkFaults): void {
    this.linkFaults.set(`${from}>${to}`, faults);
  }

  isBlocked(from: string, to: string): boolean {
    return this.blocked.has(`${from}>${to}`);
  }

  heal(): void {
    this.blocked.clear();
    this.linkFaults.clear();
    this.faults = { ...HEALTHY_LINK };
  }

  healPartitions(): void {
    this.blocked.clear();
  }
}
