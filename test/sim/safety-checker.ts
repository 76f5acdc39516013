import type { Entry, Raft } from '../../src/raft/index.ts';

/** A safety property the simulation saw broken. */
export class SafetyViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetyViolation';
  }
}

function entryKey(entry: Entry): string {
  return `${entry.term}/${entry.type}/${Buffer.from(entry.data).toString('base64')}`;
}

/**
 * Raft's safety properties (figure 3 of the paper), checked as the simulation runs:
 * - Election Safety: at most one leader per term;
 * - State Machine Safety: every node applies the same entry at each index;
 * - Leader Completeness: a new leader holds every entry committed before it;
 * - committed entries never vanish, even across crashes (the same check, at each election);
 * - replicas that applied the same prefix have the same state.
 */
export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, string>();
  /** index -> the entry applied there by whoever applied it first. */
  private readonly applied = new Map<number, { key: string; term: number; node: string }>();
  private maxApplied = 0;
  /**
   * For each committed index, an upper bound on the term in which it was committed:
   * the lowest term any node was in when it first saw the index committed.
   */
  private readonly committedByTerm: number[] = [];
  private readonly digestAt = new Map<number, { digest: string; node: string }>();
  leadersElected = 0;

  onLeader(node: string, term: number): void {
    const existing = this.leaderOfTerm.get(term);
    if (existing !== undefined && existing !== node) {
      throw new SafetyViolation(`election safety: ${existing} and ${node} are both leader in term ${term}`);
    }
    if (existing === undefined) this.leadersElected++;
    this.leaderOfTerm.set(term, node);
  }

  onApply(node: string, entry: Entry): void {
    const key = entryKey(entry);
    const first = this.applied.get(entry.index);
    if (first === undefined) {
      this.applied.set(entry.index, { key, term: entry.term, node });
      this.maxApplied = Math.max(this.maxApplied, entry.index);
    } else if (first.key !== key) {
      throw new SafetyViolation(
        `state machine safety: at index ${entry.index} ${first.node} applied an entry of term ${first.term} but ${node} applied one of term ${entry.term}`,
      );
    }
  }

  onDigest(node: string, index: number, digest: string): void {
    const first = this.digestAt.get(index);
    if (first === undefined) this.digestAt.set(index, { digest, node });
    else if (first.digest !== digest) {
      throw new SafetyViolation(`state divergence: at applied index ${index} ${first.node} and ${node} have different state`);
    }
  }

  /** A node's durable hard state says `commit` is committed while it is in `term`. */
  onCommit(commit: number, term: number): void {
    // The bounds never decrease with the index, so only a suffix ending at `commit` can change.
    for (let index = commit; index >= 1; index--) {
      const known = this.committedByTerm[index];
      if (known !== undefined && known <= term) break;
      this.committedByTerm[index] = term;
    }
  }

  /**
   * Leader completeness: "if a log entry is committed in a given term, then that entry
   * will be present in the logs of the leaders for all higher-numbered terms."
   * Called the moment a node becomes leader.
   */
  checkLeaderLog(node: string, raft: Raft): void {
    const status = raft.status();
    for (let index = status.firstIndex; index < this.committedByTerm.length; index++) {
      const committedIn = this.committedByTerm[index];
      if (committedIn === undefined || committedIn >= status.term) continue;
      const committed = this.applied.get(index);
      const entry = raft.entry(index);
      if (entry === undefined) {
        throw new SafetyViolation(`leader completeness: ${node} leads term ${status.term} with log ending at ${status.lastIndex}, but ${index} was committed in term ${committedIn}`);
      }
      if (committed === undefined) continue;
      if (entryKey(entry) !== committed.key) {
        throw new SafetyViolation(
          `leader completeness: ${node} leads term ${status.term} but holds a term-${entry.term} entry at ${index} where a term-${committed.term} entry was committed`,
        );
      }
    }
  }

  get highestApplied(): number {
    return this.maxApplied;
  }
}
