/**
 * Reads the .cpuprofile files that `node --cpu-prof` writes (Chrome DevTools
 * format) and sums self time per function and per area (a src/ folder, a
 * package under node_modules, Node's internals), to say where a server's
 * time went during a run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber?: number;
}

/**
 * The frame at its place in src/ when it ran from a bundle (dist/, built with
 * linked source maps by scripts/build.js): a profile of the built node then
 * reads like one of the sources. Frames without a map are kept as they are.
 */
function sourceMapped(frame: CallFrame, maps: Map<string, SourceMap | null>): CallFrame {
  if (!frame.url.startsWith('file://') || !frame.url.endsWith('.mjs')) return frame;
  let map = maps.get(frame.url);
  if (map === undefined) {
    const mapFile = `${fileURLToPath(frame.url)}.map`;
    map = existsSync(mapFile) ? new SourceMap(JSON.parse(readFileSync(mapFile, 'utf8')) as ConstructorParameters<typeof SourceMap>[0]) : null;
    maps.set(frame.url, map);
  }
  if (map === null) return frame;
  const entry = map.findEntry(frame.lineNumber, frame.columnNumber ?? 0) as { originalSource?: string; originalLine?: number };
  if (entry.originalSource === undefined || entry.originalLine === undefined) return frame;
  const source = entry.originalSource.startsWith('file://') ? entry.originalSource : pathToFileURL(fileURLToPath(new URL(entry.originalSource, frame.url))).href;
  return { ...frame, url: source, lineNumber: entry.originalLine };
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  /** Microseconds on the monotonic clock that process.hrtime reads too. */
  readonly startTime: number;
  readonly samples: readonly number[];
  /** Microseconds since the previous sample, one per sample. */
  readonly timeDeltas: readonly number[];
}

export interface SelfTime {
  readonly name: string;
  readonly selfMs: number;
  /** Share of all sampled time, idle included. */
  readonly percent: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Sampled time not spent idle. */
  readonly busyMs: number;
  readonly functions: readonly SelfTime[];
  readonly areas: readonly SelfTime[];
}

/** A source location shortened for reading: the path inside the repository, a package, or node: internals. */
export function shortLocation(url: string, repoRoot: string): string {
  if (url === '') return '';
  let path = url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) return path.slice(modules + 1);
  if (path.startsWith(`${repoRoot}/`)) path = path.slice(repoRoot.length + 1);
  return path;
}

/** The area a location belongs to: src/server, node_modules/@grpc/grpc-js, node:internal, (gc)... */
export function areaOf(frame: CallFrame, repoRoot: string): string {
  if (frame.url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const location = shortLocation(frame.url, repoRoot);
  if (location.startsWith('node_modules/')) {
    const parts = location.split('/');
    return parts[1]?.startsWith('@') === true ? parts.slice(0, 3).join('/') : parts.slice(0, 2).join('/');
  }
  if (location.startsWith('node:')) return 'node: internals';
  const parts = location.split('/');
  return parts.length > 2 ? parts.slice(0, 2).join('/') : location;
}

/** A span of the monotonic clock, in microseconds (process.hrtime.bigint() / 1000n). */
export interface MonotonicWindow {
  readonly fromUs: number;
  readonly toUs: number;
}

/**
 * Self time per function and per area. With `windows`, only samples taken
 * inside them count: the measured part of each run, not startup (where tsx
 * compiles the sources), preload or shutdown.
 */
export function summarizeProfile(profile: CpuProfile, repoRoot: string, windows: readonly MonotonicWindow[] = [], top = 15): ProfileSummary {
  const maps = new Map<string, SourceMap | null>();
  const byId = new Map(profile.nodes.map((n) => [n.id, sourceMapped(n.callFrame, maps)]));
  const perFunction = new Map<string, number>();
  const perArea = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    if (windows.length > 0 && !windows.some((w) => at >= w.fromUs && at < w.toUs)) return;
    const frame = byId.get(id);
    if (frame === undefined || us <= 0) return;
    totalUs += us;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      return;
    }
    const where = shortLocation(frame.url, repoRoot);
    const name = `${frame.functionName || '(anonymous)'}${where === '' ? '' : ` ${where}:${frame.lineNumber + 1}`}`;
    perFunction.set(name, (perFunction.get(name) ?? 0) + us);
    const area = areaOf(frame, repoRoot);
    perArea.set(area, (perArea.get(area) ?? 0) + us);
  });
  const rank = (map: Map<string, number>, limit: number): SelfTime[] =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([name, us]) => ({ name, selfMs: us / 1000, percent: totalUs === 0 ? 0 : (us * 100) / totalUs }));
  return { totalMs: totalUs / 1000, busyMs: (totalUs - idleUs) / 1000, functions: rank(perFunction, top), areas: rank(perArea, 10) };
}

export function readProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
}
