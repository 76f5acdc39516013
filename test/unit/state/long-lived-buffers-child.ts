/**
 * Child of long-lived-buffers.test.ts: allocates 160 MB of 256 KiB buffers,
 * each kept for 400 allocations, either through LongLivedBuffers ("shared",
 * with an allowance above that) or as plain typed arrays ("plain"), and
 * prints how many major GCs ran meanwhile.
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { LongLivedBuffers } from '../../../src/state/long-lived-buffers.ts';

const mode = process.argv[2];
const buffers = new LongLivedBuffers(1 << 30);
let majorGcs = 0;
const observer = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) if ((entry as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majorGcs++;
});
observer.observe({ entryTypes: ['gc'] });

const kept: Uint8Array[] = [];
for (let i = 0; i < 640; i++) {
  const buffer = mode === 'shared' ? buffers.allocate(256 << 10) : new Uint8Array(256 << 10);
  buffer[0] = i & 0xff;
  kept.push(buffer);
  if (kept.length > 400) kept.shift();
  // Some JS garbage too, so scavenges run and promote the buffers that are kept.
  for (let j = 0; j < 2000; j++) kept.at(-1)?.subarray(j & 15, 16);
}
// GC entries reach observers after the GC: let them arrive.
setTimeout(() => {
  observer.disconnect();
  console.log(majorGcs);
}, 50);
