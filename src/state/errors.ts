/**
 * The state machine's errors. Each has a stable `code` the server maps to a
 * gRPC status at the edge (see ERROR_CODES); the message names what to fix.
 */

/** Base of the state machine's errors: a stable `code` for callers, a message for people. */
export abstract class StateError extends Error {
  abstract readonly code: StateErrorCode;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The key holds another type than the command works on. Maps to FAILED_PRECONDITION. */
export class WrongTypeError extends StateError {
  readonly code = 'WRONGTYPE';
}

/** A list index outside the list (LSET). Maps to OUT_OF_RANGE. */
export class OutOfRangeError extends StateError {
  readonly code = 'OUT_OF_RANGE';
}

/** A malformed or oversized command; the message names the limit. Maps to INVALID_ARGUMENT. */
export class InvalidArgumentError extends StateError {
  readonly code = 'INVALID_ARGUMENT';
}

/** The memory budget is full and eviction is off, or an answer would exceed its size limit. Maps to RESOURCE_EXHAUSTED. */
export class ResourceExhaustedError extends StateError {
  readonly code = 'RESOURCE_EXHAUSTED';
}

/**
 * A retried write whose sequence is below the last one applied for its client:
 * its result is gone, so it can neither be answered nor applied again. Maps to FAILED_PRECONDITION.
 */
export class StaleSequenceError extends StateError {
  readonly code = 'STALE_SEQUENCE';
}

/**
 * Bytes that do not decode: corruption, or a format version this build does not
 * know. apply() throws it rather than skip the entry, because a replica that
 * skipped what another applied would silently diverge. Maps to DATA_LOSS.
 */
export class CodecError extends StateError {
  readonly code = 'DATA_LOSS';
}

export type StateErrorCode =
  | 'WRONGTYPE'
  | 'OUT_OF_RANGE'
  | 'INVALID_ARGUMENT'
  | 'RESOURCE_EXHAUSTED'
  | 'STALE_SEQUENCE'
  | 'DATA_LOSS';

/** Every code, for the server's mapping table and for decoding errors out of recorded results. */
export const ERROR_CODES: readonly StateErrorCode[] = [
  'WRONGTYPE',
  'OUT_OF_RANGE',
  'INVALID_ARGUMENT',
  'RESOURCE_EXHAUSTED',
  'STALE_SEQUENCE',
  'DATA_LOSS',
];

/** Rebuilds the named error class for a code, e.g. when a session replays a recorded failure. */
export function errorFromCode(code: StateErrorCode, message: string): StateError {
  switch (code) {
    case 'WRONGTYPE':
      return new WrongTypeError(message);
    case 'OUT_OF_RANGE':
      return new OutOfRangeError(message);
    case 'INVALID_ARGUMENT':
      return new InvalidArgumentError(message);
    case 'RESOURCE_EXHAUSTED':
      return new ResourceExhaustedError(message);
    case 'STALE_SEQUENCE':
      return new StaleSequenceError(message);
    case 'DATA_LOSS':
      return new CodecError(message);
  }
}
