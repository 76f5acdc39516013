/**
 * The short chaos runs of `npm test`: two fixed seeds, about a minute and a
 * half together. The long run is `npm run chaos -- --duration 600`.
 *
 * A run cleans up its processes, proxy and data dirs itself, pass or fail;
 * its report folder is removed when every check passed and kept (and named
 * in the failure, with the command that reruns the seed) when one did not.
 */
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIONS } from './options.ts';
import { runChaos } from './runner.ts';
import type { ChaosOptions } from './options.ts';

async function run(options: Partial<ChaosOptions> & Pick<ChaosOptions, 'seed' | 'durationS'>): Promise<void> {
  const lines: string[] = [];
  const result = await runChaos({ ...DEFAULT_OPTIONS, ...options, progress: (line) => lines.push(line) });
  const failures = result.checks.filter((c) => !c.ok).map((c) => `FAIL ${c.name}: ${c.summary}\n${c.details}`);
  const message = `seed ${options.seed}: ${result.passed} passed, ${result.failed} failed\n${failures.join('\n\n')}\nreport: ${result.reportDir}\nrerun: ${result.rerun}\n\n${lines.join('\n')}`;
  expect(result.failed, message).toBe(0);
  expect(result.figures.faultsInjected, message).toBeGreaterThanOrEqual(3);
  expect(result.figures.ok, message).toBeGreaterThan(500);
  rmSync(result.reportDir, { recursive: true, force: true });
}

describe('chaos (short runs)', () => {
  it('5 nodes, every nemesis alone and mixed: linearizable, nothing lost, converged, recovered', async () => {
    await run({ seed: 11, durationS: 40, nodes: 5 });
  }, 240_000);

  it('3 nodes with TTLs and a small memory budget: expiry and eviction under faults', async () => {
    await run({
      seed: 2,
      durationS: 30,
      nodes: 3,
      ttlEviction: true,
      nemeses: ['kill-leader', 'pause', 'partition', 'partition-one-way', 'loss', 'fsync', 'clock', 'membership', 'transfer'],
    });
  }, 240_000);
});
