/**
 * The clock of the open-loop (fixed-rate) mode. Request k is due at
 * start + k / rate, whatever happened to the ones before it; the load generator
 * sends every due request it can and measures each one's latency from its due
 * time, not from when it actually left. A stalled server therefore shows up
 * as the full delay its queued requests saw, instead of being hidden by a
 * client that politely waited before sending (coordinated omission).
 */
export class RateSchedule {
  private taken = 0;

  /**
   * @param ratePerSecond requests per second (> 0)
   * @param startMs when request 0 is due, on the clock the caller passes to the other methods
   */
  constructor(
    readonly ratePerSecond: number,
    readonly startMs: number,
  ) {
    if (!(ratePerSecond > 0) || !Number.isFinite(ratePerSecond)) throw new RangeError(`rate must be a positive number (got ${ratePerSecond})`);
  }

  /** How many requests have been taken so far. */
  get sent(): number {
    return this.taken;
  }

  /** When the next request is due. */
  nextDueMs(): number {
    return this.dueMs(this.taken);
  }

  /** When request k is due (computed from k, so rounding never accumulates). */
  dueMs(k: number): number {
    return this.startMs + (k * 1000) / this.ratePerSecond;
  }

  /** How many requests are due at nowMs and not yet taken (the backlog). */
  dueCount(nowMs: number): number {
    if (nowMs < this.startMs) return 0;
    let dueSoFar = Math.floor(((nowMs - this.startMs) * this.ratePerSecond) / 1000) + 1;
    // The division above and dueMs() round differently at exact boundaries: settle on what take() would do.
    while (dueSoFar > 0 && this.dueMs(dueSoFar - 1) > nowMs) dueSoFar--;
    while (this.dueMs(dueSoFar) <= nowMs) dueSoFar++;
    return Math.max(0, dueSoFar - this.taken);
  }

  /** Takes the next request if it is due at nowMs; returns its due time, or undefined when none is due. */
  take(nowMs: number): number | undefined {
    const due = this.dueMs(this.taken);
    if (due > nowMs) return undefined;
    this.taken++;
    return due;
  }
}
