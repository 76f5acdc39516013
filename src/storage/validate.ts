/** Checks on values crossing into storage. */
import type { ConfState } from '../raft/types.ts';

/** A non-negative safe integer: the only kind of index, term, count or time storage accepts. */
export function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** Parses a ConfState written by `JSON.stringify`, or returns null when it is not one. */
export function parseConfState(text: string): ConfState | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { voters, learners } = value as Record<string, unknown>;
  if (!isStringArray(voters) || !isStringArray(learners)) return null;
  return { voters, learners };
}

/** The canonical text of a ConfState, checksummed and compared as a whole. */
export function confStateText(conf: ConfState): string {
  return JSON.stringify({ voters: conf.voters, learners: conf.learners });
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
