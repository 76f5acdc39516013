/**
 * State machine configuration. Apply decides with it (the memory budget, the
 * size limits, session expiry), so every replica must run with the same
 * values, like the log itself: the server takes them from the cluster config.
 */

export type EvictionPolicy = 'lru' | 'noeviction';

export interface StateMachineConfig {
  /** Memory budget in accounted bytes (see memory.ts); 0 means none. */
  readonly maxMemoryBytes: number;
  /**
   * 'lru': the leader proposes evictions (evictionCandidates) and apply never
   * refuses a write for memory. 'noeviction': with a budget, a write that would
   * take memory use above it fails with RESOURCE_EXHAUSTED and changes nothing.
   */
  readonly eviction: EvictionPolicy;
  /** Largest key, and largest hash field name, in UTF-8 bytes. */
  readonly maxKeyBytes: number;
  /** Largest string value, list item or hash field value. */
  readonly maxValueBytes: number;
  /**
   * A session not seen for this long (in log time) is forgotten. Log time is the
   * leader's clock, which can jump ahead: a session forgotten early lets a retry
   * apply twice, so this is far longer than any client retries or any clock
   * error we plan for. Memory is bounded by maxSessions, not by this.
   */
  readonly sessionIdleMs: number;
  /** Most sessions kept; a new one beyond it evicts the least recently seen. */
  readonly maxSessions: number;
}

export const DEFAULT_STATE_CONFIG: StateMachineConfig = Object.freeze({
  maxMemoryBytes: 0,
  eviction: 'noeviction',
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
  sessionIdleMs: 24 * 60 * 60 * 1000,
  maxSessions: 10_000,
});

export function resolveConfig(config: Partial<StateMachineConfig> = {}): StateMachineConfig {
  const resolved = { ...DEFAULT_STATE_CONFIG, ...config };
  for (const name of ['maxMemoryBytes', 'maxKeyBytes', 'maxValueBytes', 'sessionIdleMs', 'maxSessions'] as const) {
    const value = resolved[name];
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`state config ${name} must be a non-negative integer, not ${value}`);
  }
  if (resolved.maxSessions < 1) throw new RangeError('state config maxSessions must be at least 1');
  if (resolved.eviction !== 'lru' && resolved.eviction !== 'noeviction') {
    throw new RangeError(`state config eviction must be 'lru' or 'noeviction', not '${String(resolved.eviction)}'`);
  }
  return Object.freeze(resolved);
}
