/**
 * Certificates for TLS test clusters, made with the real `quorumkv certs`
 * code (src/tls/certs.ts) in a directory the caller owns and removes. One CA
 * per TestCerts; node and client certificates are issued on demand and
 * cached, so a cluster's nodes and clients share the CA.
 */
import { mkdirSync } from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import { tlsCredentials } from '../../src/client/index.ts';
import { certFileNames, makeCerts } from '../../src/tls/certs.ts';
import type { CertFiles } from '../../src/tls/certs.ts';

export type { CertFiles };

export class TestCerts {
  private readonly issued = new Map<string, Promise<CertFiles>>();

  private constructor(
    readonly dir: string,
    readonly caFile: string,
  ) {}

  /** A new CA in `dir`. */
  static async create(dir: string): Promise<TestCerts> {
    mkdirSync(dir, { recursive: true });
    const result = await makeCerts({ outDir: dir, nodes: [], newCa: true });
    return new TestCerts(dir, result.caFile);
  }

  /** Member `id`'s certificate (CN = id, OU = node; SANs localhost, 127.0.0.1, id), issued once. */
  node(id: string): Promise<CertFiles> {
    return this.issue(`node ${id}`, () => makeCerts({ outDir: this.dir, nodes: [id] }).then(() => certFileNames(this.dir, id)));
  }

  /** User `name`'s client certificate (CN = name, OU = client), issued once. */
  client(name: string): Promise<CertFiles> {
    return this.issue(`client ${name}`, () => makeCerts({ outDir: this.dir, nodes: [], clients: [name] }).then(() => certFileNames(this.dir, name)));
  }

  /** Issues member `id`'s certificate again: same name and CA, a new key and serial. */
  async reissueNode(id: string): Promise<CertFiles> {
    await makeCerts({ outDir: this.dir, nodes: [id] });
    return certFileNames(this.dir, id);
  }

  /** `quorumkv serve` flags for member `id`. */
  async serveFlags(id: string): Promise<string[]> {
    const files = await this.node(id);
    return ['--cert', files.certFile, '--key', files.keyFile, '--ca', this.caFile];
  }

  /** Credentials trusting this CA; presenting user `user`'s client certificate unless null. */
  async credentials(user: string | null): Promise<grpc.ChannelCredentials> {
    if (user === null) return tlsCredentials({ ca: this.caFile });
    const files = await this.client(user);
    return tlsCredentials({ ca: this.caFile, cert: files.certFile, key: files.keyFile });
  }

  private issue(key: string, make: () => Promise<CertFiles>): Promise<CertFiles> {
    // One at a time: makeCerts of the same directory must not run concurrently (they share the CA's serial state and temp names).
    let files = this.issued.get(key);
    if (files === undefined) {
      files = this.queue.then(make);
      this.queue = files.then(
        () => undefined,
        () => undefined,
      );
      this.issued.set(key, files);
    }
    return files;
  }

  private queue: Promise<void> = Promise.resolve();
}
