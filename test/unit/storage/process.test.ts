/** Real second processes: the data dir lock, and a crash in the middle of a write. */
import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DataDirLockedError } from '../../../src/storage/index.ts';
import { useScratch, watchChild } from './helpers.ts';

const scratch = useScratch();

/** Resolves once the child prints `line`; rejects, with its stderr, if it exits first. */
async function untilLine(child: ChildProcess, line: string, exit: Promise<{ stderr: string }>, lines: string[]): Promise<void> {
  for (;;) {
    if (lines.includes(line)) return;
    const exited = await Promise.race([exit, new Promise<null>((resolve) => setTimeout(() => resolve(null), 20))]);
    if (exited !== null && !lines.includes(line)) throw new Error(`child ${child.pid} exited before printing '${line}': ${exited.stderr}`);
  }
}

describe('one process per data dir', () => {
  it('a second process is refused while this one holds the dir', async () => {
    const dir = scratch.dir();
    scratch.open(dir);
    const lines: string[] = [];
    const exit = await watchChild(scratch.spawnChild('open', dir), (line) => lines.push(line));
    expect(exit.code, exit.stderr).toBe(0);
    const result = JSON.parse(lines[0] ?? '{}') as { code?: string; message?: string };
    expect(result.code).toBe('STORAGE_LOCKED');
    expect(result.message).toContain(`data dir ${dir} is in use by another process (held by pid ${process.pid} on `);
    expect(result.message).toContain('Only one node may run on a data dir');
  });

  it('this process is refused while another holds the dir, and gets it once that one is killed', async () => {
    const dir = scratch.dir();
    const child = scratch.spawnChild('hold', dir);
    const lines: string[] = [];
    const exit = watchChild(child, (line) => lines.push(line));
    await untilLine(child, 'ready', exit, lines);

    let error: unknown;
    try {
      scratch.open(dir);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(DataDirLockedError);
    expect((error as Error).message).toContain(`held by pid ${child.pid} on `);

    child.kill('SIGKILL');
    expect((await exit).signal).toBe('SIGKILL');
    // The kernel dropped the dead process's lock: no stale lock to clean up by hand.
    const storage = scratch.open(dir, { create: false });
    expect(storage.load().entries).toEqual([]);
  });
});

describe('a crash in the middle of a write', () => {
  it.each(['append', 'append-async'])('leaves every batch wholly there or wholly absent, with its hard state, and checksums intact (%s)', { timeout: 120_000 }, async (mode) => {
    const dir = scratch.dir();
    const batch = 64;
    // 256 KiB per transaction, so that a kill often lands while its WAL frames are being written.
    const dataBytes = 4096;
    let acknowledged = 0;
    for (let round = 0; round < 5; round++) {
      const child = scratch.spawnChild(mode, dir, String(batch), String(dataBytes));
      const killAfterBatches = 2 + round * 4;
      // Some rounds kill the moment a batch begins, others a little into it.
      const delayMs = round % 2 === 0 ? 0 : round;
      let done = 0;
      let lastBegun = 0;
      let killed = false;
      const exit = watchChild(child, (line) => {
        const [what, index] = line.split(' ');
        if (what === 'done') {
          acknowledged = Number(index);
          done++;
        } else if (what === 'begin') {
          // The child may be a few batches further on by the time it dies.
          lastBegun = Number(index);
          if (done >= killAfterBatches && !killed) {
            killed = true;
            if (delayMs === 0) child.kill('SIGKILL');
            else setTimeout(() => child.kill('SIGKILL'), delayMs);
          }
        }
      });
      const { signal, stderr } = await exit;
      expect(signal, stderr).toBe('SIGKILL');

      // load() verifies every checksum, contiguity, and that the commit is within the log.
      const storage = scratch.open(dir, { create: false });
      const { hardState, entries } = storage.load();
      const last = entries[entries.length - 1]?.index ?? 0;
      expect(entries).toHaveLength(last);
      // The last batch begun is wholly there or wholly absent; everything acknowledged is there.
      expect([acknowledged, lastBegun + batch - 1], `round ${round}`).toContain(last);
      // The hard state was written in the same transaction as the entries.
      expect(hardState.commit).toBe(last);
      for (const entry of entries) {
        expect(entry.data.length).toBe(dataBytes);
        expect(Buffer.from(entry.data).equals(Buffer.alloc(dataBytes, entry.index % 251)), `entry ${entry.index}`).toBe(true);
      }
      storage.close();
    }
  });
});
