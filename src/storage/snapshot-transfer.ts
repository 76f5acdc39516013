/**
 * Moving a snapshot file between nodes as bytes: the leader reads it in
 * chunks, the follower writes the chunks to a temp file and, once the file is
 * complete, verifies all of it before moving it into place.
 */
import * as fsp from 'node:fs/promises';
import { durableRename, removeIfPresent } from './durable-fs.ts';
import { InvalidWriteError } from './errors.ts';
import { SnapshotFileReader } from './snapshot-file.ts';
import type { SnapshotExpectation } from './snapshot-file.ts';
import type { StoredSnapshot } from './types.ts';
import { isCount } from './validate.ts';

/** The default chunk: large enough to amortize a message, small enough for gRPC's default 4 MiB limit. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;

/**
 * The bytes of `path` from `fromOffset` on, in chunks of at most `chunkBytes`
 * (each a new buffer the consumer may keep). A resumed transfer passes the
 * offset the receiver has.
 */
export async function* readFileChunks(
  path: string,
  chunkBytes = DEFAULT_CHUNK_BYTES,
  fromOffset = 0,
): AsyncGenerator<Uint8Array, void, undefined> {
  if (!isCount(chunkBytes) || chunkBytes === 0 || !isCount(fromOffset)) {
    throw new RangeError(`chunkBytes must be a positive integer and fromOffset a non-negative one (got ${chunkBytes}, ${fromOffset})`);
  }
  const handle = await fsp.open(path, 'r');
  try {
    let position = fromOffset;
    for (;;) {
      const buffer = Buffer.allocUnsafe(chunkBytes);
      const { bytesRead } = await handle.read(buffer, 0, chunkBytes, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/**
 * Receives one snapshot file. Chunks must arrive in order (`offset` is
 * checked, so a lost or repeated chunk is an error rather than a corrupt
 * file). finish() fsyncs, verifies every row, and only then renames the file
 * to its final name; until then nothing in the data dir has changed.
 */
export class SnapshotReceiver {
  private received = 0;
  private state: 'open' | 'finished' | 'aborted' = 'open';

  private constructor(
    private readonly handle: fsp.FileHandle,
    private readonly tmpPath: string,
    private readonly finalPath: string,
    private readonly expect: SnapshotExpectation,
  ) {}

  /** Starts a transfer into `tmpPath` (which must not exist) that will end up at `finalPath`. */
  static async start(tmpPath: string, finalPath: string, expect: SnapshotExpectation): Promise<SnapshotReceiver> {
    const handle = await fsp.open(tmpPath, 'wx');
    return new SnapshotReceiver(handle, tmpPath, finalPath, expect);
  }

  get bytesReceived(): number {
    return this.received;
  }

  async append(chunk: Uint8Array, offset: number): Promise<void> {
    this.assertOpen();
    if (offset !== this.received) {
      throw new InvalidWriteError(`snapshot chunk at offset ${offset}, but ${this.received} bytes have been received: a chunk was lost or repeated`);
    }
    let written = 0;
    while (written < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, written, chunk.length - written, offset + written);
      written += bytesWritten;
    }
    this.received += chunk.length;
  }

  /**
   * Completes the transfer: the file is made durable and verified (throwing
   * CorruptDataError, ForeignClusterError or SchemaTooNewError and deleting
   * it if it fails), then moved to its final path. The result goes to
   * NodeStorage.persist() once the Raft core installs the snapshot.
   */
  async finish(): Promise<StoredSnapshot> {
    this.assertOpen();
    this.state = 'finished';
    let moved = false;
    try {
      await this.handle.sync();
      await this.handle.close();
      const reader = SnapshotFileReader.open(this.tmpPath, this.expect);
      try {
        await reader.verify();
      } finally {
        reader.close();
      }
      durableRename(this.tmpPath, this.finalPath);
      moved = true;
      const { index, term, confState, logTimeMs } = reader.info;
      return { index, term, confState, logTimeMs, path: this.finalPath, sizeBytes: this.received };
    } finally {
      if (!moved) removeIfPresent(this.tmpPath);
    }
  }

  /** Abandons the transfer and deletes what was received. */
  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'aborted';
    await this.handle.close();
    removeIfPresent(this.tmpPath);
  }

  private assertOpen(): void {
    if (this.state !== 'open') throw new InvalidWriteError(`snapshot transfer into ${this.tmpPath} is already ${this.state}`);
  }
}
