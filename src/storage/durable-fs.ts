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
