/**
 * The peer admission rule, one test per rule: members send anything, removed
 * ids nothing, ids never seen only leader traffic; and which of the core's
 * membership and the persisted history decides a sender's standing.
 */
import { describe, expect, it } from 'vitest';
import type { ConfState, Message, NodeId } from '../../../src/raft/index.ts';
import { admitPeer, standingOf } from '../../../src/server/peer-admission.ts';
import type { MembershipEvent, PeerStanding } from '../../../src/server/peer-admission.ts';

const CONF: ConfState = { voters: ['n1', 'n2', 'n3'], learners: ['n5'] };

function standings(entries: Record<NodeId, PeerStanding>): (id: NodeId) => PeerStanding {
  return (id) => entries[id] ?? { kind: 'unknown' };
}

const known = standings({ n2: { kind: 'member' }, n4: { kind: 'removed', index: 1234 } });

function message(type: Message['type'], from: NodeId, to = 'n1'): Message {
  const envelope = { from, to, term: 3 };
  switch (type) {
    case 'preVote':
    case 'vote':
      return { ...envelope, type, lastLogIndex: 10, lastLogTerm: 3, leaderTransfer: false };
    case 'preVoteResp':
    case 'voteResp':
      return { ...envelope, type, reject: false };
    case 'append':
      return { ...envelope, type, prevIndex: 9, prevTerm: 3, entries: [], commit: 9 };
    case 'appendResp':
      return { ...envelope, type, reject: false, index: 10, hintIndex: 0, hintTerm: 0 };
    case 'heartbeat':
      return { ...envelope, type, commit: 9, readRound: 1 };
    case 'heartbeatResp':
      return { ...envelope, type, readRound: 1 };
    case 'snapshot':
      return { ...envelope, type, snapshot: { index: 50, term: 3, confState: CONF } };
    case 'timeoutNow':
      return { ...envelope, type, commit: 9 };
  }
}

const ALL_TYPES: Message['type'][] = ['preVote', 'vote', 'preVoteResp', 'voteResp', 'append', 'appendResp', 'heartbeat', 'heartbeatResp', 'snapshot', 'timeoutNow'];

describe('admitPeer', () => {
  it('takes every message type from a member of the current configuration', () => {
    for (const type of ALL_TYPES) expect(admitPeer('n2', [message(type, 'n2')], known)).toBeNull();
  });

  it('refuses everything from a removed id, saying when it was removed, even a stream with no messages yet', () => {
    for (const type of ALL_TYPES) {
      const refusal = admitPeer('n4', [message(type, 'n4')], known);
      expect(refusal?.removedAtIndex).toBe(1234);
      expect(refusal?.reason).toMatch(/^n4 was removed from the cluster at index 1234; .*AddMember.*--join/);
    }
    expect(admitPeer('n4', [], known)?.removedAtIndex).toBe(1234);
  });

  it('takes leader traffic (append, heartbeat, snapshot) from an id never seen: a newer member that leads, or the leader of a joining node', () => {
    for (const type of ['append', 'heartbeat', 'snapshot'] as const) expect(admitPeer('n9', [message(type, 'n9')], known)).toBeNull();
    expect(admitPeer('n9', [], known)).toBeNull();
  });

  it('refuses votes, pre-votes and everything else that is not leader traffic from an id never seen', () => {
    for (const type of ['preVote', 'vote', 'preVoteResp', 'voteResp', 'appendResp', 'heartbeatResp', 'timeoutNow'] as const) {
      const refusal = admitPeer('n9', [message('heartbeat', 'n9'), message(type, 'n9')], known);
      expect(refusal).toEqual({ reason: expect.stringMatching(new RegExp(`^n9 is not a member: .* ${type} messages`)) as unknown, removedAtIndex: null });
    }
  });

  it('refuses a batch in which a message claims another sender than the stream', () => {
    const refusal = admitPeer('n2', [message('heartbeat', 'n2'), message('vote', 'n3')], known);
    expect(refusal).toEqual({ reason: "a vote message from 'n3' arrived on the stream of 'n2'", removedAtIndex: null });
  });
});

describe('standingOf', () => {
  const removed = (index: number): MembershipEvent => ({ event: 'removed', index });
  const added = (index: number): MembershipEvent => ({ event: 'added', index });

  it('a voter or a learner of the configuration is a member; an id in neither, with no history, is unknown', () => {
    expect(standingOf('n1', CONF, 100, undefined)).toEqual({ kind: 'member' });
    expect(standingOf('n5', CONF, 100, undefined)).toEqual({ kind: 'member' });
    expect(standingOf('n9', CONF, 100, undefined)).toEqual({ kind: 'unknown' });
  });

  it('an id removed and not in the configuration is removed, at the index recorded', () => {
    expect(standingOf('n4', CONF, 100, removed(40))).toEqual({ kind: 'removed', index: 40 });
  });

  it('after a restart the recovered commit index may be behind a removal already applied: the history wins', () => {
    // n3 is still in the configuration the core rebuilt at commit 90, but its removal at 95 was applied before the restart.
    expect(standingOf('n3', CONF, 90, removed(95))).toEqual({ kind: 'removed', index: 95 });
  });

  it('an id added back after its removal is a member once the core committed the re-add, before the history records it', () => {
    expect(standingOf('n3', CONF, 120, removed(95))).toEqual({ kind: 'member' });
  });

  it('an addition applied before a restart counts even while the recovered configuration does not list it yet', () => {
    expect(standingOf('n6', CONF, 90, added(95))).toEqual({ kind: 'member' });
  });

  it('an id whose removal the core committed but the history has not recorded yet is no longer a member', () => {
    expect(standingOf('n6', CONF, 120, added(95))).toEqual({ kind: 'unknown' });
  });
});
