/** The node tells its long-lived buffers of each real major GC, and of the heap it left. */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { watchMajorGcs } from '../../../src/server/major-gc-watch.ts';
import { LongLivedBuffers } from '../../../src/state/index.ts';

describe('watchMajorGcs', () => {
  it('starts a new allowance, half the heap left, after a major GC', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const buffers = new LongLivedBuffers(1 << 20);
    buffers.allocate(1 << 20);
    expect(buffers.allocate(1).buffer).not.toBeInstanceOf(SharedArrayBuffer);
    const stop = watchMajorGcs(buffers);
    try {
      gc();
      // GC entries reach observers after the GC.
      for (let i = 0; i < 100 && buffers.stats().sharedBytesSinceMajorGc > 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(buffers.stats().sharedBytesSinceMajorGc).toBe(0);
      // A vitest worker's heap is well over 2 MB: the allowance is half of it, not the minimum.
      expect(buffers.stats().allowanceBytes).toBeGreaterThan(1 << 20);
      expect(buffers.allocate(1).buffer).toBeInstanceOf(SharedArrayBuffer);
    } finally {
      stop();
    }
  });
});
