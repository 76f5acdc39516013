/**
 * The build (scripts/build.js) must bundle every module a worker thread starts
 * on, under the name startWorker() looks for: a worker it missed would fail
 * only when a process run from the build starts it.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { workerBundleName } from '../../../src/threads/start-worker.ts';
import { REPO_ROOT } from '../../support/cluster-harness.ts';

interface BuildScript {
  WORKER_ENTRIES: string[];
  workerBundleName(sourcePath: string): string;
}

const buildScript = (await import(pathToFileURL(join(REPO_ROOT, 'scripts', 'build.js')).href)) as BuildScript;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith('.ts') ? [join(dir, entry.name)] : [],
  );
}

describe('worker entries of the build', () => {
  it('include the module of every startWorker() call in src/, and each exists', () => {
    const started = new Map<string, string>();
    for (const file of sourceFiles(join(REPO_ROOT, 'src'))) {
      for (const match of readFileSync(file, 'utf8').matchAll(/startWorker\(\s*'([^']+)'/g)) {
        started.set(match[1] as string, relative(REPO_ROOT, file));
      }
    }
    expect(started.size).toBeGreaterThanOrEqual(2);
    for (const [module, caller] of started) expect(buildScript.WORKER_ENTRIES, `${caller} starts a worker on ${module}`).toContain(module);
    for (const module of buildScript.WORKER_ENTRIES) expect(existsSync(join(REPO_ROOT, 'src', module)), module).toBe(true);
  });

  it('are the only way src/ starts a worker thread', () => {
    const direct = sourceFiles(join(REPO_ROOT, 'src'))
      .filter((file) => /new Worker\(/.test(readFileSync(file, 'utf8')))
      .map((file) => relative(REPO_ROOT, file));
    expect(direct).toEqual([join('src', 'threads', 'start-worker.ts')]);
  });

  it('are bundled under the name startWorker() looks for', () => {
    for (const module of buildScript.WORKER_ENTRIES) expect(buildScript.workerBundleName(module)).toBe(workerBundleName(module));
    expect(workerBundleName('server/client-threads/worker.ts')).toBe('server.client-threads.worker.mjs');
  });
});
