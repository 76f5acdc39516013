/** The one-row hard_state table: term, vote and commit, checksummed. */
import type { HardState } from '../raft/types.ts';
import { FieldEncoder } from './checksum.ts';
import { CorruptDataError } from './errors.ts';
import type { Db } from './sqlite.ts';
import { isCount } from './validate.ts';

export const INITIAL_HARD_STATE: HardState = { term: 0, vote: '', commit: 0 };

export class HardStateStore {
  private readonly scratch = new FieldEncoder();
  private readonly upsert;
  private readonly select;

  constructor(
    db: Db,
    private readonly file: string,
  ) {
    this.upsert = db.prepare<[number, string, number, number]>(
      'INSERT OR REPLACE INTO hard_state (id, term, vote, commit_index, checksum) VALUES (1, ?, ?, ?, ?)',
    );
    this.select = db.prepare<[], [unknown, unknown, unknown, unknown]>(
      'SELECT term, vote, commit_index, checksum FROM hard_state WHERE id = 1',
    );
    this.select.raw();
  }

  write(state: HardState): void {
    this.upsert.run(state.term, state.vote, state.commit, this.checksum(state));
  }

  /** The stored hard state; throws CorruptDataError when it is missing or fails its checksum. */
  read(): HardState {
    const row = this.select.get();
    if (row === undefined) throw new CorruptDataError(this.file, 'the hard_state row (term, vote, commit) is missing');
    const [term, vote, commit, checksum] = row;
    if (!isCount(term) || typeof vote !== 'string' || !isCount(commit)) {
      throw new CorruptDataError(this.file, `the hard_state row has invalid values (term ${String(term)}, commit ${String(commit)})`);
    }
    const state: HardState = { term, vote, commit };
    const expected = this.checksum(state);
    if (checksum !== expected) {
      throw new CorruptDataError(
        this.file,
        `the hard_state row (term ${term}, vote '${vote}', commit ${commit}) fails its checksum: stored ${String(checksum)}, computed ${expected}`,
      );
    }
    return state;
  }

  private checksum(state: HardState): number {
    return this.scratch.reset().u53(state.term).u53(state.commit).string(state.vote).crc();
  }
}
