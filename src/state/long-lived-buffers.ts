/**
 * Buffers that live long and die old: value slabs and pooled log entries.
 *
 * V8 counts every ArrayBuffer's bytes as external memory and starts a major
 * GC once 64 MB more were allocated since the last one, live or not. These
 * buffers outlive scavenges, so only a major GC frees them, and at 2,000
 * puts/s they crossed 64 MB about every 50 s: a major GC each time, which
 * with 1M keys stalls a busy node for about half a second (a 100-180 ms pause
 * plus its marking steps on the main thread).
 *
 * A SharedArrayBuffer's bytes are not counted (V8 cannot tell which isolate
 * owns them), so these buffers are SharedArrayBuffers, up to an allowance of
 * bytes per major GC: half the heap the last major GC left, at least
 * MIN_ALLOWANCE_BYTES. Past the allowance they are plain ArrayBuffers again,
 * and V8's own trigger ends the stretch as before. Garbage these buffers
 * leave between major GCs thus stays within the allowance plus V8's 64 MB,
 * and a store that holds more data, whose major GCs cost more, has them less
 * often.
 *
 * The bytes are the same either way; only who accounts for them differs. A
 * shared buffer must not go in a postMessage transfer list (nothing here
 * does: a worker gets a copy, or shares the immutable bytes).
 *
 * This module does no I/O: the node tells it of major GCs and the heap they
 * left (src/server/major-gc-watch.ts). Untold (tests, the simulation), the
 * allowance is spent once and V8 accounts for everything after it, as before.
 */
export const MIN_ALLOWANCE_BYTES = 32 << 20;

export class LongLivedBuffers {
  private allocatedSinceMajorGc = 0;
  private allowance: number;

  constructor(private readonly minAllowanceBytes: number = MIN_ALLOWANCE_BYTES) {
    this.allowance = minAllowanceBytes;
  }

  /** A zeroed buffer of `bytes`: shared while this stretch's allowance lasts. */
  allocate(bytes: number): Uint8Array {
    if (this.allocatedSinceMajorGc + bytes > this.allowance) return new Uint8Array(bytes);
    this.allocatedSinceMajorGc += bytes;
    return new Uint8Array(new SharedArrayBuffer(bytes));
  }

  /** A major GC ran and left `heapUsedBytes` of V8 heap: the last stretch's garbage is gone, a new allowance starts. */
  majorGcDone(heapUsedBytes: number): void {
    this.allocatedSinceMajorGc = 0;
    this.allowance = Math.max(this.minAllowanceBytes, Math.floor(heapUsedBytes / 2));
  }

  /** Shared bytes handed out since the last major GC, and how many this stretch may have. */
  stats(): { readonly sharedBytesSinceMajorGc: number; readonly allowanceBytes: number } {
    return { sharedBytesSinceMajorGc: this.allocatedSinceMajorGc, allowanceBytes: this.allowance };
  }
}

const shared = new LongLivedBuffers();

/** The allocator of this process (or worker thread). */
export function longLivedBuffers(): LongLivedBuffers {
  return shared;
}
