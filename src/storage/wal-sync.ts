/**
 * Makes the node database's committed transactions durable by fdatasync'ing
 * its WAL file ourselves, so that the fsync can run on libuv's thread pool
 * while the event loop goes on.
 *
 * Why this is as safe as `synchronous=FULL`: the connection runs with
 * `synchronous=NORMAL`, where a commit writes its WAL frames (write(2), page
 * cache) without syncing, and SQLite itself syncs the WAL before every
 * checkpoint and the database file after it. An fdatasync of the WAL's inode,
 * through any descriptor, flushes every frame written before it; WAL recovery
 * replays a prefix of the committed transactions, so once the sync that
 * followed a commit returns, that commit and every earlier one survive power
 * loss. The caller must not rely on a commit before its sync has returned.
 *
 * The WAL is one file for the connection's whole life (exclusive locking
 * mode: SQLite truncates it but deletes it only at close). We still check
 * that our descriptor's file has not been unlinked, and sync the directory
 * once, as SQLite does after creating a journal, so that the file is found
 * after a crash.
 */
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { fsyncDir } from './durable-fs.ts';

export class WalSync {
  private fd: number | null = null;
  private closed = false;

  constructor(private readonly dbFile: string) {}

  /** Durable when it returns: blocks the thread for the fsync. */
  syncNow(): void {
    fs.fdatasyncSync(this.walFd());
  }

  /** Durable when the promise resolves; the fsync runs off the event loop. Rejects on an I/O error. */
  sync(): Promise<void> {
    const fd = this.walFd();
    return new Promise<void>((resolve, reject) => {
      fs.fdatasync(fd, (error) => (error === null ? resolve() : reject(error)));
    });
  }

  /** Releases the descriptor; call before the database closes (which deletes the WAL). */
  close(): void {
    this.closed = true;
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }

  private walFd(): number {
    if (this.closed) throw new Error(`the WAL of ${this.dbFile} is closed`);
    if (this.fd !== null && fs.fstatSync(this.fd).nlink > 0) return this.fd;
    if (this.fd !== null) fs.closeSync(this.fd);
    // Called after a commit, so the WAL exists; ENOENT here would be a bug worth crashing on.
    this.fd = fs.openSync(`${this.dbFile}-wal`, 'r');
    fsyncDir(dirname(this.dbFile));
    return this.fd;
  }
}
