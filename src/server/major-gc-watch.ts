/**
 * Tells the state's long-lived buffers (src/state/long-lived-buffers.ts) of
 * each major GC and the heap it left, so that they may be shared buffers
 * again, which V8 does not count towards starting the next one.
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import { longLivedBuffers } from '../state/index.ts';
import type { LongLivedBuffers } from '../state/index.ts';

/** Starts watching; returns what stops it. */
export function watchMajorGcs(buffers: LongLivedBuffers = longLivedBuffers()): () => void {
  const observer = new PerformanceObserver((list) => {
    // GC entries arrive after the GC, batched: one new allowance for the lot.
    if (list.getEntries().some((entry) => (entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR)) {
      buffers.majorGcDone(getHeapStatistics().used_heap_size);
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}
