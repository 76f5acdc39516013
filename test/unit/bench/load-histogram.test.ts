import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Histogram, MAX_TRACKABLE_US, bucketIndex, bucketRange } from '../../bench/load-histogram.ts';

/** The exact percentile the histogram approximates: the ceil(p% of n)-th smallest value. */
function exact(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(1, Math.ceil((p / 100) * sorted.length)) - 1]!;
}

describe('Histogram', () => {
  it('is exact below 256 µs', () => {
    const h = new Histogram();
    for (let v = 1; v <= 100; v++) h.record(v);
    expect([h.percentile(50), h.percentile(90), h.percentile(99), h.percentile(99.9), h.percentile(100)]).toEqual([50, 90, 99, 100, 100]);
    expect([h.count, h.minUs, h.maxUs, h.meanUs()]).toEqual([100, 1, 100, 50.5]);
  });

  it('puts every value in a bucket that holds it, buckets in order and within 1/128 of their value', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_TRACKABLE_US }), (v) => {
        const i = bucketIndex(v);
        const { lowUs, highUs } = bucketRange(i);
        expect(lowUs).toBeLessThanOrEqual(v);
        expect(highUs).toBeGreaterThanOrEqual(v);
        expect(highUs - lowUs).toBeLessThanOrEqual(Math.max(0, lowUs / 128));
        if (v > 0) expect(bucketIndex(v - 1)).toBeLessThanOrEqual(i);
      }),
    );
  });

  it('reports percentiles within 1/128 above the exact value, never outside min and max', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 60_000_000 }), { minLength: 1, maxLength: 300 }), fc.constantFrom(50, 90, 99, 99.9), (values, p) => {
        const h = new Histogram();
        for (const v of values) h.record(v);
        const want = exact(values, p);
        const got = h.percentile(p);
        expect(got).toBeGreaterThanOrEqual(want);
        expect(got).toBeLessThanOrEqual(want + want / 128);
        expect(got).toBeGreaterThanOrEqual(h.minUs);
        expect(got).toBeLessThanOrEqual(h.maxUs);
      }),
    );
  });

  it('merges, also across a serialization, into what one histogram of everything holds', () => {
    const a = new Histogram();
    const b = new Histogram();
    const all = new Histogram();
    for (let i = 0; i < 1000; i++) {
      const v = (i * 7919) % 50_000;
      (i % 2 === 0 ? a : b).record(v);
      all.record(v);
    }
    const merged = Histogram.from(JSON.parse(JSON.stringify(a.serialize())));
    merged.merge(b.serialize());
    for (const p of [0, 50, 90, 99, 99.9, 100]) expect(merged.percentile(p)).toBe(all.percentile(p));
    expect([merged.count, merged.minUs, merged.maxUs, merged.sumUs]).toEqual([all.count, all.minUs, all.maxUs, all.sumUs]);
  });

  it('answers NaN when empty, and an empty histogram merges as nothing', () => {
    const h = new Histogram();
    expect(h.percentile(50)).toBeNaN();
    h.record(10);
    h.merge(new Histogram().serialize());
    expect([h.count, h.minUs, h.maxUs]).toEqual([1, 10, 10]);
  });

  it('clamps values it cannot hold: negative to 0, huge to the largest', () => {
    const h = new Histogram();
    h.record(-5);
    h.record(1e15);
    expect([h.minUs, h.maxUs]).toEqual([0, MAX_TRACKABLE_US]);
  });
});
