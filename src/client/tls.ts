/** TLS for the client: the CA that signed the cluster's certificates, and optionally a client certificate. */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';

/** Each item is PEM contents (a Buffer) or the path of a PEM file (a string). */
export interface ClientTls {
  /** The CA the servers' certificates must chain to. */
  readonly ca: Buffer | string;
  /** A client certificate (CN = user name, OU = client) and its key, for mTLS client authentication. */
  readonly cert?: Buffer | string;
  readonly key?: Buffer | string;
}

/** Channel credentials for `tls`; throws naming the file that cannot be read or the half of a pair that is missing. */
export function tlsCredentials(tls: ClientTls): grpc.ChannelCredentials {
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new RangeError(`tls.cert and tls.key go together: ${tls.cert === undefined ? 'cert' : 'key'} is missing`);
  }
  const pem = (name: string, item: Buffer | string): Buffer => {
    if (Buffer.isBuffer(item)) return item;
    try {
      return readFileSync(item);
    } catch (error) {
      throw new RangeError(`cannot read tls.${name} ${item}: ${(error as Error).message}`, { cause: error });
    }
  };
  return grpc.credentials.createSsl(
    pem('ca', tls.ca),
    tls.key === undefined ? null : pem('key', tls.key),
    tls.cert === undefined ? null : pem('cert', tls.cert),
  );
}
