/**
 * Bearer-token authentication: every call a client makes (unary, watch,
 * backup, every retry) carries `authorization: Bearer <token>`.
 */
import * as grpc from '@grpc/grpc-js';

/** A grpc-js interceptor that adds the token to each call's metadata. */
export function bearerToken(token: string): grpc.Interceptor {
  // Tokens travel in an HTTP/2 header: visible ASCII, no spaces (as the server's auth file requires).
  if (!/^[\x21-\x7e]+$/.test(token)) throw new TypeError('token must be visible ASCII characters without spaces');
  const header = `Bearer ${token}`;
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set('authorization', header);
        next(metadata, listener);
      },
    });
}
