/** `quorumkv` subcommands answer --help and bad options with the usage, never a stack trace (real child processes). */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../support/cluster-harness.ts';

function quorumkv(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'quorumkv.js'), ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('quorumkv usage', () => {
  it.each(['dev', 'certs'])('%s --help prints the usage and exits 0', (command) => {
    const run = quorumkv(command, '--help');
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(`quorumkv ${command} [`);
  });

  it.each(['dev', 'certs'])('%s with an unknown option names it, prints the usage and exits 1', (command) => {
    const run = quorumkv(command, '--bogus');
    expect(run.status).toBe(1);
    expect(run.stderr).toContain("quorumkv: Unknown option '--bogus'");
    expect(run.stderr).toContain('usage:');
    expect(run.stderr).not.toContain('    at ');
  });
});
