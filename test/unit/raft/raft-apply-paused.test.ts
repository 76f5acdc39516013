/**
 * setApplyPaused: a node whose state machine is not ready yet still votes,
 * appends, acknowledges and commits; only application waits, and resumes in
 * order from the entry after the last applied.
 */
import { describe, expect, it } from 'vitest';
import { TestCluster, data, drain, text } from './harness.ts';

describe('apply paused', () => {
  it('a paused follower acknowledges appends so the others commit; it applies nothing until resumed, then everything in order', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    cluster.elect('a');
    const c = cluster.node('c');
    c.setApplyPaused(true);
    cluster.isolate('b'); // a commits only with c's acknowledgements
    cluster.propose('a', 'x', 'y');
    expect(cluster.appliedTexts('a')).toEqual(['x', 'y']);
    const commit = cluster.node('a').status().commit;
    cluster.tickAll(1); // a heartbeat carries the commit index to c
    expect(c.status().commit).toBe(commit);
    expect(cluster.appliedTexts('c')).toEqual([]);
    const appliedBefore = c.status().applied;
    expect(appliedBefore).toBeLessThan(commit);

    c.setApplyPaused(false);
    expect(c.hasReady()).toBe(true);
    const rd = drain(c, cluster.disks.get('c'));
    const entries = rd?.committedEntries ?? [];
    expect(entries[0]?.index).toBe(appliedBefore + 1);
    expect(entries.map((e) => e.index)).toEqual(entries.map((_, i) => appliedBefore + 1 + i));
    expect(entries.filter((e) => e.type === 'normal').map(text)).toEqual(['x', 'y']);
    expect(c.status().applied).toBe(commit);
  });

  it('a paused node votes and can be elected; as leader it commits and confirms reads at an index above what it applied', () => {
    const cluster = new TestCluster(['a', 'b', 'c']);
    const a = cluster.node('a');
    a.setApplyPaused(true);
    cluster.elect('a');
    expect(a.currentRole).toBe('leader');
    a.propose([data('x')]);
    cluster.settle();
    const commit = a.status().commit;
    expect(cluster.appliedTexts('b')).toEqual(['x']);
    expect(cluster.appliedTexts('a')).toEqual([]);

    a.readIndex(7);
    const readStates = [];
    for (let round = 0; round < 10 && readStates.length === 0; round++) {
      const rd = drain(a, cluster.disks.get('a'));
      readStates.push(...(rd?.readStates ?? []));
      for (const m of rd?.messages ?? []) {
        const follower = cluster.node(m.to);
        follower.step(m);
        for (const reply of drain(follower, cluster.disks.get(m.to))?.messages ?? []) a.step(reply);
      }
    }
    expect(readStates).toEqual([{ requestId: 7, index: commit }]);
    // What the driver must apply before serving the read: more than it has.
    expect(a.status().applied).toBeLessThan(commit);
    a.setApplyPaused(false);
    const rd = drain(a, cluster.disks.get('a'));
    expect(rd?.committedEntries.filter((e) => e.type === 'normal').map(text)).toEqual(['x']);
    expect(a.status().applied).toBe(commit);
  });
});
