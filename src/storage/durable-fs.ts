/**
 * File operations that survive power loss: a rename is durable only once the
 * directory holding it is fsynced, and a file's bytes only once the file is.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';

export function fsyncFile(path: string): void {
  const fd = fs.openSync(path, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function fsyncDir(dir: string): void {
  // Windows cannot open a directory for fsync, and NTFS makes renames durable itself.
  if (process.platform === 'win32') return;
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Makes `from`'s bytes durable, then atomically puts it at `to` and makes that durable too. */
export function durableRename(from: string, to: string): void {
  fsyncFile(from);
  fs.renameSync(from, to);
  fsyncDir(dirname(to));
}

/** Deletes a file if it exists; used for cleanup, where a missing file is the goal, not an error. */
export function removeIfPresent(path: string): void {
  fs.rmSync(path, { force: true });
}

/**
 * How many bytes a long file write (a snapshot) leaves unsynced at most. The
 * node's log fsyncs go to the same disk and wait behind whatever is dirty
 * when they run; a whole snapshot synced once at its end would make them
 * wait behind hundreds of MiB.
 */
export const WRITE_BACK_STEP_BYTES = 4 << 20;

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * fdatasync, then wait as long as it took: a long write keeps at most about
 * half of the disk's time, so the log fsyncs queued behind a step get their
 * turn before the next step (run on a worker thread: this blocks).
 */
function syncStep(fd: number): void {
  const began = performance.now();
  fs.fdatasyncSync(fd);
  Atomics.wait(pause, 0, 0, performance.now() - began);
}

/**
 * Syncs a file that someone else writes (SQLite) every WRITE_BACK_STEP_BYTES
 * reported to wrote() (syncStep), through an fd of its own: fdatasync flushes
 * the file, whichever fd wrote it.
 */
export class WriteBackPacer {
  private fd: number;
  private unsynced = 0;
  private synced = 0;

  constructor(path: string) {
    this.fd = fs.openSync(path, 'r');
  }

  wrote(bytes: number): void {
    this.unsynced += bytes;
    if (this.unsynced < WRITE_BACK_STEP_BYTES || this.fd < 0) return;
    syncStep(this.fd);
    this.unsynced = 0;
    this.synced++;
  }

  /** How many steps were synced so far. */
  get steps(): number {
    return this.synced;
  }

  close(): void {
    if (this.fd < 0) return;
    fs.closeSync(this.fd);
    this.fd = -1;
  }
}

/**
 * Copies `from` to `to` (not synced at the end: the caller syncs once it has
 * changed the copy). A reflink where the filesystem has them; else through a
 * WriteBackPacer, for the same reason.
 */
export function copyFileInSteps(from: string, to: string): void {
  try {
    fs.copyFileSync(from, to, fs.constants.COPYFILE_FICLONE_FORCE);
    return;
  } catch {
    // No reflinks here (ext4, tmpfs...), or another failure, which the copy below reports.
  }
  const source = fs.openSync(from, 'r');
  try {
    const target = fs.openSync(to, 'w');
    const pacer = new WriteBackPacer(to);
    try {
      const buffer = Buffer.allocUnsafe(1 << 20);
      for (let position = 0; ; ) {
        const read = fs.readSync(source, buffer, 0, buffer.length, position);
        if (read === 0) break;
        fs.writeSync(target, buffer, 0, read, position);
        position += read;
        pacer.wrote(read);
      }
    } finally {
      pacer.close();
      fs.closeSync(target);
    }
  } finally {
    fs.closeSync(source);
  }
}
