/**
 * A node's TLS: its certificate, key and CA, loaded from PEM files and
 * reloadable (SIGHUP), as each port and each dialer needs:
 *   - client port: TLS; client certificates requested and checked against the
 *     CA when offered, required with --client-cert-auth (the client port's own
 *     server reads `material` at each handshake);
 *   - peer port: mutual TLS, a CA-signed client certificate required (which
 *     member it names is checked per stream by the transport);
 *   - dialing a peer: the node's own certificate presented, and the server's
 *     certificate must chain to the CA and name the member dialed (CN = id,
 *     OU = node), not a host name: peers are dialed by member id;
 *   - dialing a client port (forwarder, --join): CA and host name verified,
 *     the node's own certificate presented.
 *
 * The credentials take their material from this object through grpc-js's
 * CertificateProvider interface, so a reload reaches new handshakes on every
 * port and channel without rebuilding servers or clients; connections already
 * open keep the material they were made with.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { TlsFiles } from '../config/config.ts';

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** OU of a member's certificate; client (user) certificates carry OU=client. */
export const NODE_UNIT = 'node';
export const CLIENT_UNIT = 'client';

export class TlsError extends Error {
  readonly code = 'TLS_INVALID';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TlsError';
  }
}

/** What a certificate says about who holds it. */
export interface CertificateIdentity {
  readonly commonName: string;
  readonly organizationalUnit: string;
}

/** The loaded PEM files and what the node certificate says. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
  readonly serialNumber: string;
  readonly validTo: string;
  readonly fingerprint256: string;
}

/** The subject's CN and OU; null when either is missing or given more than once. */
export function certificateIdentity(certificate: Pick<PeerCertificate, 'subject'>): CertificateIdentity | null {
  const subject = certificate.subject as unknown as Record<string, string | string[] | undefined> | undefined;
  const commonName = subject?.['CN'];
  const organizationalUnit = subject?.['OU'];
  if (typeof commonName !== 'string' || commonName === '') return null;
  return { commonName, organizationalUnit: typeof organizationalUnit === 'string' ? organizationalUnit : '' };
}

/** The same for a parsed X509Certificate, whose subject is one `KEY=value` per line. */
export function x509Identity(certificate: X509Certificate): CertificateIdentity | null {
  const fields = new Map<string, string[]>();
  for (const line of certificate.subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields.set(line.slice(0, eq), [...(fields.get(line.slice(0, eq)) ?? []), line.slice(eq + 1)]);
  }
  const [commonName, ...moreNames] = fields.get('CN') ?? [];
  const [organizationalUnit, ...moreUnits] = fields.get('OU') ?? [];
  if (commonName === undefined || commonName === '' || moreNames.length > 0) return null;
  return { commonName, organizationalUnit: organizationalUnit !== undefined && moreUnits.length === 0 ? organizationalUnit : '' };
}

/**
 * A server call's client certificate, present only when it chained to the CA
 * (grpc-js leaves it out otherwise), with what it says.
 */
export function verifiedClientCertificate(call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate } }): { certificate: PeerCertificate; identity: CertificateIdentity | null } | null {
  const certificate = call.getAuthContext().sslPeerCertificate;
  return certificate === undefined ? null : { certificate, identity: certificateIdentity(certificate) };
}

/**
 * Why a certificate is not the node certificate of member `id`; null when it is.
 * Used on both sides of the peer port.
 */
export function memberCertificateProblem(identity: CertificateIdentity | null, id: string): string | null {
  if (identity === null) return `its certificate has no single subject CN (member certificates need CN=<member id>, OU=${NODE_UNIT})`;
  if (identity.organizationalUnit !== NODE_UNIT) {
    return `its certificate (CN=${identity.commonName}, OU=${identity.organizationalUnit || 'none'}) is not a node certificate (needs OU=${NODE_UNIT})`;
  }
  if (identity.commonName !== id) return `its certificate names member '${identity.commonName}', not '${id}'`;
  return null;
}

/** Reads and checks the three files: each parses, the key matches the certificate, the certificate chains to the CA. */
export function readTlsMaterial(files: TlsFiles): TlsMaterial {
  const read = (flag: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new TlsError(`cannot read --${flag} ${file}: ${(error as Error).message}`, { cause: error });
    }
  };
  const cert = read('cert', files.certFile);
  const key = read('key', files.keyFile);
  const ca = read('ca', files.caFile);
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch (error) {
    throw new TlsError(`--cert ${files.certFile} is not a PEM certificate: ${(error as Error).message}`, { cause: error });
  }
  // A bundle of CAs is allowed (a CA rotation trusts the old and the new one for a while).
  const caCertificates = pemCertificates(ca, `--ca ${files.caFile}`);
  try {
    if (!certificate.checkPrivateKey(createPrivateKey(key))) throw new Error('it does not belong to the certificate');
  } catch (error) {
    throw new TlsError(`--key ${files.keyFile} is not the private key of --cert ${files.certFile}: ${(error as Error).message}`, { cause: error });
  }
  try {
    // The whole set as TLS will use it: catches what the checks above do not (e.g. an unsupported key type).
    createSecureContext({ cert, key, ca });
  } catch (error) {
    throw new TlsError(`--cert, --key and --ca cannot be used for TLS: ${(error as Error).message}`, { cause: error });
  }
  // Signed by one of the CAs, or by an intermediate the cert file carries after the leaf (the handshake verifies that chain).
  const chain = pemCertificates(cert, `--cert ${files.certFile}`);
  const signedByCa = caCertificates.some((authority) => chain.some((link) => link.checkIssued(authority) && link.verify(authority.publicKey)));
  if (!signedByCa) {
    const authorities = caCertificates.map((authority) => oneLine(authority.subject)).join('; ');
    throw new TlsError(`--cert ${files.certFile} (issuer ${oneLine(certificate.issuer)}) was not issued by --ca ${files.caFile} (${authorities})`);
  }
  return { cert, key, ca, serialNumber: certificate.serialNumber, validTo: certificate.validTo, fingerprint256: certificate.fingerprint256 };
}

function oneLine(distinguishedName: string): string {
  return distinguishedName.replace(/\n/g, ', ');
}

/** Every certificate of a PEM bundle; throws TlsError naming `what` when there is none or one does not parse. */
function pemCertificates(bundle: Buffer, what: string): X509Certificate[] {
  const pems = bundle.toString('utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (pems.length === 0) throw new TlsError(`${what} is not a PEM certificate (no BEGIN CERTIFICATE block)`);
  return pems.map((pem) => {
    try {
      return new X509Certificate(pem);
    } catch (error) {
      throw new TlsError(`${what} is not a PEM certificate: ${(error as Error).message}`, { cause: error });
    }
  });
}

export class NodeTls implements CertificateProvider {
  private current: TlsMaterial;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  private constructor(
    readonly files: TlsFiles,
    readonly nodeId: string,
    material: TlsMaterial,
  ) {
    this.current = material;
  }

  /** Loads and checks the files; the certificate must be member `nodeId`'s (CN = id, OU = node). Throws TlsError. */
  static load(files: TlsFiles, nodeId: string): NodeTls {
    return new NodeTls(files, nodeId, NodeTls.readFor(files, nodeId));
  }

  private static readFor(files: TlsFiles, nodeId: string): TlsMaterial {
    const material = readTlsMaterial(files);
    const problem = memberCertificateProblem(x509Identity(new X509Certificate(material.cert)), nodeId);
    if (problem !== null) throw new TlsError(`--cert ${files.certFile} cannot serve member '${nodeId}': ${problem}; peers would refuse it`);
    return material;
  }

  get material(): TlsMaterial {
    return this.current;
  }

  /**
   * Re-reads the files; new handshakes use them from now on. Throws TlsError
   * (and keeps the material in use) when they are unreadable or invalid.
   */
  reload(): TlsMaterial {
    const material = NodeTls.readFor(this.files, this.nodeId);
    this.current = material;
    for (const listener of this.caListeners) listener({ caCertificate: material.ca });
    for (const listener of this.identityListeners) listener({ certificate: material.cert, privateKey: material.key });
    return material;
  }

  /** The peer port: mutual TLS; a handshake without a CA-signed certificate fails. */
  peerServerCredentials(): grpc.ServerCredentials {
    return grpc.experimental.createCertificateProviderServerCredentials(this, this, true);
  }

  /**
   * Dialing a peer. The TLS name grpc-js hands to checkServerIdentity is the
   * channel's 'grpc.ssl_target_name_override', which the peer transport sets
   * to the member id it dials: the server must present that member's certificate.
   */
  peerChannelCredentials(): grpc.ChannelCredentials {
    return grpc.experimental.createCertificateProviderChannelCredentials(this, this, {
      checkServerIdentity: (memberId, certificate) => {
        const problem = memberCertificateProblem(certificateIdentity(certificate), memberId);
        return problem === null ? undefined : new Error(`dialed member '${memberId}', but ${problem}`);
      },
    });
  }

  /** For the peer transport: why a caller's certificate does not prove it is member `claimedId`; null when it does. */
  readonly peerCertificateProblem = (certificate: PeerCertificate | undefined, claimedId: string): string | null =>
    certificate === undefined ? 'it presented no certificate signed by the cluster CA' : memberCertificateProblem(certificateIdentity(certificate), claimedId);

  /** Dialing a member's client port (forwarder, --join): the usual host name check against the certificate's SANs. */
  clientChannelCredentials(): grpc.ChannelCredentials {
    return grpc.experimental.createCertificateProviderChannelCredentials(this, this);
  }

  // CertificateProvider: grpc-js registers listeners when a server or channel starts using the credentials.
  // The first update goes out on the next tick: grpc-js's server adds its watcher only after registering.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => {
      if (this.caListeners.has(listener)) listener({ caCertificate: this.current.ca });
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => {
      if (this.identityListeners.has(listener)) listener({ certificate: this.current.cert, privateKey: this.current.key });
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}
