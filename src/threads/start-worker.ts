/**
 * Starts a worker thread on a module under src/, from whichever code this
 * process runs. From the build (dist/<id>/, scripts/build.js) the worker
 * loads that module's bundle, which sits beside the running one. From the
 * TypeScript source (bin/ falling back to tsx, vitest) the worker needs tsx
 * registered in its own module loader first, since worker threads do not
 * inherit the hooks of the thread that starts them.
 */
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { WorkerOptions } from 'node:worker_threads';

const RUNNING_SOURCE = import.meta.url.endsWith('.ts');

/** `sourcePath`: the worker's module under src/, e.g. 'storage/snapshot-read-worker.ts' (and in WORKER_ENTRIES of scripts/build.js). */
export function startWorker(sourcePath: string, options: Omit<WorkerOptions, 'eval'>): Worker {
  if (!RUNNING_SOURCE) {
    const bundle = new URL(`./${workerBundleName(sourcePath)}`, import.meta.url);
    if (!existsSync(bundle)) throw new Error(`the build has no bundle of src/${sourcePath}: add it to WORKER_ENTRIES in scripts/build.js`);
    return new Worker(bundle, options);
  }
  const entry = new URL(`../${sourcePath}`, import.meta.url);
  const tsx = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}

/** The name of a worker module's bundle in a build: scripts/build.js names them the same way. */
export function workerBundleName(sourcePath: string): string {
  return `${sourcePath.replace(/\.ts$/, '').replaceAll('/', '.')}.mjs`;
}
