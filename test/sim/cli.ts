/**
 * npm run sim -- [--seeds N] [--start S] [--seed S] [--verbose]
 *
 * Runs seeds S..S+N-1 of the deterministic simulation and ends with the line
 * `N passed, M failed`. Each failure prints the one command that replays it.
 */
import { parseArgs } from 'node:util';
import { runSimulation } from './simulator.ts';

const { values } = parseArgs({
  options: {
    seeds: { type: 'string', default: '100' },
    start: { type: 'string', default: '1' },
    seed: { type: 'string' },
    verbose: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
});

const start = Number(values.seed ?? values.start);
const count = values.seed === undefined ? Number(values.seeds) : 1;
if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || count < 1) {
  console.error('usage: npm run sim -- [--seeds N] [--start S] [--seed S] [--verbose]');
  process.exit(2);
}

let passed = 0;
let failed = 0;
const began = Date.now();
for (let seed = start; seed < start + count; seed++) {
  const result = runSimulation(seed, values.verbose ? { trace: (line) => console.log(line) } : {});
  if (result.ok) {
    passed++;
    if (!values.quiet && count <= 20) {
      const s = result.stats;
      console.log(`seed ${seed} ok: ${s.operations} ops, ${s.unknownOutcomes} unknown, ${s.leadersElected} leaders, ${s.crashes} crashes, commit ${s.highestCommitted}, ${(s.simulatedMs / 1000).toFixed(1)}s simulated`);
    }
  } else {
    failed++;
    console.log(`\nseed ${seed} FAILED: ${result.failure}`);
    console.log(`  profile: ${JSON.stringify(result.profile)}`);
    console.log('  last events:');
    for (const line of result.traceTail.slice(-25)) console.log(`    ${line}`);
    console.log(`  replay: npm run sim -- --seed ${seed} --verbose`);
  }
  const done = seed - start + 1;
  if (!values.quiet && count > 20 && done % 100 === 0) {
    console.log(`... ${done}/${count} seeds, ${failed} failed, ${((Date.now() - began) / 1000).toFixed(0)}s`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
