/**
 * Parts of a measured window: the load generator records the window in
 * fixed slices (LoadSpec.sliceMs), and a scenario asks for the latencies of
 * the requests in one stretch of it, e.g. while a snapshot was being taken.
 * Pure arithmetic over histograms, no clocks.
 */
import { Histogram } from './load-histogram.ts';
import type { SliceResult } from './load-protocol.ts';
import { opFigures } from './load-report.ts';
import type { LatencyMs } from './load-report.ts';

/** Slice i of every process added together; processes may have recorded different numbers of slices. */
export function mergeSlices(perProcess: readonly (readonly SliceResult[])[]): SliceResult[] {
  const length = Math.max(0, ...perProcess.map((s) => s.length));
  return Array.from({ length }, (_, i) => {
    const histogram = new Histogram();
    let errors = 0;
    for (const slices of perProcess) {
      const slice = slices[i];
      if (slice === undefined) continue;
      histogram.merge(slice.histogram);
      errors += slice.errors;
    }
    return { histogram: histogram.serialize(), errors };
  });
}

export interface StretchFigures {
  /** The stretch as measured: whole slices, so it may start earlier and end later than asked. */
  readonly fromMs: number;
  readonly toMs: number;
  /** Successful requests in it. */
  readonly count: number;
  readonly errors: number;
  readonly latencyMs: LatencyMs;
}

/**
 * The requests of every slice that overlaps [fromMs, toMs), both relative to
 * the start of the measured window. An empty stretch (fromMs >= toMs) still
 * takes the one slice holding fromMs: an instant has latencies around it.
 */
export function stretchFigures(slices: readonly SliceResult[], sliceMs: number, fromMs: number, toMs: number): StretchFigures {
  if (!(sliceMs > 0)) throw new RangeError(`sliceMs must be positive (got ${sliceMs})`);
  const first = Math.max(0, Math.floor(fromMs / sliceMs));
  const last = Math.max(first, Math.ceil(toMs / sliceMs) - 1);
  const histogram = new Histogram();
  let errors = 0;
  for (let i = first; i <= last && i < slices.length; i++) {
    histogram.merge(slices[i]!.histogram);
    errors += slices[i]!.errors;
  }
  const figures = opFigures({ histogram: histogram.serialize(), errors: {} }, 1);
  return { fromMs: first * sliceMs, toMs: (last + 1) * sliceMs, count: histogram.count, errors, latencyMs: figures.latencyMs };
}

/** a / b to two decimals; NaN when b is not a positive number (no baseline to compare with). */
export function ratio(a: number, b: number): number {
  return b > 0 && Number.isFinite(a) ? Number((a / b).toFixed(2)) : Number.NaN;
}
