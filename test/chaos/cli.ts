/**
 * npm run chaos -- --duration SECONDS --seed S [--nodes 3|5] [--nemesis kill,pause,partition,...]
 *                  [--clients N] [--ttl-eviction] [--max-memory 256kb] [--out DIR]
 *                  [--recovery-bound SECONDS] [--election-ms MS] [--heartbeat-ms MS] [--key-life-ms MS] [--quiet]
 *
 * Runs one chaos run against a real cluster, prints progress, and ends with
 * the line `N passed, M failed` over its checks. The report (history.json,
 * index.html, node logs) goes to --out or a new folder under the OS temp dir.
 * Exits 1 when a check failed, 2 on bad arguments.
 */
import { parseArgs } from 'node:util';
import { NEMESES } from './nemesis.ts';
import type { NemesisName } from './nemesis.ts';
import { DEFAULT_OPTIONS } from './options.ts';
import { runChaos } from './runner.ts';

const USAGE = `usage: npm run chaos -- --duration SECONDS --seed S [--nodes 3|5] [--nemesis ${NEMESES.join(',')}]
       [--clients N] [--ttl-eviction] [--max-memory 256kb] [--out DIR] [--recovery-bound SECONDS]
       [--election-ms MS] [--heartbeat-ms MS] [--key-life-ms MS] [--quiet]`;

function fail(message: string): never {
  console.error(`chaos: ${message}\n${USAGE}`);
  process.exit(2);
}

function integer(name: string, text: string | undefined, fallback: number, min: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) fail(`--${name} '${text}' must be a whole number >= ${min}`);
  return value;
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      duration: { type: 'string' },
      seed: { type: 'string' },
      nodes: { type: 'string' },
      nemesis: { type: 'string' },
      clients: { type: 'string' },
      'ttl-eviction': { type: 'boolean', default: false },
      'max-memory': { type: 'string' },
      out: { type: 'string' },
      'recovery-bound': { type: 'string' },
      'election-ms': { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      'key-life-ms': { type: 'string' },
      quiet: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  }));
} catch (error) {
  fail((error as Error).message);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const nemeses = (values.nemesis ?? NEMESES.join(','))
  .split(',')
  .map((n) => n.trim())
  .filter((n) => n !== '');
for (const name of nemeses) if (!(NEMESES as readonly string[]).includes(name)) fail(`unknown nemesis '${name}' (one of ${NEMESES.join(', ')})`);
if (nemeses.length === 0) fail('--nemesis names no nemesis');
const nodes = integer('nodes', values.nodes, DEFAULT_OPTIONS.nodes, 1);
if (nodes !== 3 && nodes !== 5) fail('--nodes must be 3 or 5');
const seed = integer('seed', values.seed, Math.floor(Math.random() * 1_000_000), 0);
const quiet = values.quiet;

const result = await runChaos({
  ...DEFAULT_OPTIONS,
  seed,
  durationS: integer('duration', values.duration, DEFAULT_OPTIONS.durationS, 5),
  nodes,
  nemeses: nemeses as NemesisName[],
  clients: integer('clients', values.clients, DEFAULT_OPTIONS.clients, 10),
  ttlEviction: values['ttl-eviction'],
  maxMemory: values['max-memory'] ?? DEFAULT_OPTIONS.maxMemory,
  out: values.out ?? null,
  recoveryBoundMs: integer('recovery-bound', values['recovery-bound'], DEFAULT_OPTIONS.recoveryBoundMs / 1000, 1) * 1000,
  electionMs: integer('election-ms', values['election-ms'], DEFAULT_OPTIONS.electionMs, 10),
  heartbeatMs: integer('heartbeat-ms', values['heartbeat-ms'], DEFAULT_OPTIONS.heartbeatMs, 1),
  keyLifeMs: integer('key-life-ms', values['key-life-ms'], DEFAULT_OPTIONS.keyLifeMs, 100),
  progress: (line) => {
    if (!quiet || line.includes(' + ') || line.includes('report:')) console.log(line);
  },
});

const f = result.figures;
console.log('');
for (const check of result.checks) {
  console.log(`${check.ok ? 'PASS' : 'FAIL'}  ${check.name}: ${check.summary}`);
  if (!check.ok && check.details !== '') console.log(check.details.replace(/^/gm, '      ').slice(0, 6000));
}
console.log('');
console.log(`operations: ${f.operations} (ok ${f.ok}, fail ${f.failed}, unknown ${f.unknown}); faults injected: ${f.faultsInjected} (${Object.entries(f.faultsByNemesis).map(([n, c]) => `${n} ${c}`).join(', ')})`);
console.log(
  `longest unavailability after a leader kill: ${
    f.longestLeaderKillUnavailabilityMs === null
      ? 'no leader killed'
      : `${(f.longestLeaderKillUnavailabilityMs / 1000).toFixed(2)}s (${f.longestLoneLeaderKillUnavailabilityMs === null ? '—' : `${(f.longestLoneLeaderKillUnavailabilityMs / 1000).toFixed(2)}s`} with no other fault at the same time)`
  }; slowest recovery after a heal: ${
    f.slowestRecoveryMs === null ? '—' : `${(f.slowestRecoveryMs / 1000).toFixed(2)}s`
  }`,
);
console.log(`report: ${result.reportDir}/index.html`);
if (result.failed > 0) console.log(`seed ${seed} FAILED; rerun: ${result.rerun}`);
console.log(`${result.passed} passed, ${result.failed} failed`);
process.exit(result.failed > 0 ? 1 : 0);
