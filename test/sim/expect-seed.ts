import { expect } from 'vitest';
import { runSimulation } from './simulator.ts';

/** Runs one seed; on failure the message carries the command that replays it. */
export function expectSeedPasses(seed: number): void {
  const result = runSimulation(seed);
  const detail = result.ok
    ? ''
    : `${result.failure}\nlast events:\n${result.traceTail.slice(-15).join('\n')}\nreplay: npm run sim -- --seed ${seed} --verbose`;
  expect(result.ok, detail).toBe(true);
  // A seed that did nothing proves nothing.
  expect(result.stats.operations).toBeGreaterThan(0);
}

/** Seeds first..last, in blocks so that vitest reports each block as one test. */
export function seedBlocks(first: number, last: number, blockSize: number): [number, number][] {
  const blocks: [number, number][] = [];
  for (let start = first; start <= last; start += blockSize) blocks.push([start, Math.min(last, start + blockSize - 1)]);
  return blocks;
}
