import { describe, expect, it } from 'vitest';
import { Histogram } from '../../bench/load-histogram.ts';
import type { SliceResult } from '../../bench/load-protocol.ts';
import { mergeSlices, ratio, stretchFigures } from '../../bench/load-windows.ts';

/** A slice holding the given latencies (ms) and failures. */
function slice(latenciesMs: readonly number[], errors = 0): SliceResult {
  const h = new Histogram();
  for (const ms of latenciesMs) h.record(ms * 1000);
  return { histogram: h.serialize(), errors };
}

describe('mergeSlices', () => {
  it('adds slice i of every process, whatever number of slices each recorded', () => {
    const merged = mergeSlices([[slice([1]), slice([2], 1)], [slice([3])], []]);
    expect(merged).toHaveLength(2);
    expect(merged[0]!.histogram.count).toBe(2);
    expect(merged[0]!.histogram.maxUs).toBe(3000);
    expect(merged[1]!.histogram.count).toBe(1);
    expect(merged[1]!.errors).toBe(1);
  });

  it('has no slices when no process recorded any', () => {
    expect(mergeSlices([[], []])).toEqual([]);
  });
});

describe('stretchFigures', () => {
  // Slices of 100 ms: quiet (1 ms) for 0.3 s, a stall (50 ms) in the 4th slice, quiet again.
  const slices = [slice([1, 1]), slice([1, 1]), slice([1, 1]), slice([50, 40], 2), slice([1, 1])];

  it('takes every slice overlapping the stretch, and says which stretch that was', () => {
    const during = stretchFigures(slices, 100, 310, 390);
    expect([during.fromMs, during.toMs]).toEqual([300, 400]);
    expect(during.count).toBe(2);
    expect(during.errors).toBe(2);
    expect(during.latencyMs.max).toBe(50);
    const before = stretchFigures(slices, 100, 0, 300);
    expect([before.fromMs, before.toMs, before.count]).toEqual([0, 300, 6]);
    expect(before.latencyMs.p99).toBe(1);
  });

  it('meets the next stretch at a slice edge, so that no slice counts twice', () => {
    const before = stretchFigures(slices, 100, 0, 250);
    const during = stretchFigures(slices, 100, before.toMs, 350);
    expect(before.toMs).toBe(300);
    expect(during.fromMs).toBe(300);
    expect(before.count + during.count).toBe(8);
  });

  it('gives an empty stretch the slice at its start, and stops at the last slice recorded', () => {
    expect(stretchFigures(slices, 100, 120, 120)).toMatchObject({ fromMs: 100, toMs: 200, count: 2 });
    expect(stretchFigures(slices, 100, 400, 10_000)).toMatchObject({ fromMs: 400, count: 2 });
  });

  it('reports NaN latencies for a stretch without requests, and refuses a slice length of 0', () => {
    expect(stretchFigures([], 100, 0, 100).latencyMs.p99).toBeNaN();
    expect(() => stretchFigures(slices, 0, 0, 100)).toThrow(/sliceMs must be positive/);
  });
});

describe('ratio', () => {
  it('divides to two decimals, and is NaN without a baseline', () => {
    expect(ratio(3, 2)).toBe(1.5);
    expect(ratio(1, 3)).toBe(0.33);
    expect(ratio(5, 0)).toBeNaN();
    expect(ratio(Number.NaN, 2)).toBeNaN();
  });
});
