/**
 * Paces work the main thread does beside serving (packing a snapshot's rows
 * for the writer thread): in slices of about SLICE_MS, each followed by a
 * pause PAUSE_PER_SLICE times as long as the slice took. Slices bound how
 * long requests and Raft traffic wait behind the work at a time; the pauses
 * bound its share of the event loop to a quarter. Without them a snapshot on
 * a busy leader took a slice of every event-loop turn, and the seconds it
 * packed in ran at several times the usual p99.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Longest stretch of work before the event loop gets a turn; by time, not rows, since a row's cost varies widely. */
export const SLICE_MS = 4;
/** The clock is read every this many rows: it costs more than a small row. */
export const CLOCK_EVERY_ROWS = 32;
/** The pause after a slice, as a multiple of the slice's time. */
export const PAUSE_PER_SLICE = 3;

export class TimeSlice {
  private rows = 0;
  private started: number;

  constructor(
    private readonly now: () => number = () => performance.now(),
    private readonly pause: (ms: number) => Promise<unknown> = sleep,
  ) {
    this.started = now();
  }

  /** Counts a row; true once the slice has lasted SLICE_MS: call yield(). */
  spent(): boolean {
    return ++this.rows % CLOCK_EVERY_ROWS === 0 && this.now() - this.started >= SLICE_MS;
  }

  /** Pauses in proportion to the slice just spent, then starts the next. */
  async yield(): Promise<void> {
    await this.pause((this.now() - this.started) * PAUSE_PER_SLICE);
    this.restart();
  }

  /** The event loop had a turn some other way (the work waited for the writer): a new slice starts. */
  restart(): void {
    this.started = this.now();
  }
}
