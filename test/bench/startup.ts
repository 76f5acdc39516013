/**
 * `npm run bench -- startup [--runs 5] [--client-threads N] [--bin PATH]...`:
 * how long a single-node `quorumkv serve` with an empty data dir takes from
 * its spawn until its client port answers Cluster/Status. --bin runs another
 * checkout's bin/quorumkv.js (e.g. an older commit, to compare); given more
 * than once, the runs of each alternate, so that they share the machine's load.
 * On Linux it also tells the CPU time the process (all its threads) had used
 * by then, which other load on the machine changes less than the wall time.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { SERVE_NODE_FLAGS } from '../../src/cli/node-flags.ts';
import { NodeClient, REPO_ROOT, freePort } from '../support/cluster-harness.ts';

/** How often the client port is asked while the node starts. */
const POLL_MS = 10;
/** A node that has not answered by then counts as failed. */
const GIVE_UP_MS = 60_000;
/** Linux's USER_HZ: the unit of /proc/PID/stat's CPU times. */
const CLOCK_TICKS_PER_S = 100;

interface Start {
  readonly wallMs: number;
  /** null where /proc is not there to tell. */
  readonly cpuMs: number | null;
}

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      runs: { type: 'string', default: '5' },
      'client-threads': { type: 'string', default: '0' },
      bin: { type: 'string', multiple: true, default: [join(REPO_ROOT, 'bin', 'quorumkv.js')] },
    },
    strict: true,
  });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const bins = values.bin.map((bin) => resolve(bin));
  const starts = bins.map((): Start[] => []);
  for (let i = 0; i < runs; i++) {
    for (const [index, bin] of bins.entries()) starts[index]?.push(await startOnce(bin, values['client-threads']));
  }
  for (const [index, bin] of bins.entries()) {
    const runsOfBin = starts[index] ?? [];
    const cpuMs = runsOfBin.flatMap((start) => (start.cpuMs === null ? [] : [start.cpuMs]));
    console.log(
      `${bin} serve --client-threads ${values['client-threads']}: spawn to client port answering: ` +
        `wall ms ${summary(runsOfBin.map((start) => start.wallMs))}` +
        (cpuMs.length > 0 ? `; CPU ms ${summary(cpuMs)}` : ''),
    );
  }
}

function summary(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `min ${Math.round(sorted[0] ?? 0)}, median ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)} (${values.map(Math.round).join(' ')})`;
}

/** User plus system CPU time of process `pid` so far, from /proc; null without it. */
function cpuTimeMs(pid: number | undefined): number | null {
  const file = `/proc/${pid}/stat`;
  if (pid === undefined || !existsSync(file)) return null;
  // The fields after the command name (in parentheses, which may hold spaces): utime and stime are the 12th and 13th.
  const stat = readFileSync(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

async function startOnce(bin: string, clientThreads: string): Promise<Start> {
  const dataDir = mkdtempSync(join(tmpdir(), 'quorumkv-startup-'));
  const [clientPort, peerPort, httpPort] = [await freePort(), await freePort(), await freePort()];
  const address = `127.0.0.1:${clientPort}`;
  // A short reconnect backoff: the port is refused until the node listens.
  const client = new NodeClient(address, grpc.credentials.createInsecure(), null, { 'grpc.initial_reconnect_backoff_ms': POLL_MS, 'grpc.max_reconnect_backoff_ms': POLL_MS });
  const startedAt = performance.now();
  const child = spawn(
    process.execPath,
    [
      ...SERVE_NODE_FLAGS,
      bin,
      'serve',
      '--id', 'n1',
      '--data-dir', dataDir,
      '--client-addr', address,
      '--peer-addr', `127.0.0.1:${peerPort}`,
      '--http-addr', `127.0.0.1:${httpPort}`,
      '--initial-cluster', `n1=127.0.0.1:${peerPort}`,
      '--log-level', 'warn',
      '--client-threads', clientThreads,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`the node exited with code ${child.exitCode} before it answered`);
      if (performance.now() - startedAt > GIVE_UP_MS) throw new Error(`the node did not answer within ${GIVE_UP_MS} ms`);
      try {
        await client.call('Status', {}, 1000);
        return { wallMs: performance.now() - startedAt, cpuMs: cpuTimeMs(child.pid) };
      } catch {
        await new Promise((wake) => setTimeout(wake, POLL_MS));
      }
    }
  } finally {
    client.close();
    child.kill('SIGTERM');
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  }
}
