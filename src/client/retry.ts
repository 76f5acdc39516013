/**
 * When and where a failed call is tried again. A call has an overall
 * deadline; each attempt gets at most attemptTimeoutMs of it, so a node that
 * hangs costs one attempt, not the whole call. After a failure the next
 * attempt goes to the leader a node hinted at, else to the next endpoint;
 * once every endpoint of the round has failed, the call backs off
 * (exponentially, with jitter) before the next round.
 *
 * Only failures that are safe to repeat are retried:
 * - reads: UNAVAILABLE, ABORTED, an attempt's own DEADLINE_EXCEEDED, and a
 *   CANCELLED the caller did not ask for (a node shutting down resets its calls);
 * - writes, which carry a session (client_id, sequence) the server uses to
 *   answer a repeat with the first result: the same;
 * - admin changes, which carry no session: UNAVAILABLE only, which a node
 *   answers when it did not act (no leader, no quorum, refused connection).
 * Everything else (INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE,
 * RESOURCE_EXHAUSTED, ...) is the answer, and is returned at once.
 */
import type { Endpoints } from './endpoints.ts';
import { fromCallError, QuorumError, type StatusName } from './errors.ts';

export type CallKind = 'read' | 'write' | 'admin';

export interface RetryPolicy {
  /** Overall deadline of one call, retries included. */
  readonly timeoutMs: number;
  /** Deadline of one attempt (capped by what is left of the overall one). */
  readonly attemptTimeoutMs: number;
  /** Most attempts per call. */
  readonly maxAttempts: number;
  /** First pause between rounds; doubles each round up to maxBackoffMs. */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  timeoutMs: 10_000,
  attemptTimeoutMs: 5_000,
  // Enough rounds over three endpoints to span a leader election (backoff adds up to ~5 s over 30 attempts).
  maxAttempts: 30,
  initialBackoffMs: 50,
  maxBackoffMs: 1_000,
};

const RETRYABLE: Readonly<Record<CallKind, ReadonlySet<StatusName>>> = {
  read: new Set(['UNAVAILABLE', 'ABORTED', 'DEADLINE_EXCEEDED', 'CANCELLED']),
  write: new Set(['UNAVAILABLE', 'ABORTED', 'DEADLINE_EXCEEDED', 'CANCELLED']),
  admin: new Set(['UNAVAILABLE']),
};

export function isRetryable(kind: CallKind, code: StatusName): boolean {
  return RETRYABLE[kind].has(code);
}

/** The pause before round `round` (1-based): exponential, capped, with ±20% jitter so clients spread out. */
export function backoffMs(policy: RetryPolicy, round: number): number {
  const base = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** Math.max(0, round - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** Read through a function so TS does not keep a narrowing across awaits (the signal can fire meanwhile). */
export function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

export function cancelled(): QuorumError {
  return new QuorumError('CANCELLED', 'the call was cancelled');
}

/** Resolves after `ms`, or rejects with CANCELLED when the signal fires first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (aborted(signal)) return reject(cancelled());
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(cancelled());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** One attempt at an endpoint, to finish by `deadline` (ms since the epoch). */
/** Where to try after `error` at `address`: the leader it names (learning it), else the next endpoint. */
export function nextAddress(endpoints: Endpoints, address: string, error: QuorumError): string {
  const hinted = error.leader?.address;
  if (hinted !== undefined && hinted !== address) {
    endpoints.learn(hinted);
    return hinted;
  }
  return endpoints.after(address);
}

export type Attempt<T> = (address: string, deadline: number) => Promise<T>;

/**
 * Runs `attempt` until it succeeds, fails with an answer that must not be
 * retried, or the attempts or the time run out (then the last failure,
 * with the attempt count, is thrown).
 */
export async function withRetries<T>(endpoints: Endpoints, policy: RetryPolicy, kind: CallKind, attempt: Attempt<T>, signal?: AbortSignal): Promise<T> {
  const deadline = Date.now() + policy.timeoutMs;
  const tried = new Set<string>();
  let round = 0;
  let address = endpoints.preferred;
  for (let attempts = 1; ; attempts++) {
    if (aborted(signal)) throw cancelled();
    try {
      const result = await attempt(address, Math.min(deadline, Date.now() + policy.attemptTimeoutMs));
      endpoints.succeeded(address);
      return result;
    } catch (raw) {
      const error = fromCallError(raw, address);
      if (aborted(signal)) throw cancelled();
      if (!isRetryable(kind, error.code) || attempts >= policy.maxAttempts) throw error.withAttempts(attempts);
      tried.add(address);
      address = nextAddress(endpoints, address, error);
      if (tried.has(address)) {
        const pause = backoffMs(policy, ++round);
        if (Date.now() + pause >= deadline) throw error.withAttempts(attempts);
        await sleep(pause, signal);
        tried.clear();
      } else if (Date.now() >= deadline) {
        throw error.withAttempts(attempts);
      }
    }
  }
}
