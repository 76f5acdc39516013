// @ts-check
/**
 * The build of src/ that bin/ runs: one esbuild bundle per entry point (the
 * CLIs and every worker thread's module), so that a process or a worker
 * thread starts without compiling TypeScript (tsx) first.
 *
 * A build lives in dist/<id>/, where id hashes the content of every input
 * (src/, this file, tsconfig.json): a build that exists is never stale, and
 * going back to an earlier source finds its build again. It is written under
 * a temporary name and renamed into place, so processes starting at once
 * (three nodes, the test harness) never see half a build; two that build the
 * same id at once both succeed and one rename wins. Every bundle sits
 * directly in dist/<id>/, which src/threads/start-worker.ts relies on to find the
 * worker bundles beside the one that is running.
 *
 *   node scripts/build.js     builds if the current sources have no build yet (npm runs it as `prepare`)
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(REPO_ROOT, 'dist');

/** The CLIs: bin/NAME.js runs src/cli/NAME.ts, bundled as NAME.mjs. */
export const CLI_ENTRIES = ['quorumkv', 'qkv'];

/**
 * Every module a worker thread starts on (the path under src/ that
 * startWorker() is given). Add a worker's module here.
 */
export const WORKER_ENTRIES = ['server/client-threads/worker.ts', 'storage/snapshot-read-worker.ts', 'storage/snapshot-write-worker.ts'];

/**
 * A worker module's bundle name; src/threads/start-worker.ts computes the same.
 * @param {string} sourcePath
 */
export function workerBundleName(sourcePath) {
  return `${sourcePath.replace(/\.ts$/, '').replaceAll('/', '.')}.mjs`;
}

/** Builds kept besides the current one, the most recently used first; and any a running process uses (holdBuild). */
const KEEP_BUILDS = 4;
/** The marker file name of a process that runs a build, with its pid after it. */
const IN_USE = '.in-use-';
/** A temporary build dir this old is left over from a builder that died. */
const ABANDONED_MS = 10 * 60_000;

/** The build dir for the sources as they are now (whether or not it was built). */
export function buildDir() {
  const hash = createHash('sha256');
  const inputs = [...listFiles(join(REPO_ROOT, 'src')), fileURLToPath(import.meta.url), join(REPO_ROOT, 'tsconfig.json')];
  for (const file of inputs) {
    hash.update(relative(REPO_ROOT, file).split(sep).join('/'));
    hash.update('\0');
    hash.update(readFileSync(file));
    hash.update('\0');
  }
  return join(DIST, hash.digest('hex').slice(0, 16));
}

/**
 * @param {string} dir
 * @returns {string[]}
 */
function listFiles(dir) {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...listFiles(path));
    else files.push(path);
  }
  return files;
}

/**
 * The bundle of CLI `name` for the current sources, built first if needed,
 * and held for as long as this process runs. Throws if it cannot be built.
 * @param {string} name
 */
export async function builtCli(name) {
  const dir = buildDir();
  const entry = join(dir, `${name}.mjs`);
  if (!existsSync(entry)) await build(dir);
  holdBuild(dir);
  return entry;
}

/**
 * Marks build `dir` as used by this process until it exits: a process starts
 * worker threads from its build long after its own start, so no other
 * process's clean-up may remove the build meanwhile.
 * @param {string} dir
 */
function holdBuild(dir) {
  const marker = join(dir, `${IN_USE}${process.pid}`);
  try {
    writeFileSync(marker, '');
  } catch {
    return; // a read-only install: nothing there is ever removed either
  }
  process.once('exit', () => rmSync(marker, { force: true }));
}

/**
 * Whether a process that holds build `dir` still runs (a killed one leaves its marker behind).
 * @param {string} dir
 */
function inUse(dir) {
  return readdirSync(dir).some((name) => name.startsWith(IN_USE) && isRunning(Number(name.slice(IN_USE.length))));
}

/** @param {number} pid */
function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return /** @type {NodeJS.ErrnoException} */ (error).code === 'EPERM';
  }
}

/** @param {string} dir */
async function build(dir) {
  // Loaded only when building: a start from an existing build needs none of it.
  const esbuild = await import('esbuild');
  const temporary = `${dir}.tmp-${process.pid}-${Date.now()}`;
  /** @type {Record<string, string>} */
  const entryPoints = {};
  for (const name of CLI_ENTRIES) entryPoints[name] = join(REPO_ROOT, 'src', 'cli', `${name}.ts`);
  for (const path of WORKER_ENTRIES) entryPoints[workerBundleName(path).slice(0, -'.mjs'.length)] = join(REPO_ROOT, 'src', path);
  try {
    await esbuild.build({
      entryPoints,
      outdir: temporary,
      outExtension: { '.js': '.mjs' },
      bundle: true,
      // node_modules stay imports, resolved from dist/ up to the repository's node_modules.
      packages: 'external',
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // Error classes name themselves after new.target.name: bundling must not rename them.
      keepNames: true,
      // Read with node --enable-source-maps: stack traces then name the .ts lines.
      sourcemap: 'linked',
      sourcesContent: false,
      logLevel: 'silent',
    });
    renameSync(temporary, dir);
  } catch (error) {
    rmSync(temporary, { recursive: true, force: true });
    // Another process published the same build first: use theirs.
    if (existsSync(join(dir, `${CLI_ENTRIES[0]}.mjs`))) return;
    throw error;
  }
  try {
    removeOldBuilds(dir);
  } catch {
    // Best effort: another process may be removing the same builds.
  }
}

/** @param {string} current */
function removeOldBuilds(current) {
  const now = Date.now();
  const builds = [];
  for (const name of readdirSync(DIST)) {
    const path = join(DIST, name);
    if (path === current) continue;
    let modifiedMs;
    try {
      modifiedMs = statSync(path).mtimeMs;
    } catch {
      continue; // removed by another process meanwhile
    }
    if (name.includes('.tmp-')) {
      if (now - modifiedMs > ABANDONED_MS) rmSync(path, { recursive: true, force: true });
    } else if (/^[0-9a-f]{16}$/.test(name)) {
      builds.push({ path, modifiedMs });
    }
  }
  // A build's mtime is when a process last started on it (its marker was added).
  builds.sort((a, b) => b.modifiedMs - a.modifiedMs);
  for (const { path } of builds.slice(KEEP_BUILDS)) {
    if (!inUse(path)) rmSync(path, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const dir = buildDir();
  if (!existsSync(join(dir, `${CLI_ENTRIES[0]}.mjs`))) await build(dir);
  process.stdout.write(`quorumkv: built ${relative(process.cwd(), dir)}\n`);
}
