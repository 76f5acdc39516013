/**
 * `quorumkv certs`: a CA and the certificates a dev or docker-compose cluster
 * needs, made with node:crypto (keys) and the `openssl` CLI (signing; Node
 * cannot issue certificates). Node certificates: CN = member id, OU = node,
 * usable as server and client (peers dial each other). Client certificates:
 * CN = user name, OU = client.
 *
 * Files in the output directory: ca.pem, ca-key.pem, ID.pem, ID-key.pem per
 * node and NAME.pem, NAME-key.pem per client. Keys are written 0600. An
 * existing CA is reused (so certificates can be added later) and only
 * replaced when asked.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export class CertsError extends Error {
  readonly code = 'CERTS_FAILED';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CertsError';
  }
}

export interface CertsOptions {
  /** Where the files go (created if missing). */
  readonly outDir: string;
  /** Member ids: one node certificate each. */
  readonly nodes: readonly string[];
  /** User names: one client certificate each. */
  readonly clients?: readonly string[];
  /** Extra DNS names or IPs for every node certificate (what clients and forwarders dial). */
  readonly hosts?: readonly string[];
  /** Replace an existing CA (its key and certificate) instead of reusing it. */
  readonly newCa?: boolean;
  /** Validity of node and client certificates (default 825 days); the CA gets ten years. */
  readonly days?: number;
}

export interface CertsResult {
  readonly outDir: string;
  readonly caFile: string;
  readonly caKeyFile: string;
  /** Whether the CA was made now (false: an existing one signed the certificates). */
  readonly caCreated: boolean;
  readonly nodes: ReadonlyMap<string, CertFiles>;
  readonly clients: ReadonlyMap<string, CertFiles>;
}

export interface CertFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** Names that end up in file names and certificate subjects: no path separators, no DN syntax. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const HOST_PATTERN = /^(\*\.)?[A-Za-z0-9_.-]+$|^[0-9a-fA-F:.]+$/;

/** The file names a node or client certificate gets in the output directory. */
export function certFileNames(outDir: string, name: string): CertFiles {
  return { certFile: join(outDir, `${name}.pem`), keyFile: join(outDir, `${name}-key.pem`) };
}

export async function makeCerts(options: CertsOptions): Promise<CertsResult> {
  const outDir = resolve(options.outDir);
  const clients = options.clients ?? [];
  const hosts = options.hosts ?? [];
  const days = options.days ?? 825;
  for (const name of [...options.nodes, ...clients]) {
    if (!NAME_PATTERN.test(name)) throw new CertsError(`'${name}' is not a valid node or client name (1-63 letters, digits, '.', '_' or '-')`);
  }
  if (new Set([...options.nodes, ...clients, 'ca']).size !== options.nodes.length + clients.length + 1) {
    throw new CertsError(`node and client names must be distinct and not 'ca' (got nodes ${options.nodes.join(',')}, clients ${clients.join(',')})`);
  }
  for (const host of hosts) if (!HOST_PATTERN.test(host)) throw new CertsError(`--hosts: '${host}' is not a DNS name or an IP address`);
  if (!Number.isSafeInteger(days) || days < 1) throw new CertsError(`days must be a whole number >= 1 (got ${days})`);
  await assertOpenssl();

  mkdirSync(outDir, { recursive: true });
  const caFile = join(outDir, 'ca.pem');
  const caKeyFile = join(outDir, 'ca-key.pem');
  const caExists = existsSync(caKeyFile) || existsSync(caFile);
  let caCreated = false;
  if (caExists && options.newCa !== true) {
    if (!existsSync(caKeyFile) || !existsSync(caFile)) {
      throw new CertsError(`${outDir} has ${existsSync(caFile) ? 'ca.pem without ca-key.pem' : 'ca-key.pem without ca.pem'}: cannot sign with it (pass --new-ca to replace it)`);
    }
  } else {
    writeKey(caKeyFile);
    await openssl(['req', '-x509', '-new', '-key', caKeyFile, '-out', caFile, '-days', '3650', '-sha256', '-subj', '/O=quorumkv/CN=quorumkv CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    caCreated = true;
  }

  const work = mkdtempSync(join(tmpdir(), 'quorumkv-certs-'));
  try {
    const nodes = new Map<string, CertFiles>();
    for (const id of options.nodes) {
      const names = unique(['localhost', '127.0.0.1', id, ...hosts]);
      const files = certFileNames(outDir, id);
      await issue(work, { caFile, caKeyFile, days, subject: `/O=quorumkv/OU=node/CN=${id}`, usage: 'serverAuth,clientAuth', sans: names, ...files });
      nodes.set(id, files);
    }
    const users = new Map<string, CertFiles>();
    for (const name of clients) {
      const files = certFileNames(outDir, name);
      await issue(work, { caFile, caKeyFile, days, subject: `/O=quorumkv/OU=client/CN=${name}`, usage: 'clientAuth', sans: [], ...files });
      users.set(name, files);
    }
    return { outDir, caFile, caKeyFile, caCreated, nodes, clients: users };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

interface IssueRequest extends CertFiles {
  readonly caFile: string;
  readonly caKeyFile: string;
  readonly days: number;
  readonly subject: string;
  readonly usage: string;
  readonly sans: readonly string[];
}

async function issue(work: string, request: IssueRequest): Promise<void> {
  writeKey(request.keyFile);
  const csr = join(work, 'request.csr');
  const extensions = join(work, 'extensions.cnf');
  await openssl(['req', '-new', '-key', request.keyFile, '-out', csr, '-subj', request.subject]);
  const lines = ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', `extendedKeyUsage=${request.usage}`];
  if (request.sans.length > 0) lines.push(`subjectAltName=${request.sans.map((name) => (isIP(name) === 0 ? `DNS:${name}` : `IP:${name}`)).join(',')}`);
  writeFileSync(extensions, `${lines.join('\n')}\n`);
  // A random serial: re-issuing a certificate gives it a new one, which is how a client tells a reloaded certificate apart.
  await openssl(['x509', '-req', '-in', csr, '-CA', request.caFile, '-CAkey', request.caKeyFile, '-set_serial', `0x${serial()}`,
    '-days', String(request.days), '-sha256', '-extfile', extensions, '-out', request.certFile]);
  // The certificate must parse and chain to the CA; a broken openssl would otherwise be found only at the first handshake.
  const certificate = new X509Certificate(await readFile(request.certFile, 'utf8'));
  if (!certificate.checkIssued(new X509Certificate(await readFile(request.caFile, 'utf8')))) throw new CertsError(`${request.certFile} was not issued by ${request.caFile}`);
}

/** An EC P-256 key, written 0600 from the first byte on. */
function writeKey(file: string): void {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1', privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  rmSync(file, { force: true });
  writeFileSync(file, privateKey, { mode: 0o600 });
  // The mode above is filtered by the umask; a key must end up 0600 whatever it is.
  chmodSync(file, 0o600);
}

function serial(): string {
  const bytes = randomBytes(16);
  // Positive (top bit clear) and non-zero, as X.509 requires.
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)];
}

async function assertOpenssl(): Promise<void> {
  try {
    await execFileAsync('openssl', ['version']);
  } catch (error) {
    throw new CertsError(`the openssl command is needed to sign certificates and was not found (Debian/Ubuntu: apt-get install openssl): ${(error as Error).message}`, { cause: error });
  }
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new CertsError(`openssl ${args[0] ?? ''} failed: ${stderr.trim() || (error as Error).message}`, { cause: error });
  }
}
