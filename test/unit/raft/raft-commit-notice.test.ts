/**
 * lazyCommitNotice: a leader does not send an append that only carries a new
 * commit index; appends with entries carry it, and noticeCommit() sends it
 * to followers that have not had it.
 */
import { describe, expect, it } from 'vitest';
import type { Raft } from '../../../src/raft/index.ts';
import { TestCluster, ofType, outbox } from './harness.ts';

/** Runs one write from a's proposal to the followers' acknowledgements reaching a; returns what a sends after committing. */
function writeAndCommit(cluster: TestCluster, payload: string): ReturnType<typeof outbox> {
  const a = cluster.node('a');
  a.propose([new TextEncoder().encode(payload)]);
  const appends = ofType(outbox(a), 'append');
  expect(appends.map((m) => m.to).sort()).toEqual(['b', 'c']);
  for (const m of appends) {
    const follower = cluster.node(m.to);
    follower.step(m);
    for (const ack of outbox(follower)) a.step(ack);
  }
  return outbox(a);
}

function committedOn(raft: Raft): number {
  return raft.status().commit;
}

describe('lazy commit notice', () => {
  it('sends no append that carries only the new commit index; noticeCommit() sends it to each follower once', () => {
    const cluster = new TestCluster(['a', 'b', 'c'], { lazyCommitNotice: true });
    cluster.elect('a');
    const a = cluster.node('a');
    const afterCommit = writeAndCommit(cluster, 'x');
    const commit = committedOn(a);
    expect(ofType(afterCommit, 'append')).toEqual([]);
    expect(committedOn(cluster.node('b'))).toBeLessThan(commit);
    expect(a.commitNoticePending).toBe(true);

    a.noticeCommit();
    const notices = ofType(outbox(a), 'append');
    expect(notices.map((m) => [m.to, m.entries.length, m.commit]).sort()).toEqual([
      ['b', 0, commit],
      ['c', 0, commit],
    ]);
    expect(a.commitNoticePending).toBe(false);
    for (const m of notices) cluster.node(m.to).step(m);
    cluster.settle();
    expect(committedOn(cluster.node('b'))).toBe(commit);
    expect(committedOn(cluster.node('c'))).toBe(commit);
    expect(cluster.appliedTexts('c')).toEqual(['x']);
  });

  it('the next append with entries carries the commit index, and nothing is pending after it', () => {
    const cluster = new TestCluster(['a', 'b', 'c'], { lazyCommitNotice: true });
    cluster.elect('a');
    const a = cluster.node('a');
    writeAndCommit(cluster, 'x');
    const commit = committedOn(a);
    a.propose([new TextEncoder().encode('y')]);
    const appends = ofType(outbox(a), 'append');
    expect(appends.map((m) => [m.to, m.entries.length, m.commit]).sort()).toEqual([
      ['b', 1, commit],
      ['c', 1, commit],
    ]);
    expect(a.commitNoticePending).toBe(false);
  });

  it('a heartbeat tells a follower the commit index it holds entries for, so a quiet cluster catches up without noticeCommit()', () => {
    const cluster = new TestCluster(['a', 'b', 'c'], { lazyCommitNotice: true });
    cluster.elect('a');
    writeAndCommit(cluster, 'x');
    cluster.tickAll(1);
    expect(cluster.appliedTexts('b')).toEqual(['x']);
    expect(cluster.appliedTexts('c')).toEqual(['x']);
  });

  it('is off by default: the commit index goes out at once', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const a = cluster.node('a');
    const afterCommit = ofType(writeAndCommit(cluster, 'x'), 'append');
    expect(afterCommit.map((m) => [m.to, m.entries.length, m.commit]).sort()).toEqual([
      ['b', 0, committedOn(a)],
      ['c', 0, committedOn(a)],
    ]);
    expect(a.commitNoticePending).toBe(false);
  });

  it('nothing is pending on a follower, and noticeCommit() there does nothing', () => {
    const cluster = new TestCluster(['a', 'b', 'c'], { lazyCommitNotice: true });
    cluster.elect('a');
    writeAndCommit(cluster, 'x');
    const b = cluster.node('b');
    expect(b.commitNoticePending).toBe(false);
    b.noticeCommit();
    expect(outbox(b)).toEqual([]);
  });
});
