/**
 * The extensions from Ongaro's thesis ("Consensus: Bridging Theory and
 * Practice") and etcd raft that the core implements, one rule per test.
 */
import { describe, expect, it } from 'vitest';
import { ConfChangeError, ProposalDroppedError, RaftInvariantError, TransferError, isLeaderMessage } from '../../../src/raft/index.ts';
import type { NodeId } from '../../../src/raft/index.ts';
import { TestCluster, data, drain, newJoiner, newRaft, ofType, outbox, restartRaft } from './harness.ts';

describe('§9.6 PreVote', () => {
  it('"a server first asks whether it could win an election; only if a majority would vote for it does it increment its term"', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    for (let i = 0; i < 20 && r.currentRole === 'follower'; i++) r.tick();
    expect(r.currentRole).toBe('preCandidate');
    expect(r.currentTerm).toBe(1);
    const preVotes = ofType(outbox(r), 'preVote');
    expect(preVotes.map((m) => m.term)).toEqual([2, 2]);
    r.step({ type: 'preVoteResp', from: 'b', to: 'a', term: 2, reject: false });
    expect(r.currentRole).toBe('candidate');
    expect(r.currentTerm).toBe(2);
  });

  it('a campaign asks a voter again once it is reachable, instead of waiting a whole election timeout to campaign anew', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    for (let i = 0; i < 20 && r.currentRole === 'follower'; i++) r.tick();
    expect(r.currentRole).toBe('preCandidate');
    outbox(r); // the pre-votes, lost: b and c were not listening yet
    r.reportReachable('b');
    const again = ofType(outbox(r), 'preVote');
    expect(again).toEqual([{ type: 'preVote', from: 'a', to: 'b', term: 2, lastLogIndex: 1, lastLogTerm: 1, leaderTransfer: false }]);
    r.step({ type: 'preVoteResp', from: 'b', to: 'a', term: 2, reject: false });
    expect(r.currentRole).toBe('candidate');
    outbox(r);
    r.step({ type: 'voteResp', from: 'b', to: 'a', term: 2, reject: true });
    // As a candidate: the vote request, at the term it took; not to b, which has answered this campaign.
    r.reportReachable('c');
    r.reportReachable('b');
    expect(ofType(outbox(r), 'vote')).toEqual([{ type: 'vote', from: 'a', to: 'c', term: 2, lastLogIndex: 1, lastLogTerm: 1, leaderTransfer: false }]);
    r.step({ type: 'voteResp', from: 'c', to: 'a', term: 2, reject: false });
    expect(r.currentRole).toBe('leader');
  });

  it('a leadership transfer\'s request, asked again, still says it is one', () => {
    const b = newRaft('b', ['a', 'b', 'c']);
    b.step({ type: 'timeoutNow', from: 'a', to: 'b', term: 1, commit: 1 });
    expect(b.currentRole).toBe('candidate');
    outbox(b);
    b.reportReachable('c');
    expect(ofType(outbox(b), 'vote')).toMatchObject([{ to: 'c', term: 2, leaderTransfer: true }]);
  });

  it('reachability asks nothing of a follower or a leader, and nothing for a member that is not a voter', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    for (const id of ['a', 'b'] as const) {
      const node = cluster.node(id);
      outbox(node);
      node.reportReachable(id === 'a' ? 'b' : 'a');
      expect(outbox(node)).toEqual([]);
    }
    const lone = newRaft('x', ['x', 'y', 'z']);
    for (let i = 0; i < 20 && lone.currentRole === 'follower'; i++) lone.tick();
    outbox(lone);
    lone.reportReachable('x');
    lone.reportReachable('not-a-member');
    expect(outbox(lone)).toEqual([]);
  });

  it('a partitioned server that rejoins does not disrupt the cluster: its term stays put while it is cut off', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const term = cluster.node('a').currentTerm;
    cluster.isolate('c');
    cluster.tickAll(100);
    expect(cluster.node('c').currentTerm).toBe(term);
    cluster.healAll();
    cluster.tickAll(5);
    expect(cluster.node('a').currentRole).toBe('leader');
    expect(cluster.node('a').currentTerm).toBe(term);
  });

  it('a pre-vote does not change the voter\'s term or vote', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    r.step({ type: 'preVote', from: 'b', to: 'a', term: 7, lastLogIndex: 1, lastLogTerm: 1, leaderTransfer: false });
    expect(ofType(outbox(r), 'preVoteResp')[0]).toMatchObject({ reject: false, term: 7 });
    expect(r.currentTerm).toBe(1);
    expect(r.status().vote).toBe('');
  });
});

describe('§6.2 CheckQuorum and the leader lease (§4.2.3)', () => {
  it('"a leader steps down if an election timeout elapses without a successful round of heartbeats to a majority"', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.isolate('a');
    for (let i = 0; i < 25; i++) {
      cluster.node('a').tick();
      cluster.settle();
    }
    expect(cluster.node('a').currentRole).toBe('follower');
  });

  it('"if a server receives a RequestVote request within the minimum election timeout of hearing from a current leader, it does not update its term or grant its vote"', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const b = cluster.node('b');
    const term = b.currentTerm;
    b.step({ type: 'vote', from: 'c', to: 'b', term: term + 1, lastLogIndex: 99, lastLogTerm: 99, leaderTransfer: false });
    expect(b.currentTerm).toBe(term);
    expect(outbox(b)).toEqual([]);
  });
});

describe('§6.4 linearizable reads with ReadIndex', () => {
  it('"the leader ... send[s] heartbeats to a majority ... before it can answer a read"', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const a = cluster.node('a');
    a.readIndex(1);
    const rd = drain(a);
    expect(rd?.readStates).toEqual([]);
    const heartbeats = ofType(rd?.messages ?? [], 'heartbeat');
    expect(heartbeats.length).toBe(2);
    a.step({ type: 'heartbeatResp', from: 'b', to: 'a', term: a.currentTerm, readRound: heartbeats[0]!.readRound });
    expect(drain(a)?.readStates).toEqual([{ requestId: 1, index: a.status().commit }]);
  });

  it('a deposed leader never confirms a read', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.isolate('a');
    const a = cluster.node('a');
    a.readIndex(7);
    for (let i = 0; i < 25; i++) {
      a.tick();
      cluster.settle();
    }
    expect(a.currentRole).toBe('follower');
    expect(cluster.delivered.some((m) => m.type === 'heartbeatResp' && m.to === 'a')).toBe(false);
  });

  it('reads waiting when leadership is lost are reported aborted, so clients retry elsewhere', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const a = cluster.node('a');
    a.readIndex(7);
    outbox(a);
    a.step({ type: 'appendResp', from: 'b', to: 'a', term: a.currentTerm + 1, reject: false, index: 0, hintIndex: 0, hintTerm: 0 });
    expect(drain(a)?.abortedReads).toEqual([7]);
  });

  it('"The leader ... has to commit an entry from its term before it can trust its commit index": reads wait for the no-op', () => {
    const a = newRaft('a', ['a', 'b', 'c'], { preVote: false });
    for (let i = 0; i < 20 && a.currentRole !== 'candidate'; i++) a.tick();
    a.step({ type: 'voteResp', from: 'b', to: 'a', term: a.currentTerm, reject: false });
    expect(a.currentRole).toBe('leader');
    outbox(a);
    a.readIndex(1);
    expect(ofType(outbox(a), 'heartbeat')).toEqual([]);
    const noop = a.status().lastIndex;
    a.step({ type: 'appendResp', from: 'b', to: 'a', term: a.currentTerm, reject: false, index: noop, hintIndex: 0, hintTerm: 0 });
    const heartbeats = ofType(outbox(a), 'heartbeat');
    expect(heartbeats.length).toBe(2);
    a.step({ type: 'heartbeatResp', from: 'b', to: 'a', term: a.currentTerm, readRound: heartbeats[0]!.readRound });
    expect(drain(a)?.readStates).toEqual([{ requestId: 1, index: noop }]);
  });

  it('one heartbeat round confirms a whole batch of reads', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const a = cluster.node('a');
    a.readIndex(1); // starts round 1
    for (let id = 2; id <= 100; id++) a.readIndex(id); // wait for round 2
    const confirmed: number[] = [];
    let heartbeats = 0;
    for (let i = 0; i < 10 && confirmed.length < 100; i++) {
      const rd = drain(a, cluster.disks.get('a'));
      confirmed.push(...(rd?.readStates ?? []).map((s) => s.requestId));
      heartbeats += ofType(rd?.messages ?? [], 'heartbeat').length;
      for (const m of rd?.messages ?? []) cluster.node(m.to).step(m);
      for (const id of ['b', 'c']) for (const m of outbox(cluster.node(id))) a.step(m);
    }
    expect(confirmed.sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(heartbeats).toBe(4); // two rounds to two followers, for 100 reads
  });

  it('a single-voter cluster answers reads at once', () => {
    const solo = newRaft('a', ['a']);
    for (let i = 0; i < 30 && solo.currentRole !== 'leader'; i++) {
      solo.tick();
      drain(solo);
    }
    solo.readIndex(5);
    expect(drain(solo)?.readStates).toEqual([{ requestId: 5, index: solo.status().commit }]);
  });
});

describe('pipelined replication', () => {
  it('a follower in replicate state gets up to maxInflightMessages appends without waiting, then the leader pauses', () => {
    const cluster = new TestCluster(['a', 'b', 'c'], { maxInflightMessages: 3, maxEntriesPerMessage: 1 });
    cluster.elect('a');
    const a = cluster.node('a');
    for (let i = 0; i < 10; i++) a.propose([data(`x${i}`)]);
    const appendsToB = ofType(outbox(a), 'append').filter((m) => m.to === 'b');
    expect(appendsToB.length).toBe(3);
    expect(a.status().peers.find((p) => p.id === 'b')?.state).toBe('replicate');
  });

  it('a lost append is recovered: the next heartbeat response makes the leader resend', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.cutOneWay('a', 'b');
    cluster.propose('a', 'x');
    cluster.healAll();
    cluster.tickAll(2);
    expect(cluster.node('b').status().lastIndex).toBe(cluster.node('a').status().lastIndex);
    expect(cluster.appliedTexts('b')).toEqual(['x']);
  });
});

describe('§5 of the thesis: log compaction and InstallSnapshot', () => {
  it('"the leader must occasionally send snapshots to followers that lag behind": a follower past the compacted log gets one', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.isolate('c');
    for (let i = 0; i < 20; i++) cluster.propose('a', `x${i}`);
    const a = cluster.node('a');
    const snapshot = a.compact(a.status().applied, 0);
    expect(a.status().firstIndex).toBe(snapshot.index + 1);
    cluster.healAll();
    cluster.tickAll(1);
    const snapshots = cluster.delivered.filter((m) => m.type === 'snapshot' && m.to === 'c');
    expect(snapshots.length).toBe(1);
    expect(cluster.node('c').status().snapshotIndex).toBe(snapshot.index);
    // The snapshot carries the membership, so the follower knows its peers without the log.
    expect(cluster.node('c').membership.voters).toEqual(['a', 'b', 'c']);
    cluster.propose('a', 'after');
    cluster.tickAll(1);
    expect(cluster.node('c').status().commit).toBe(a.status().commit);
  });

  it('compaction keeps a trailing window of entries for followers that are a little behind', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    for (let i = 0; i < 20; i++) cluster.propose('a', `x${i}`);
    const a = cluster.node('a');
    const applied = a.status().applied;
    a.compact(applied, 5);
    expect(a.status().firstIndex).toBe(applied - 4);
    expect(a.status().snapshotIndex).toBe(applied);
  });

  it('a snapshot cannot be taken past what is applied', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const a = cluster.node('a');
    expect(() => a.compact(a.status().applied + 1, 0)).toThrow(/only \d+ is applied/);
  });
});

describe('§4 membership changes (learners, one at a time)', () => {
  it('a learner receives the log but neither votes nor counts toward commit', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.node('a').proposeConfChange({ type: 'addLearner', nodeId: 'd', context: '' });
    cluster.add('d', newJoiner('d')); // empty: it will be sent a snapshot
    cluster.settle();
    cluster.tickAll(2);
    expect(cluster.node('a').membership).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    expect(cluster.node('d').membership.learners).toEqual(['d']);
    cluster.propose('a', 'x');
    cluster.tickAll(1);
    expect(cluster.appliedTexts('d')).toEqual(['x']);
    // With b and c gone, a and the learner d are not a quorum.
    cluster.isolate('b');
    cluster.isolate('c');
    cluster.propose('a', 'y');
    expect(cluster.node('a').status().commit).toBeLessThan(cluster.node('a').status().lastIndex);
    // A learner never campaigns.
    cluster.isolate('d');
    cluster.tick('d', 100);
    expect(cluster.node('d').currentRole).toBe('follower');
  });

  it('"add learner, catch up, promote": a promoted learner votes and counts', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.node('a').proposeConfChange({ type: 'addLearner', nodeId: 'd', context: '' });
    cluster.add('d', newJoiner('d')); // empty: it will be sent a snapshot
    cluster.tickAll(2);
    cluster.node('a').proposeConfChange({ type: 'promote', nodeId: 'd', context: '' });
    cluster.tickAll(2);
    expect(cluster.node('a').membership.voters).toEqual(['a', 'b', 'c', 'd']);
    expect(cluster.node('d').membership.voters).toContain('d');
    cluster.isolate('b');
    cluster.isolate('c');
    cluster.propose('a', 'needs d');
    expect(cluster.node('a').status().commit).toBeLessThan(cluster.node('a').status().lastIndex);
  });

  it('a learner that has not caught up cannot be promoted', () => {
    const cluster = new TestCluster(['a', 'b', 'c'], { maxPromoteLagEntries: 5 });
    cluster.elect('a');
    cluster.node('a').proposeConfChange({ type: 'addLearner', nodeId: 'd', context: '' });
    cluster.settle();
    for (let i = 0; i < 10; i++) cluster.propose('a', `x${i}`);
    expect(() => cluster.node('a').proposeConfChange({ type: 'promote', nodeId: 'd', context: '' })).toThrow(/entries behind/);
  });

  it('"only one change at a time": a second change waits until the first commits', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.isolate('b');
    cluster.isolate('c');
    cluster.node('a').proposeConfChange({ type: 'addLearner', nodeId: 'd', context: '' });
    expect(() => cluster.node('a').proposeConfChange({ type: 'addLearner', nodeId: 'e', context: '' })).toThrow(ConfChangeError);
  });

  it('no change before the leader has committed an entry of its term (the single-server-change bug fix)', () => {
    const a = newRaft('a', ['a', 'b', 'c'], { preVote: false });
    for (let i = 0; i < 20 && a.currentRole !== 'candidate'; i++) a.tick();
    a.step({ type: 'voteResp', from: 'b', to: 'a', term: a.currentTerm, reject: false });
    expect(a.currentRole).toBe('leader');
    expect(() => a.proposeConfChange({ type: 'remove', nodeId: 'c', context: '' })).toThrow(/not committed an entry in its term/);
  });

  it('a removed leader steps down once its removal commits', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.node('a').proposeConfChange({ type: 'remove', nodeId: 'a', context: '' });
    cluster.settle();
    expect(cluster.node('a').currentRole).toBe('follower');
    expect(cluster.node('b').membership.voters).toEqual(['b', 'c']);
    // The rest elect a leader among themselves, and the removed node cannot campaign.
    cluster.isolate('a');
    cluster.tickAll(40);
    const leader = cluster.leader();
    expect(leader === undefined ? undefined : ['b', 'c'].includes(leader.id)).toBe(true);
  });

  it('bad changes are refused with a reason', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const a = cluster.node('a');
    expect(() => a.proposeConfChange({ type: 'addLearner', nodeId: 'b', context: '' })).toThrow(/already a member/);
    expect(() => a.proposeConfChange({ type: 'promote', nodeId: 'z', context: '' })).toThrow(/not a learner/);
    expect(() => a.proposeConfChange({ type: 'remove', nodeId: 'z', context: '' })).toThrow(/not a member/);
  });
});

describe('§3.10 leadership transfer', () => {
  it('"the prior leader sends a TimeoutNow request to the target server", which starts an election at once and wins', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const term = cluster.node('a').currentTerm;
    cluster.node('a').transferLeadership('c');
    cluster.settle();
    expect(cluster.node('c').currentRole).toBe('leader');
    expect(cluster.node('c').currentTerm).toBe(term + 1);
    expect(cluster.node('a').currentRole).toBe('follower');
  });

  it('"the prior leader ... first brings the target up to date" before handing over', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.isolate('c');
    cluster.propose('a', 'x');
    cluster.healAll();
    cluster.node('a').transferLeadership('c');
    cluster.settle();
    expect(cluster.node('c').currentRole).toBe('leader');
    expect(cluster.appliedTexts('c')).toEqual(['x']);
  });

  it('"the prior leader stops accepting new client requests" during a transfer', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.isolate('c');
    cluster.node('a').transferLeadership('c');
    expect(() => cluster.node('a').propose([data('x')])).toThrow(ProposalDroppedError);
  });

  it('"if the transfer does not complete within ... an election timeout, the prior leader aborts the transfer"', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.isolate('c');
    cluster.node('a').transferLeadership('c');
    cluster.tickAll(12);
    expect(cluster.node('a').currentRole).toBe('leader');
    expect(() => cluster.node('a').propose([data('x')])).not.toThrow();
  });

  it('a transfer right after a promotion: the target campaigns though it had not yet heard the promotion commit', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.node('a').proposeConfChange({ type: 'addLearner', nodeId: 'd', context: '' });
    cluster.add('d', newJoiner('d'));
    cluster.tickAll(2);
    // The promotion commits at a, but d has the entry without knowing it committed: still a learner to itself.
    const a = cluster.node('a');
    a.proposeConfChange({ type: 'promote', nodeId: 'd', context: '' });
    const deliver = (from: NodeId): void => {
      for (const m of drain(cluster.node(from), cluster.disks.get(from))?.messages ?? []) cluster.node(m.to).step(m);
    };
    deliver('a'); // the entry, to b, c and d
    for (const id of ['b', 'c', 'd']) deliver(id); // their acknowledgements: a commits
    cluster.cutOneWay('a', 'd');
    cluster.settle();
    cluster.healAll();
    expect(a.membership.voters).toContain('d');
    expect(cluster.node('d').membership.voters).not.toContain('d');
    const term = a.currentTerm;
    a.transferLeadership('d');
    cluster.settle();
    expect(cluster.node('d').currentRole).toBe('leader');
    expect(cluster.node('d').currentTerm).toBe(term + 1);
  });

  it('a transfer to a non-voter is refused', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    expect(() => cluster.node('a').transferLeadership('z')).toThrow(TransferError);
  });
});

describe('durability and the Ready protocol', () => {
  it('§10.2.1: the leader may send appends before its own write, but counts its entry only once it is durable', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const a = cluster.node('a');
    const before = a.status().commit;
    a.propose([data('x')]);
    const rd = a.ready();
    expect(ofType(rd.messages, 'append').every((m) => isLeaderMessage(m))).toBe(true);
    // b stores it and acknowledges while a's own write is still in flight: one durable copy of three.
    for (const m of rd.messages.filter((m) => m.to === 'b')) cluster.node('b').step(m);
    for (const m of outbox(cluster.node('b'))) a.step(m);
    expect(a.status().commit).toBe(before);
    // Now a's write completes: two durable copies, a quorum.
    a.advance();
    expect(a.status().commit).toBe(before + 1);
  });

  it('a follower\'s acknowledgements are not leader messages: they wait for its own write', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    r.step({ type: 'append', from: 'b', to: 'a', term: 2, prevIndex: 1, prevTerm: 1, entries: [{ index: 2, term: 2, type: 'normal', data: data('x') }], commit: 1 });
    const rd = r.ready();
    expect(rd.messages.length).toBe(1);
    expect(rd.messages.some((m) => isLeaderMessage(m))).toBe(false);
    r.advance();
  });

  it('a restarted node recovers its term, vote, log, commit index and membership from what it persisted', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.node('a').proposeConfChange({ type: 'addLearner', nodeId: 'd', context: 'addr' });
    cluster.settle();
    cluster.propose('a', 'x', 'y');
    cluster.tickAll(1);
    const before = cluster.node('b').status();
    const restarted = restartRaft('b', cluster.disks.get('b')!);
    const after = restarted.status();
    expect(after.term).toBe(before.term);
    expect(after.commit).toBe(before.commit);
    expect(after.lastIndex).toBe(before.lastIndex);
    expect(after.conf).toEqual({ voters: ['a', 'b', 'c'], learners: ['d'] });
    // Committed entries after the snapshot come out again for the state machine to apply.
    const rd = restarted.ready();
    expect(rd.committedEntries.filter((e) => e.type === 'normal').map((e) => new TextDecoder().decode(e.data))).toEqual(['x', 'y']);
  });

  it('messages that depend on a vote or entries come in the same Ready as the state to persist first', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    r.step({ type: 'append', from: 'b', to: 'a', term: 2, prevIndex: 1, prevTerm: 1, entries: [{ index: 2, term: 2, type: 'normal', data: data('x') }], commit: 1 });
    const rd = r.ready();
    expect(rd.hardState?.term).toBe(2);
    expect(rd.entries.map((e) => e.index)).toEqual([2]);
    expect(ofType(rd.messages, 'appendResp')[0]).toMatchObject({ index: 2, reject: false });
    r.advance();
  });

  it('ready() twice without advance() is a protocol error', () => {
    const r = newRaft('a', ['a']);
    r.tick();
    for (let i = 0; i < 30 && !r.hasReady(); i++) r.tick();
    r.ready();
    expect(() => r.ready()).toThrow(RaftInvariantError);
  });

  it('a log handed to the core with a gap is refused', () => {
    expect(() =>
      restartRaft('a', {
        hardState: { term: 2, vote: '', commit: 1 },
        snapshot: { index: 1, term: 1, confState: { voters: ['a'], learners: [] } },
        entries: [{ index: 5, term: 2, type: 'normal', data: data('x') }],
      }),
    ).toThrow(/gap/);
  });
});
