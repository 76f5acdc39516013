/**
 * MembershipHistory with a real file in a temp dir: removals survive a
 * reopen, replayed entries change nothing, a re-add clears a removal, and a
 * snapshot that no longer lists a member records its removal.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConfState } from '../../../src/raft/index.ts';
import { MEMBERSHIP_HISTORY_FILE, MembershipHistory } from '../../../src/server/membership-history.ts';

const CONF: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [] };
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'quorumkv-history-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('MembershipHistory', () => {
  it('keeps a removal across a reopen', () => {
    const history = new MembershipHistory(dir, CONF);
    history.recordChange({ type: 'remove', nodeId: 'n3', context: '' }, 1234);
    expect(history.get('n3')).toEqual({ event: 'removed', index: 1234 });
    const reopened = new MembershipHistory(dir, CONF);
    expect(reopened.get('n3')).toEqual({ event: 'removed', index: 1234 });
    expect(reopened.get('n1')).toBeUndefined();
    expect(JSON.parse(readFileSync(join(dir, MEMBERSHIP_HISTORY_FILE), 'utf8'))).toEqual({ n3: { event: 'removed', index: 1234 } });
  });

  it('records an add-back after a removal, and ignores older entries replayed after a restart', () => {
    const history = new MembershipHistory(dir, CONF);
    history.recordChange({ type: 'remove', nodeId: 'n3', context: '' }, 100);
    history.recordChange({ type: 'addLearner', nodeId: 'n3', context: '' }, 200);
    history.recordChange({ type: 'promote', nodeId: 'n3', context: '' }, 210);
    expect(history.get('n3')).toEqual({ event: 'added', index: 200 });
    const reopened = new MembershipHistory(dir, CONF);
    reopened.recordChange({ type: 'remove', nodeId: 'n3', context: '' }, 100);
    expect(reopened.get('n3')).toEqual({ event: 'added', index: 200 });
  });

  it('records the members a snapshot no longer lists as removed by its index, and keeps an earlier exact removal index', () => {
    const history = new MembershipHistory(dir, CONF);
    history.recordChange({ type: 'addLearner', nodeId: 'n4', context: '' }, 50);
    history.recordChange({ type: 'remove', nodeId: 'n1', context: '' }, 60);
    history.recordSnapshot({ voters: ['n3'], learners: ['n4'] }, 500);
    expect(history.get('n2')).toEqual({ event: 'removed', index: 500 });
    expect(history.get('n1')).toEqual({ event: 'removed', index: 60 });
    expect(history.get('n3')).toBeUndefined();
    expect(history.get('n4')).toEqual({ event: 'added', index: 50 });
  });

  it('records a removed member that a snapshot lists again as added back', () => {
    const history = new MembershipHistory(dir, CONF);
    history.recordChange({ type: 'remove', nodeId: 'n3', context: '' }, 100);
    history.recordSnapshot({ voters: ['n1', 'n2', 'n3'], learners: [] }, 300);
    expect(history.get('n3')).toEqual({ event: 'added', index: 300 });
  });

  it('refuses to start from a malformed file, naming it', () => {
    writeFileSync(join(dir, MEMBERSHIP_HISTORY_FILE), JSON.stringify({ n3: { event: 'gone', index: 5 } }));
    expect(() => new MembershipHistory(dir, CONF)).toThrow(/membership-history\.json: malformed entry for n3/);
  });
});
