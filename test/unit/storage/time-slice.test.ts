import { describe, expect, it } from 'vitest';
import { CLOCK_EVERY_ROWS, PAUSE_PER_SLICE, SLICE_MS, TimeSlice } from '../../../src/storage/time-slice.ts';

/** A TimeSlice on a clock the test moves, recording the pauses it asks for. */
function pacedSlice(): { slice: TimeSlice; pauses: number[]; advance(ms: number): void } {
  let now = 1000;
  const pauses: number[] = [];
  const slice = new TimeSlice(
    () => now,
    async (ms) => {
      pauses.push(ms);
      now += ms;
    },
  );
  return { slice, pauses, advance: (ms) => (now += ms) };
}

/** Rows counted until spent() says the slice is over, at most `limit`. */
function rowsUntilSpent(slice: TimeSlice, limit: number): number {
  for (let rows = 1; rows <= limit; rows++) if (slice.spent()) return rows;
  return Infinity;
}

describe('pacing main-thread background work in time slices', () => {
  it('ends a slice only once it has lasted SLICE_MS, looking at the clock every few rows', () => {
    const { slice, advance } = pacedSlice();
    expect(rowsUntilSpent(slice, 10 * CLOCK_EVERY_ROWS)).toBe(Infinity);
    advance(SLICE_MS - 0.5);
    expect(rowsUntilSpent(slice, 10 * CLOCK_EVERY_ROWS)).toBe(Infinity);
    advance(1);
    expect(rowsUntilSpent(slice, 10 * CLOCK_EVERY_ROWS)).toBeLessThanOrEqual(CLOCK_EVERY_ROWS);
  });

  it('pauses after each slice for PAUSE_PER_SLICE times its length, so the work keeps at most a share of the loop', async () => {
    const { slice, pauses, advance } = pacedSlice();
    let worked = 0;
    for (const ms of [5, 12, 4]) {
      advance(ms);
      worked += ms;
      expect(rowsUntilSpent(slice, CLOCK_EVERY_ROWS)).toBe(CLOCK_EVERY_ROWS);
      await slice.yield();
    }
    expect(pauses).toEqual([5 * PAUSE_PER_SLICE, 12 * PAUSE_PER_SLICE, 4 * PAUSE_PER_SLICE]);
    const paused = pauses.reduce((a, b) => a + b, 0);
    expect(worked / (worked + paused)).toBeCloseTo(1 / (1 + PAUSE_PER_SLICE));
  });

  it('starts a new slice after restart(): time spent waiting elsewhere is not paid for again', async () => {
    const { slice, pauses, advance } = pacedSlice();
    advance(50);
    slice.restart();
    advance(SLICE_MS);
    expect(rowsUntilSpent(slice, CLOCK_EVERY_ROWS)).toBe(CLOCK_EVERY_ROWS);
    await slice.yield();
    expect(pauses).toEqual([SLICE_MS * PAUSE_PER_SLICE]);
  });
});
