import { ConfChangeError } from './errors.ts';
import type { ConfChange, ConfState, NodeId } from './types.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

// Membership changes are rare and small: JSON keeps them readable in the log.
export function encodeConfChange(change: ConfChange): Uint8Array {
  return encoder.encode(JSON.stringify({ type: change.type, nodeId: change.nodeId, context: change.context }));
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  const parsed = JSON.parse(decoder.decode(data)) as Partial<ConfChange>;
  const { type, nodeId, context } = parsed;
  if ((type !== 'addLearner' && type !== 'promote' && type !== 'remove') || typeof nodeId !== 'string' || typeof context !== 'string') {
    throw new ConfChangeError(`malformed membership change in the log: ${decoder.decode(data)}`);
  }
  return { type, nodeId, context };
}

export function isMember(conf: ConfState, id: NodeId): boolean {
  return conf.voters.includes(id) || conf.learners.includes(id);
}

/** Checks a change against the membership it would apply to; throws ConfChangeError when it cannot. */
export function validateConfChange(conf: ConfState, change: ConfChange): void {
  const { nodeId } = change;
  if (nodeId === '') throw new ConfChangeError('a member id must not be empty');
  switch (change.type) {
    case 'addLearner':
      if (isMember(conf, nodeId)) throw new ConfChangeError(`${nodeId} is already a member`);
      return;
    case 'promote':
      if (!conf.learners.includes(nodeId)) {
        throw new ConfChangeError(conf.voters.includes(nodeId) ? `${nodeId} is already a voter` : `${nodeId} is not a learner: add it first`);
      }
      return;
    case 'remove':
      if (!isMember(conf, nodeId)) throw new ConfChangeError(`${nodeId} is not a member`);
      if (conf.voters.length === 1 && conf.voters[0] === nodeId) throw new ConfChangeError(`${nodeId} is the last voter`);
      return;
  }
}

/** The membership after a change. Applied on commit, so it never needs undoing. */
export function applyConfChange(conf: ConfState, change: ConfChange): ConfState {
  const without = (ids: readonly NodeId[]) => ids.filter((id) => id !== change.nodeId);
  switch (change.type) {
    case 'addLearner':
      return isMember(conf, change.nodeId) ? conf : { voters: conf.voters, learners: [...conf.learners, change.nodeId] };
    case 'promote':
      return conf.learners.includes(change.nodeId) ? { voters: [...conf.voters, change.nodeId], learners: without(conf.learners) } : conf;
    case 'remove':
      return { voters: without(conf.voters), learners: without(conf.learners) };
  }
}
