/**
 * One node per data dir. The lock is SQLite's own: the node database runs in
 * `locking_mode=EXCLUSIVE`, so its connection holds an exclusive POSIX lock
 * on node.db from open to close. The kernel drops that lock when the process
 * dies, so a crash never leaves a stale lock behind (a pid file would, and
 * pids repeat across container restarts).
 *
 * A small LOCK file records who holds the lock, only to name the holder in
 * the error a second process gets.
 */
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DataDirLockedError } from './errors.ts';
import { sqliteCode } from './sqlite.ts';
import type { Db } from './sqlite.ts';

export const LOCK_INFO_FILE = 'LOCK';

/**
 * Puts `db` in exclusive WAL mode and takes the lock now, rather than at the
 * first query, so that a second opener fails here with a clear error.
 */
export function lockDataDir(db: Db, dir: string): void {
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    // In exclusive mode WAL keeps its index in heap memory: no -shm file, no shared-memory readers.
    db.pragma('journal_mode = WAL');
    db.exec('BEGIN EXCLUSIVE; COMMIT');
  } catch (error) {
    const code = sqliteCode(error);
    if (code !== null && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))) {
      throw new DataDirLockedError(dir, readHolder(dir), { cause: error });
    }
    throw error;
  }
  fs.writeFileSync(join(dir, LOCK_INFO_FILE), `pid ${process.pid} on ${hostname()} since ${new Date().toISOString()}\n`);
}

/** Call while still holding the lock, so as not to remove a successor's record. */
export function forgetHolder(dir: string): void {
  fs.rmSync(join(dir, LOCK_INFO_FILE), { force: true });
}

function readHolder(dir: string): string | null {
  try {
    const text = fs.readFileSync(join(dir, LOCK_INFO_FILE), 'utf8').trim();
    return text === '' ? null : `held by ${text}`;
  } catch {
    return null;
  }
}
