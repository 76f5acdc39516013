/** Small helpers shared by the two kinds of SQLite files (node database, snapshot file). */
import Database from 'better-sqlite3';
import { CorruptDataError } from './errors.ts';

export type Db = Database.Database;
export type Statement<Params extends unknown[]> = Database.Statement<Params>;

/** `PRAGMA application_id` values: `file(1)` and the sqlite3 shell's `.dbinfo` show what a file is. */
export const NODE_DB_APPLICATION_ID = 0x716b764e; // 'qkvN'
export const SNAPSHOT_APPLICATION_ID = 0x716b7653; // 'qkvS'

/** The SQLite result code of an error thrown by better-sqlite3, or null for any other error. */
export function sqliteCode(error: unknown): string | null {
  return error instanceof Database.SqliteError ? error.code : null;
}

/** SQLite's own verdict that a file is damaged or not a database at all. */
export function isSqliteCorruption(error: unknown): boolean {
  const code = sqliteCode(error);
  return code !== null && (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB');
}

/** Runs `fn`, turning SQLite's corruption errors into a CorruptDataError that names `file`. */
export function withCorruptionMapped<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (isSqliteCorruption(error)) {
      throw new CorruptDataError(file, `SQLite reports the file is damaged (${(error as Error).message})`, { cause: error });
    }
    throw error;
  }
}

/** The value of a single-valued pragma, e.g. `pragmaValue(db, 'application_id')`. */
export function pragmaValue(db: Db, pragma: string): unknown {
  return db.pragma(pragma, { simple: true });
}

/** `PRAGMA quick_check`: SQLite's structural check of every b-tree page, 'ok' or the first problems. */
export function quickCheck(db: Db): string | null {
  const rows = db.prepare('PRAGMA quick_check(5)').pluck().all() as string[];
  return rows.length === 1 && rows[0] === 'ok' ? null : rows.join('; ');
}
