/**
 * One test per rule of the Raft paper (Ongaro & Ousterhout, "In Search of an
 * Understandable Consensus Algorithm"), with the rule quoted.
 */
import { describe, expect, it } from 'vitest';
import { NotLeaderError } from '../../../src/raft/index.ts';
import type { Entry, Message } from '../../../src/raft/index.ts';
import { TestCluster, data, drain, newRaft, ofType, outbox, restartRaft } from './harness.ts';
import type { TestDisk } from './harness.ts';

const noPreVote = { preVote: false, checkQuorum: false };

function append(from: string, to: string, term: number, prevIndex: number, prevTerm: number, entries: Entry[], commit: number): Message {
  return { type: 'append', from, to, term, prevIndex, prevTerm, entries, commit };
}

function entry(index: number, term: number, payload = `e${index}`): Entry {
  return { index, term, type: 'normal', data: data(payload) };
}

describe('§5.1 terms', () => {
  it('"If one server\'s current term is smaller than the other\'s, then it updates its current term to the larger value"', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    r.step({ type: 'heartbeat', from: 'b', to: 'a', term: 5, commit: 0, readRound: 0 });
    expect(r.currentTerm).toBe(5);
    expect(r.leader).toBe('b');
  });

  it('"If a candidate or leader discovers that its term is out of date, it immediately reverts to follower state"', () => {
    const cluster = new TestCluster(['a', 'b', 'c'], noPreVote);
    cluster.elect('a');
    const a = cluster.node('a');
    a.step({ type: 'appendResp', from: 'b', to: 'a', term: a.currentTerm + 1, reject: false, index: 0, hintIndex: 0, hintTerm: 0 });
    expect(a.currentRole).toBe('follower');
    expect(a.currentTerm).toBe(3);
  });

  it('"If a server receives a request with a stale term number, it rejects the request"', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    r.step({ type: 'heartbeat', from: 'b', to: 'a', term: 5, commit: 0, readRound: 0 });
    outbox(r);
    r.step(append('c', 'a', 4, 1, 1, [entry(2, 4)], 0));
    const [reply] = outbox(r);
    expect(r.status().lastIndex).toBe(1);
    // The stale leader is told the newer term so that it steps down.
    expect(reply).toMatchObject({ type: 'appendResp', to: 'c', term: 5 });
  });
});

describe('§5.2 leader election', () => {
  it('"To begin an election, a follower increments its current term and transitions to candidate state. It then votes for itself and issues RequestVote RPCs in parallel to each of the other servers"', () => {
    const r = newRaft('a', ['a', 'b', 'c'], noPreVote);
    for (let i = 0; i < 20 && r.currentRole === 'follower'; i++) r.tick();
    expect(r.currentRole).toBe('candidate');
    expect(r.currentTerm).toBe(2);
    expect(r.status().vote).toBe('a');
    const votes = ofType(outbox(r), 'vote');
    expect(votes.map((m) => m.to).sort()).toEqual(['b', 'c']);
    expect(votes.every((m) => m.term === 2 && m.lastLogIndex === 1 && m.lastLogTerm === 1)).toBe(true);
  });

  it('"A candidate wins an election if it receives votes from a majority of the servers in the full cluster for the same term"', () => {
    const r = newRaft('a', ['a', 'b', 'c', 'd', 'e'], noPreVote);
    for (let i = 0; i < 20 && r.currentRole === 'follower'; i++) r.tick();
    r.step({ type: 'voteResp', from: 'b', to: 'a', term: 2, reject: false });
    expect(r.currentRole).toBe('candidate');
    r.step({ type: 'voteResp', from: 'c', to: 'a', term: 2, reject: false });
    expect(r.currentRole).toBe('leader');
  });

  it('a candidate that a majority rejects goes back to being a follower', () => {
    const r = newRaft('a', ['a', 'b', 'c'], noPreVote);
    for (let i = 0; i < 20 && r.currentRole === 'follower'; i++) r.tick();
    r.step({ type: 'voteResp', from: 'b', to: 'a', term: 2, reject: true });
    r.step({ type: 'voteResp', from: 'c', to: 'a', term: 2, reject: true });
    expect(r.currentRole).toBe('follower');
  });

  it('"Each server will vote for at most one candidate in a given term, on a first-come-first-served basis"', () => {
    const r = newRaft('a', ['a', 'b', 'c'], noPreVote);
    r.step({ type: 'vote', from: 'b', to: 'a', term: 2, lastLogIndex: 1, lastLogTerm: 1, leaderTransfer: false });
    r.step({ type: 'vote', from: 'c', to: 'a', term: 2, lastLogIndex: 1, lastLogTerm: 1, leaderTransfer: false });
    // A repeated request from the one we voted for gets the same answer.
    r.step({ type: 'vote', from: 'b', to: 'a', term: 2, lastLogIndex: 1, lastLogTerm: 1, leaderTransfer: false });
    const replies = ofType(outbox(r), 'voteResp');
    expect(replies.map((m) => [m.to, m.reject])).toEqual([
      ['b', false],
      ['c', true],
      ['b', false],
    ]);
  });

  it('the vote is durable: a restarted server does not vote again in the same term', () => {
    const r = newRaft('a', ['a', 'b', 'c'], noPreVote);
    r.step({ type: 'vote', from: 'b', to: 'a', term: 2, lastLogIndex: 1, lastLogTerm: 1, leaderTransfer: false });
    const rd = r.ready();
    expect(rd.hardState).toMatchObject({ term: 2, vote: 'b' });
    expect(ofType(rd.messages, 'voteResp')[0]?.reject).toBe(false);
    const restarted = restartRaft('a', { hardState: rd.hardState!, snapshot: { index: 1, term: 1, confState: { voters: ['a', 'b', 'c'], learners: [] } }, entries: [] }, noPreVote);
    restarted.step({ type: 'vote', from: 'c', to: 'a', term: 2, lastLogIndex: 1, lastLogTerm: 1, leaderTransfer: false });
    expect(ofType(outbox(restarted), 'voteResp')[0]?.reject).toBe(true);
  });

  it('"If the AppendEntries RPC\'s term is at least as large as the candidate\'s current term, then the candidate recognizes the leader as legitimate and returns to follower state"', () => {
    const r = newRaft('a', ['a', 'b', 'c'], noPreVote);
    for (let i = 0; i < 20 && r.currentRole === 'follower'; i++) r.tick();
    expect(r.currentRole).toBe('candidate');
    r.step(append('b', 'a', 2, 1, 1, [], 1));
    expect(r.currentRole).toBe('follower');
    expect(r.leader).toBe('b');
  });

  it('"Raft uses randomized election timeouts ... chosen randomly from a fixed interval (e.g., 150–300ms)"', () => {
    const timeouts = new Set<number>();
    for (let seed = 1; seed <= 30; seed++) {
      const r = newRaft('a', ['a', 'b', 'c'], noPreVote, seed);
      let ticks = 0;
      while (r.currentRole === 'follower') {
        r.tick();
        ticks++;
      }
      expect(ticks).toBeGreaterThanOrEqual(10);
      expect(ticks).toBeLessThan(20);
      timeouts.add(ticks);
    }
    expect(timeouts.size).toBeGreaterThan(3);
  });

  it('a leader sends heartbeats every heartbeat interval "to maintain its authority"', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const a = cluster.node('a');
    a.tick();
    expect(ofType(outbox(a), 'heartbeat').map((m) => m.to).sort()).toEqual(['b', 'c']);
  });
});

describe('§5.3 log replication', () => {
  it('"The leader appends the command to its log as a new entry, then issues AppendEntries RPCs in parallel to each of the other servers"', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const a = cluster.node('a');
    const proposal = a.propose([data('x')]);
    const rd = a.ready();
    expect(rd.entries.map((e) => e.index)).toEqual([proposal.firstIndex]);
    const appends = ofType(rd.messages, 'append');
    expect(appends.map((m) => m.to).sort()).toEqual(['b', 'c']);
    expect(appends.every((m) => m.entries.length === 1 && m.entries[0]?.index === proposal.firstIndex)).toBe(true);
    a.advance();
  });

  it('"A log entry is committed once the leader that created the entry has replicated it on a majority of the servers"', () => {
    const cluster = new TestCluster(['a', 'b', 'c', 'd', 'e']);
    cluster.elect('a');
    cluster.isolate('c');
    cluster.isolate('d');
    cluster.isolate('e');
    cluster.propose('a', 'x');
    expect(cluster.node('a').status().commit).toBeLessThan(cluster.node('a').status().lastIndex);
    cluster.healAll();
    cluster.isolate('e');
    cluster.node('a').tick();
    cluster.settle();
    expect(cluster.node('a').status().commit).toBe(cluster.node('a').status().lastIndex);
    expect(cluster.appliedTexts('a')).toEqual(['x']);
  });

  it('"the leader ... includes that index in future AppendEntries RPCs ... Once a follower learns that a log entry is committed, it applies the entry to its local state machine"', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    cluster.propose('a', 'x', 'y');
    cluster.tickAll(1);
    expect(cluster.appliedTexts('b')).toEqual(['x', 'y']);
    expect(cluster.appliedTexts('c')).toEqual(['x', 'y']);
  });

  it('"If the follower does not find an entry in its log with the same index and term, then it refuses the new entries"', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    r.step(append('b', 'a', 2, 5, 2, [entry(6, 2)], 0));
    const [reply] = ofType(outbox(r), 'appendResp');
    expect(reply).toMatchObject({ reject: true, index: 5 });
    expect(r.status().lastIndex).toBe(1);
  });

  it('"If an existing entry conflicts with a new one (same index but different terms), delete the existing entry and all that follow it"', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    r.step(append('b', 'a', 2, 1, 1, [entry(2, 2), entry(3, 2), entry(4, 2)], 1));
    outbox(r);
    r.step(append('c', 'a', 3, 2, 2, [entry(3, 3, 'new')], 1));
    const rd = r.ready();
    expect(rd.entries.map((e) => [e.index, e.term])).toEqual([[3, 3]]);
    expect(r.status().lastIndex).toBe(3);
    expect(r.entry(3)?.term).toBe(3);
    r.advance();
  });

  it('an append that only repeats entries the follower has does not truncate newer ones (reordered messages)', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    r.step(append('b', 'a', 2, 1, 1, [entry(2, 2), entry(3, 2)], 1));
    r.step(append('b', 'a', 2, 1, 1, [entry(2, 2)], 1));
    expect(r.status().lastIndex).toBe(3);
  });

  it('"the follower sets commitIndex = min(leaderCommit, index of last new entry)"', () => {
    const r = newRaft('a', ['a', 'b', 'c']);
    r.step(append('b', 'a', 2, 1, 1, [entry(2, 2)], 10));
    expect(r.status().commit).toBe(2);
  });

  it('fast backoff: a follower whose log diverges for a whole term is found in one round trip, not one per entry', () => {
    // a holds entries 2..60 of term 2; the leader c holds 2..10 of term 2, then 11..40 of term 3, then leads term 4.
    const a = newRaft('a', ['a', 'b', 'c'], noPreVote);
    const term2 = Array.from({ length: 59 }, (_, i) => entry(i + 2, 2));
    a.step(append('b', 'a', 2, 1, 1, term2, 1));
    outbox(a);
    const disk: TestDisk = { hardState: { term: 0, vote: '', commit: 0 }, snapshot: { index: 1, term: 1, confState: { voters: ['a', 'b', 'c'], learners: [] } }, entries: [] };
    let c = newRaft('c', ['a', 'b', 'c'], noPreVote);
    c.step(append('b', 'c', 2, 1, 1, term2.slice(0, 9), 1));
    drain(c, disk);
    const winElection = () => {
      for (let i = 0; i < 40 && c.currentRole !== 'candidate'; i++) c.tick();
      drain(c, disk);
      c.step({ type: 'voteResp', from: 'b', to: 'c', term: c.currentTerm, reject: false });
      expect(c.currentRole).toBe('leader');
    };
    winElection();
    for (let i = 0; i < 29; i++) c.propose([data(`t3-${i}`)]);
    drain(c, disk);
    expect(c.status().lastIndex).toBe(40);
    c = restartRaft('c', disk, noPreVote);
    winElection();

    let rejections = 0;
    let toFollower = ofType(drain(c, disk)?.messages ?? [], 'append').filter((m) => m.to === 'a');
    for (let round = 0; round < 10 && toFollower.length > 0; round++) {
      for (const m of toFollower) a.step(m);
      const replies = ofType(outbox(a), 'appendResp');
      rejections += replies.filter((m) => m.reject).length;
      for (const m of replies) c.step(m);
      toFollower = ofType(drain(c, disk)?.messages ?? [], 'append').filter((m) => m.to === 'a');
    }
    expect(rejections).toBe(1);
    expect(a.status().lastIndex).toBe(c.status().lastIndex);
    expect(a.entry(41)?.term).toBe(c.currentTerm);
    expect(a.entry(40)?.term).toBe(3);
  });
});

describe('§5.4 safety', () => {
  it('"the voter denies its vote if its own log is more up-to-date than that of the candidate"', () => {
    const r = newRaft('a', ['a', 'b', 'c'], noPreVote);
    r.step(append('b', 'a', 2, 1, 1, [entry(2, 2), entry(3, 2)], 1));
    outbox(r);
    const request = (from: string, lastLogIndex: number, lastLogTerm: number): boolean => {
      r.step({ type: 'vote', from, to: 'a', term: 3 + lastLogIndex, lastLogIndex, lastLogTerm, leaderTransfer: false });
      return !ofType(outbox(r), 'voteResp')[0]?.reject;
    };
    expect(request('c', 2, 2)).toBe(false); // same last term, shorter log
    expect(request('c', 9, 1)).toBe(false); // longer, but an older last term
    expect(request('c', 3, 2)).toBe(true); // as up to date
  });

  it('figure 8: "Raft never commits log entries from previous terms by counting replicas"', () => {
    const a = newRaft('a', ['a', 'b', 'c'], noPreVote);
    // a holds an entry of term 2 at index 2, then becomes leader of term 4.
    a.step(append('b', 'a', 2, 1, 1, [entry(2, 2)], 1));
    outbox(a);
    for (let i = 0; i < 40 && a.currentRole !== 'candidate'; i++) a.tick();
    outbox(a);
    a.step({ type: 'voteResp', from: 'c', to: 'a', term: a.currentTerm, reject: false });
    expect(a.currentRole).toBe('leader');
    outbox(a); // the no-op is now durable on a
    const noopIndex = a.status().lastIndex;
    // c acknowledges only index 2 (the old entry), not the no-op: a majority holds index 2.
    a.step({ type: 'appendResp', from: 'c', to: 'a', term: a.currentTerm, reject: false, index: 2, hintIndex: 0, hintTerm: 0 });
    expect(a.status().commit).toBe(1);
    a.step({ type: 'appendResp', from: 'c', to: 'a', term: a.currentTerm, reject: false, index: noopIndex, hintIndex: 0, hintTerm: 0 });
    expect(a.status().commit).toBe(noopIndex);
  });

  it('§8: "each leader commit[s] a blank no-op entry into the log at the start of its term"', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const a = cluster.node('a');
    const last = a.entry(a.status().lastIndex);
    expect(last).toMatchObject({ type: 'noop', term: a.currentTerm });
    expect(a.status().commit).toBe(last?.index);
  });

  it('only the leader takes proposals; others name the leader they know', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    expect(() => cluster.node('b').propose([data('x')])).toThrow(NotLeaderError);
    try {
      cluster.node('b').propose([data('x')]);
    } catch (error) {
      expect((error as NotLeaderError).leader).toBe('a');
    }
  });
});
