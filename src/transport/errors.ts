/** The transport's errors: each has a stable `code` and a message naming what is wrong. */

export abstract class TransportError extends Error {
  abstract readonly code: string;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bytes on the peer port that are not a valid message of raft.proto. Answered with INVALID_ARGUMENT. */
export class MalformedMessageError extends TransportError {
  readonly code = 'MALFORMED_MESSAGE';
}

/**
 * Traffic that is not for this node: another cluster id, or another member
 * id as addressee (a peer map pointing at the wrong node). Answered with
 * FAILED_PRECONDITION.
 */
export class MisdirectedTrafficError extends TransportError {
  readonly code = 'MISDIRECTED';
}

/**
 * With TLS: a stream whose caller is not the member it claims to be (no
 * CA-verified node certificate, or one naming another member). Answered with
 * UNAUTHENTICATED.
 */
export class UnauthenticatedPeerError extends TransportError {
  readonly code = 'UNAUTHENTICATED_PEER';
}

/**
 * Traffic from a sender this node does not admit (PeerTransportOptions.admit):
 * a removed member, or a non-member sending more than leader traffic.
 * Answered with PERMISSION_DENIED; for a removed sender the answer's trailers
 * carry the index it was removed at (METADATA_REMOVED_AT), so it can stop.
 */
export class PeerNotAdmittedError extends TransportError {
  readonly code = 'NOT_ADMITTED';
  constructor(
    message: string,
    readonly removedAtIndex: number | null,
  ) {
    super(message);
  }
}

/** A PeerTransport used after close(), or started twice. */
export class TransportStateError extends TransportError {
  readonly code = 'TRANSPORT_STATE';
}
