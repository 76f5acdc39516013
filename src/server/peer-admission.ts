/**
 * Who may send Raft traffic to this node (issue 7: a removed member cannot
 * disrupt the cluster). Pure rules, no I/O: node.ts feeds them the core's
 * membership and the persisted MembershipHistory, and the transport asks
 * before it hands a batch to the Raft loop.
 *
 * - a member of the current configuration (voter or learner): anything;
 * - an id removed by a committed change (and not added back since): nothing,
 *   ever (the history survives restarts and log compaction);
 * - an id never seen: leader traffic only (append, heartbeat, snapshot), so
 *   a follower that has not yet applied an AddMember still follows the new
 *   member once it leads, and a node started with --join (no configuration
 *   yet) follows its leader; never a vote or pre-vote, nor anything else.
 */
import type { ConfState, Message, NodeId } from '../raft/index.ts';

/** What this node knows of a sender. */
export type PeerStanding =
  | { readonly kind: 'member' }
  | { readonly kind: 'removed'; readonly index: number }
  | { readonly kind: 'unknown' };

/** The last committed membership change this node applied for an id (see MembershipHistory). */
export interface MembershipEvent {
  readonly event: 'added' | 'removed';
  /** Log index of the change (for a removal learned from a snapshot: that snapshot's index). */
  readonly index: number;
}

/** Why traffic was refused; `removedAtIndex` is set when the sender was removed from the cluster. */
export interface PeerRefusal {
  readonly reason: string;
  readonly removedAtIndex: number | null;
}

/** Messages that only a leader sends, and that a node must take from a leader it does not know yet. */
function isLeaderTraffic(m: Message): boolean {
  return m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot';
}

function isMemberOf(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id);
}

/**
 * The standing of `id`, from the core's membership (as of its commit index)
 * and the last change the history recorded for it. The newer one wins: the
 * core's view is newer unless the node restarted and the commit index it
 * recovered is behind a change it had already applied (commit-only hard
 * states are not synced), and the history is newer only in that case.
 */
export function standingOf(id: NodeId, conf: ConfState, commitIndex: number, last: MembershipEvent | undefined): PeerStanding {
  if (last !== undefined && last.index > commitIndex) {
    return last.event === 'removed' ? { kind: 'removed', index: last.index } : { kind: 'member' };
  }
  if (isMemberOf(conf, id)) return { kind: 'member' };
  if (last?.event === 'removed') return { kind: 'removed', index: last.index };
  return { kind: 'unknown' };
}

/**
 * Whether this node takes `messages` from the stream of `from` (the id the
 * stream claims, which TLS checks against the caller's certificate): null to
 * take them, else why not. With no messages, only a removed sender is
 * refused (the check made when a stream opens).
 */
export function admitPeer(from: NodeId, messages: readonly Message[], standing: (id: NodeId) => PeerStanding): PeerRefusal | null {
  for (const m of messages) {
    // Each message names its sender: one peer must not speak for another.
    if (m.from !== from) return { reason: `a ${m.type} message from '${m.from}' arrived on the stream of '${from}'`, removedAtIndex: null };
  }
  const known = standing(from);
  switch (known.kind) {
    case 'member':
      return null;
    case 'removed':
      return {
        reason: `${from} was removed from the cluster at index ${known.index}; to bring it back, add it again (AddMember) and start it with an empty data dir and --join`,
        removedAtIndex: known.index,
      };
    case 'unknown': {
      const refused = messages.find((m) => !isLeaderTraffic(m));
      if (refused === undefined) return null;
      return {
        reason: `${from} is not a member: only members of the current configuration may send ${refused.type} messages (a node not known here may only lead)`,
        removedAtIndex: null,
      };
    }
  }
}
