/**
 * A latency histogram for the load generator: log-linear buckets (HdrHistogram's
 * layout, simplified) over integer microseconds. Values below 256 µs are exact;
 * above, each power of two is split into 128 buckets, so a reported percentile
 * is within 1/128 (< 0.8 %) of the true value. Recording is an index
 * computation and one increment, cheap enough for every request; histograms
 * from several processes merge by adding counts.
 */

const SUB_BUCKET_BITS = 7;
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS; // 128
/** Values below this are their own bucket. */
const LINEAR_LIMIT = SUB_BUCKETS * 2; // 256
const LINEAR_LIMIT_EXPONENT = SUB_BUCKET_BITS + 1; // 2^8 = 256
/** Largest value kept (about 71 minutes); anything above is counted here. */
export const MAX_TRACKABLE_US = 2 ** 32 - 1;
const BUCKET_COUNT = LINEAR_LIMIT + (32 - LINEAR_LIMIT_EXPONENT) * SUB_BUCKETS;

/** A histogram as it crosses a process boundary: only the buckets in use. */
export interface SerializedHistogram {
  readonly count: number;
  readonly sumUs: number;
  readonly minUs: number;
  readonly maxUs: number;
  /** [bucket index, count] pairs. */
  readonly buckets: readonly (readonly [number, number])[];
}

export function bucketIndex(valueUs: number): number {
  const v = Math.min(MAX_TRACKABLE_US, Math.max(0, Math.floor(valueUs)));
  if (v < LINEAR_LIMIT) return v;
  const exponent = 31 - Math.clz32(v);
  const mantissa = Math.floor(v / 2 ** (exponent - SUB_BUCKET_BITS)); // in [128, 256)
  return LINEAR_LIMIT + (exponent - LINEAR_LIMIT_EXPONENT) * SUB_BUCKETS + (mantissa - SUB_BUCKETS);
}

/** The smallest and largest value a bucket holds. */
export function bucketRange(index: number): { lowUs: number; highUs: number } {
  if (index < LINEAR_LIMIT) return { lowUs: index, highUs: index };
  const k = index - LINEAR_LIMIT;
  const exponent = LINEAR_LIMIT_EXPONENT + Math.floor(k / SUB_BUCKETS);
  const mantissa = SUB_BUCKETS + (k % SUB_BUCKETS);
  const width = 2 ** (exponent - SUB_BUCKET_BITS);
  return { lowUs: mantissa * width, highUs: (mantissa + 1) * width - 1 };
}

export class Histogram {
  private readonly counts = new Float64Array(BUCKET_COUNT);
  count = 0;
  sumUs = 0;
  minUs = Infinity;
  maxUs = 0;

  record(valueUs: number): void {
    const v = Math.min(MAX_TRACKABLE_US, Math.max(0, Math.floor(valueUs)));
    this.counts[bucketIndex(v)]! += 1;
    this.count++;
    this.sumUs += v;
    if (v < this.minUs) this.minUs = v;
    if (v > this.maxUs) this.maxUs = v;
  }

  merge(other: Histogram | SerializedHistogram): void {
    const buckets = other instanceof Histogram ? other.serialize().buckets : other.buckets;
    for (const [index, count] of buckets) this.counts[index]! += count;
    this.count += other.count;
    this.sumUs += other.sumUs;
    if (other.count > 0) {
      this.minUs = Math.min(this.minUs, other.minUs);
      this.maxUs = Math.max(this.maxUs, other.maxUs);
    }
  }

  /**
   * The value at percentile p (0..100): the highest value of the bucket that
   * holds the ceil(p% of count)-th smallest value, clamped to the exact
   * min and max seen. NaN when empty.
   */
  percentile(p: number): number {
    if (this.count === 0) return Number.NaN;
    if (p >= 100) return this.maxUs;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.max(this.minUs, Math.min(this.maxUs, bucketRange(i).highUs));
    }
    return this.maxUs;
  }

  meanUs(): number {
    return this.count === 0 ? Number.NaN : this.sumUs / this.count;
  }

  serialize(): SerializedHistogram {
    const buckets: [number, number][] = [];
    for (let i = 0; i < this.counts.length; i++) {
      const count = this.counts[i]!;
      if (count > 0) buckets.push([i, count]);
    }
    return { count: this.count, sumUs: this.sumUs, minUs: this.count === 0 ? 0 : this.minUs, maxUs: this.maxUs, buckets };
  }

  static from(serialized: SerializedHistogram): Histogram {
    const histogram = new Histogram();
    histogram.merge(serialized);
    return histogram;
  }
}
