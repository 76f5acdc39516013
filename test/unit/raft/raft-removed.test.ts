/**
 * A node told by a member that it was removed (Raft.reportRemoved, fed by the
 * peer transport's PERMISSION_DENIED): one rule per test. The node that
 * matters is one that missed its own removal (down, or restarted from old
 * data) and so still believes it is a voter.
 */
import { describe, expect, it } from 'vitest';
import { TestCluster, ofType, outbox } from './harness.ts';

/** a leads a, b, c; c is cut off while a removes it, so c still believes it is a voter. Returns the removal's index. */
function removeWhileCutOff(cluster: TestCluster): number {
  cluster.elect('a');
  cluster.isolate('c');
  const { lastIndex } = cluster.node('a').proposeConfChange({ type: 'remove', nodeId: 'c', context: '' });
  cluster.settle();
  expect(cluster.node('a').membership.voters).toEqual(['a', 'b']);
  expect(cluster.node('c').membership.voters).toEqual(['a', 'b', 'c']);
  return lastIndex;
}

describe('a node told it was removed', () => {
  it('stops campaigning: a pre-candidate steps back to follower, its term untouched, and never campaigns again', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    const removedAt = removeWhileCutOff(cluster);
    const c = cluster.node('c');
    const term = c.currentTerm;
    for (let i = 0; i < 40 && c.currentRole === 'follower'; i++) c.tick();
    expect(c.currentRole).toBe('preCandidate');
    outbox(c);
    expect(c.reportRemoved(removedAt)).toBe(true);
    expect(c.currentRole).toBe('follower');
    expect(c.removedAtIndex).toBe(removedAt);
    for (let i = 0; i < 200; i++) c.tick();
    const sent = outbox(c);
    expect(ofType(sent, 'preVote')).toEqual([]);
    expect(ofType(sent, 'vote')).toEqual([]);
    expect(c.currentRole).toBe('follower');
    expect(c.currentTerm).toBe(term);
  });

  it('a candidate told it was removed steps down in the same term', () => {
    const cluster = new TestCluster(['a', 'b', 'c'], { preVote: false });
    const removedAt = removeWhileCutOff(cluster);
    const c = cluster.node('c');
    for (let i = 0; i < 40 && c.currentRole === 'follower'; i++) c.tick();
    expect(c.currentRole).toBe('candidate');
    const term = c.currentTerm;
    c.reportRemoved(removedAt);
    expect(c.currentRole).toBe('follower');
    expect(c.currentTerm).toBe(term);
  });

  it('does not campaign on a TimeoutNow either', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    const removedAt = removeWhileCutOff(cluster);
    const c = cluster.node('c');
    c.reportRemoved(removedAt);
    c.step({ type: 'timeoutNow', from: 'a', to: 'c', term: c.currentTerm, commit: 0 });
    expect(c.currentRole).toBe('follower');
    expect(ofType(outbox(c), 'vote')).toEqual([]);
  });

  it('ignores the report when it committed past that index and is a member: it was added back and the reporter lags', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const c = cluster.node('c');
    expect(c.reportRemoved(c.commitIndex)).toBe(false);
    expect(c.removedAtIndex).toBe(0);
    cluster.isolate('c');
    for (let i = 0; i < 40 && c.currentRole === 'follower'; i++) c.tick();
    expect(c.currentRole).toBe('preCandidate');
  });

  it('campaigns again once a committed change after its removal adds it back', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    const removedAt = removeWhileCutOff(cluster);
    const c = cluster.node('c');
    c.reportRemoved(removedAt);
    cluster.healAll();
    cluster.node('a').proposeConfChange({ type: 'addLearner', nodeId: 'c', context: '' });
    cluster.tickAll(3);
    expect(c.membership.learners).toEqual(['c']);
    expect(c.removedAtIndex).toBe(0);
    cluster.node('a').proposeConfChange({ type: 'promote', nodeId: 'c', context: '' });
    cluster.tickAll(3);
    expect(c.membership.voters).toContain('c');
    cluster.isolate('c');
    for (let i = 0; i < 40 && c.currentRole === 'follower'; i++) c.tick();
    expect(c.currentRole).toBe('preCandidate');
  });

  it('campaigns again once it installs a snapshot, taken after its removal, that lists it', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    const removedAt = removeWhileCutOff(cluster);
    const c = cluster.node('c');
    c.reportRemoved(removedAt);
    const a = cluster.node('a');
    a.proposeConfChange({ type: 'addLearner', nodeId: 'c', context: '' });
    cluster.settle();
    a.compact(a.status().applied, 0);
    cluster.healAll();
    cluster.tickAll(3);
    expect(cluster.delivered.some((m) => m.type === 'snapshot' && m.to === 'c')).toBe(true);
    expect(c.removedAtIndex).toBe(0);
  });
});
