import { describe, it } from 'vitest';
import { expectSeedPasses, seedBlocks } from './expect-seed.ts';

// npm test runs seeds 1-300 in two files, so the two CI cores share them.
describe('deterministic simulation, seeds 1-150', () => {
  for (const [first, last] of seedBlocks(1, 150, 25)) {
    it(`seeds ${first}-${last} keep every safety property, converge after healing, and stay linearizable`, () => {
      for (let seed = first; seed <= last; seed++) expectSeedPasses(seed);
    });
  }
});
