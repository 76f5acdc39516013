// @ts-check
/**
 * Runs CLI `name` (src/cli/NAME.ts) from the build of src/ (scripts/build.js),
 * building it first when the sources changed since, so a start never runs
 * stale code and never waits for tsx. If no build can be made (a compile
 * error, a read-only install), tsx runs the TypeScript instead.
 */
import process from 'node:process';
import { URL, pathToFileURL } from 'node:url';
import { builtCli } from '../scripts/build.js';

/** @param {string} name */
export async function runCli(name) {
  let bundle = null;
  try {
    bundle = await builtCli(name);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    process.stderr.write(`${name}: cannot build src/ (${reason.trim()}); running the TypeScript with tsx instead (a slower start)\n`);
  }
  if (bundle !== null) {
    await import(pathToFileURL(bundle).href);
    return;
  }
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL(`../src/cli/${name}.ts`, import.meta.url).href);
}
