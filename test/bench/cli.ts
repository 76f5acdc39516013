/**
 * `npm run bench -- NAME [flags]` runs test/bench/NAME.ts, whose `run(argv)`
 * prints its figures. With no NAME it lists the benchmarks there are.
 * Modules named load-* and etcd-* are the cluster benchmark's parts, not benchmarks.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Benchmark {
  run(argv: string[]): Promise<void>;
}

const benchDir = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(benchDir)
  .filter((file) => file.endsWith('.ts') && file !== 'cli.ts' && !/^(_|load-|etcd-)/.test(file))
  .map((file) => file.slice(0, -3))
  .sort();

const [name, ...rest] = process.argv.slice(2);
if (name === undefined || !available.includes(name)) {
  if (name !== undefined) console.error(`unknown benchmark '${name}'`);
  console.error(`usage: npm run bench -- <${available.join('|')}> [flags]`);
  process.exit(name === undefined ? 0 : 2);
}
const bench = (await import(join(benchDir, `${name}.ts`))) as Benchmark;
await bench.run(rest);
