/**
 * The snapshots table of the node database: which snapshot files exist and
 * what they hold. A file is recorded only after it is durably in place, so
 * a recorded file that is missing or different means damage.
 */
import type { ConfState } from '../raft/types.ts';
import { FieldEncoder } from './checksum.ts';
import { CorruptDataError } from './errors.ts';
import type { Db } from './sqlite.ts';
import { confStateText, isCount, parseConfState } from './validate.ts';

export interface SnapshotRecord {
  /** File name inside the snapshots directory. */
  readonly file: string;
  readonly index: number;
  readonly term: number;
  readonly logTimeMs: number;
  readonly confState: ConfState;
  readonly sizeBytes: number;
}

export class SnapshotCatalog {
  private readonly scratch = new FieldEncoder();
  private readonly insertStmt;
  private readonly deleteStmt;
  private readonly listStmt;

  constructor(
    db: Db,
    private readonly dbFile: string,
  ) {
    this.insertStmt = db.prepare<[string, number, number, number, string, number, number]>(
      'INSERT INTO snapshots (file, idx, term, log_time_ms, conf_state, size_bytes, checksum) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.deleteStmt = db.prepare<[string]>('DELETE FROM snapshots WHERE file = ?');
    this.listStmt = db
      .prepare<[], [unknown, unknown, unknown, unknown, unknown, unknown, unknown]>(
        'SELECT file, idx, term, log_time_ms, conf_state, size_bytes, checksum FROM snapshots ORDER BY idx DESC, rowid DESC',
      )
      .raw();
  }

  insert(record: SnapshotRecord): void {
    const conf = confStateText(record.confState);
    this.insertStmt.run(record.file, record.index, record.term, record.logTimeMs, conf, record.sizeBytes, this.checksum(record, conf));
  }

  remove(file: string): void {
    this.deleteStmt.run(file);
  }

  /** Every record, newest (highest index) first, each checked against its checksum. */
  list(): SnapshotRecord[] {
    return this.listStmt.all().map(([file, index, term, logTimeMs, conf, sizeBytes, checksum]) => {
      const confState = typeof conf === 'string' ? parseConfState(conf) : null;
      if (
        typeof file !== 'string' ||
        !isCount(index) ||
        !isCount(term) ||
        !isCount(logTimeMs) ||
        !isCount(sizeBytes) ||
        confState === null
      ) {
        throw new CorruptDataError(this.dbFile, `the snapshots row for '${String(file)}' has invalid values`);
      }
      const record: SnapshotRecord = { file, index, term, logTimeMs, confState, sizeBytes };
      const expected = this.checksum(record, conf as string);
      if (checksum !== expected) {
        throw new CorruptDataError(
          this.dbFile,
          `the snapshots row for '${file}' (index ${index}) fails its checksum: stored ${String(checksum)}, computed ${expected}`,
        );
      }
      return record;
    });
  }

  private checksum(record: SnapshotRecord, confText: string): number {
    return this.scratch
      .reset()
      .u53(record.index)
      .u53(record.term)
      .u53(record.logTimeMs)
      .u53(record.sizeBytes)
      .string(record.file)
      .string(confText)
      .crc();
  }
}
