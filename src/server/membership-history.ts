/**
 * The last committed membership change applied for each id, kept in the data
 * dir (membership-history.json, next to members.json) so that a removed id
 * stays refused after a restart and after the log entry that removed it is
 * compacted away: a snapshot's configuration lists only current members.
 *
 * A file rather than a NodeStorage table: like the address book it is the
 * server's knowledge about peers, derived from committed entries (which stay
 * the authority), read once at start and written on the rare membership
 * change; it needs no schema version and an operator can read it. It is
 * written atomically and durably, so a crash leaves the old or the new one.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ConfChange, ConfState, NodeId } from '../raft/index.ts';
import { durableRename } from '../storage/index.ts';
import type { MembershipEvent } from './peer-admission.ts';

export const MEMBERSHIP_HISTORY_FILE = 'membership-history.json';

export class MembershipHistory {
  private readonly events = new Map<NodeId, MembershipEvent>();
  private readonly file: string;
  /** Ids this node last knew as members: a snapshot that no longer lists one means it was removed. */
  private readonly known = new Set<NodeId>();

  /** `conf`: the membership the node starts with (the core's, as of its recovered commit index). */
  constructor(dataDir: string, conf: ConfState) {
    this.file = join(dataDir, MEMBERSHIP_HISTORY_FILE);
    if (existsSync(this.file)) {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, Partial<MembershipEvent>>;
      for (const [id, { event, index }] of Object.entries(parsed)) {
        if ((event !== 'added' && event !== 'removed') || typeof index !== 'number' || !Number.isSafeInteger(index)) {
          throw new Error(`${this.file}: malformed entry for ${id}: ${JSON.stringify(parsed[id])}`);
        }
        this.events.set(id, { event, index });
      }
    }
    for (const id of [...conf.voters, ...conf.learners]) this.known.add(id);
    for (const [id, { event }] of this.events) {
      if (event === 'added') this.known.add(id);
      else this.known.delete(id);
    }
  }

  get(id: NodeId): MembershipEvent | undefined {
    return this.events.get(id);
  }

  /** A committed change applied at `index`. Replayed entries (after a restart) change nothing. */
  recordChange(change: ConfChange, index: number): void {
    if (change.type === 'promote') return;
    const event = change.type === 'addLearner' ? 'added' : 'removed';
    if (!this.set(change.nodeId, { event, index })) return;
    if (event === 'added') this.known.add(change.nodeId);
    else this.known.delete(change.nodeId);
    this.save();
  }

  /**
   * A snapshot from the leader replaced the state at `index`: members we knew
   * that it does not list were removed at or before `index`, by entries this
   * node will never see.
   */
  recordSnapshot(conf: ConfState, index: number): void {
    const members = new Set([...conf.voters, ...conf.learners]);
    let changed = false;
    for (const id of this.known) {
      if (!members.has(id)) changed = this.set(id, { event: 'removed', index }) || changed;
    }
    for (const id of members) {
      // Added back inside the snapshot.
      if (this.events.get(id)?.event === 'removed') changed = this.set(id, { event: 'added', index }) || changed;
    }
    this.known.clear();
    for (const id of members) this.known.add(id);
    if (changed) this.save();
  }

  /** Keeps the newer event; a removal already known keeps its (more precise) index. */
  private set(id: NodeId, event: MembershipEvent): boolean {
    const last = this.events.get(id);
    if (last !== undefined && (last.index >= event.index || last.event === event.event)) return false;
    this.events.set(id, event);
    return true;
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(Object.fromEntries(this.events), null, 2)}\n`);
    durableRename(tmp, this.file);
  }
}
