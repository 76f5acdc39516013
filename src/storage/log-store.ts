/**
 * The log table. Each row carries a CRC-32 over (index, term, type, data),
 * verified whenever the row is read back. Transactions are the caller's: one
 * Ready's writes must commit together.
 */
import type { Entry, EntryType } from '../raft/types.ts';
import { FieldEncoder, crc32 } from './checksum.ts';
import { CorruptDataError } from './errors.ts';
import type { Db } from './sqlite.ts';
import { isCount } from './validate.ts';

const TYPE_CODES: Readonly<Record<EntryType, number>> = { normal: 0, noop: 1, config: 2 };

function isEntryType(value: unknown): value is EntryType {
  return typeof value === 'string' && Object.hasOwn(TYPE_CODES, value);
}

/** Index and term of the first and last stored entries. */
export interface LogBounds {
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
}

export class LogStore {
  private readonly scratch = new FieldEncoder();
  private readonly insert;
  private readonly deleteFromStmt;
  private readonly deleteThroughStmt;
  private readonly termStmt;
  private readonly boundsStmt;
  private readonly allStmt;

  constructor(
    db: Db,
    private readonly file: string,
  ) {
    this.insert = db.prepare<[number, number, string, Uint8Array, number]>(
      'INSERT INTO log (idx, term, type, data, checksum) VALUES (?, ?, ?, ?, ?)',
    );
    this.deleteFromStmt = db.prepare<[number]>('DELETE FROM log WHERE idx >= ?');
    this.deleteThroughStmt = db.prepare<[number]>('DELETE FROM log WHERE idx <= ?');
    this.termStmt = db.prepare<[number], number>('SELECT term FROM log WHERE idx = ?').pluck();
    this.boundsStmt = db
      .prepare<[], [number | null, number | null, number | null]>(
        'SELECT min(idx), max(idx), (SELECT term FROM log ORDER BY idx DESC LIMIT 1) FROM log',
      )
      .raw();
    this.allStmt = db.prepare<[], [unknown, unknown, unknown, unknown, unknown]>(
      'SELECT idx, term, type, data, checksum FROM log ORDER BY idx',
    );
    this.allStmt.raw();
  }

  /**
   * Stores contiguous `entries`, first deleting every stored entry at or after
   * the first one's index: a follower overwriting a conflicting suffix.
   */
  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    // An empty range costs one b-tree seek, nothing next to the commit's fsync.
    this.deleteFromStmt.run(first.index);
    for (const entry of entries) {
      this.insert.run(entry.index, entry.term, entry.type, entry.data, this.checksum(entry.index, entry.term, entry.type, entry.data));
    }
  }

  deleteFrom(index: number): void {
    this.deleteFromStmt.run(index);
  }

  deleteThrough(index: number): void {
    this.deleteThroughStmt.run(index);
  }

  /** The stored term at `index`, or null when there is no entry there. */
  termAt(index: number): number | null {
    return this.termStmt.get(index) ?? null;
  }

  bounds(): LogBounds | null {
    const row = this.boundsStmt.get();
    if (row === undefined) return null;
    const [firstIndex, lastIndex, lastTerm] = row;
    if (firstIndex === null || lastIndex === null || lastTerm === null) return null;
    return { firstIndex, lastIndex, lastTerm };
  }

  /**
   * Every stored entry in index order, each checked against its checksum, the
   * indexes checked contiguous and the terms non-decreasing.
   */
  readAll(): Entry[] {
    const entries: Entry[] = [];
    let previous: Entry | undefined;
    for (const [index, term, type, data, checksum] of this.allStmt.iterate()) {
      if (!isCount(index) || !isCount(term) || term === 0 || !isEntryType(type) || !(data instanceof Uint8Array)) {
        throw new CorruptDataError(
          this.file,
          `log entry ${String(index)} has invalid fields (term ${String(term)}, type ${String(type)}, data ${typeof data})`,
        );
      }
      const expected = this.checksum(index, term, type, data);
      if (checksum !== expected) {
        throw new CorruptDataError(
          this.file,
          `log entry ${index} (term ${term}) fails its checksum: stored ${String(checksum)}, computed ${expected}`,
        );
      }
      if (previous !== undefined) {
        if (index !== previous.index + 1) {
          throw new CorruptDataError(this.file, `the log has a gap: entry ${previous.index} is followed by entry ${index}`);
        }
        if (term < previous.term) {
          throw new CorruptDataError(
            this.file,
            `log terms go backwards: entry ${previous.index} has term ${previous.term}, entry ${index} has term ${term}`,
          );
        }
      }
      previous = { index, term, type, data };
      entries.push(previous);
    }
    return entries;
  }

  private checksum(index: number, term: number, type: EntryType, data: Uint8Array): number {
    const header = this.scratch.reset().u53(index).u53(term).u8(TYPE_CODES[type]).u32(data.length).crc();
    return crc32(data, header);
  }
}
