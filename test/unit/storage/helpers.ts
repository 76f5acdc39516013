/** Shared by the storage tests: temp dirs that are always removed, entries, and child processes. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';
import type { Entry, EntryType } from '../../../src/raft/types.ts';
import { NodeStorage } from '../../../src/storage/index.ts';
import type { OpenOptions } from '../../../src/storage/index.ts';

export const CLUSTER = 'test-cluster';
export const NODE = 'n1';

export function entry(index: number, term: number, type: EntryType = 'normal', data?: Uint8Array): Entry {
  return { index, term, type, data: data ?? new TextEncoder().encode(`entry ${index} term ${term}`) };
}

export function entries(from: number, through: number, term: number): Entry[] {
  return Array.from({ length: through - from + 1 }, (_, i) => entry(from + i, term));
}

/** Entries as plain values, so Buffers read back compare equal to the Uint8Arrays written (and large ones quickly). */
export function plain(list: readonly Entry[]): { index: number; term: number; type: EntryType; data: string }[] {
  return list.map((e) => ({ index: e.index, term: e.term, type: e.type, data: base64(e.data) }));
}

export function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Temp dirs, open storages and child processes for one test file; all are
 * closed, killed and removed after each test, whether it passed or not.
 */
export function useScratch(): {
  dir(): string;
  open(dir: string, options?: Partial<OpenOptions>): NodeStorage;
  track<T extends { close(): void }>(resource: T): T;
  spawnChild(...args: string[]): ChildProcess;
} {
  const dirs: string[] = [];
  const resources: { close(): void }[] = [];
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
    }
    for (const resource of resources.splice(0)) {
      try {
        resource.close();
      } catch {
        // Already closed, or failed the test already.
      }
    }
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });
  const track = <T extends { close(): void }>(resource: T): T => {
    resources.push(resource);
    return resource;
  };
  return {
    dir() {
      const dir = fs.mkdtempSync(join(tmpdir(), 'qkv-storage-'));
      dirs.push(dir);
      return dir;
    },
    open(dir, options = {}) {
      return track(NodeStorage.open(dir, { clusterId: CLUSTER, nodeId: NODE, create: true, ...options }));
    },
    track,
    spawnChild(...args) {
      const child = spawn(process.execPath, ['--import', 'tsx', CHILD_SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      return child;
    },
  };
}

const CHILD_SCRIPT = fileURLToPath(new URL('./fixtures/storage-child.ts', import.meta.url));

/** Calls `onLine` with each line the child prints; resolves once it is gone and every line has been seen. */
export function watchChild(child: ChildProcess, onLine: (line: string) => void): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  if (child.stdout !== null) createInterface({ input: child.stdout }).on('line', onLine);
  // 'close', not 'exit': it comes after the child's output has been read to the end.
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stderr })));
}

/** Opens, loads and closes, for tests that expect open or load to refuse. */
export function openAndLoad(dir: string, options: Partial<OpenOptions> = {}): void {
  const storage = NodeStorage.open(dir, { clusterId: CLUSTER, nodeId: NODE, create: false, ...options });
  try {
    storage.load();
  } finally {
    storage.close();
  }
}
