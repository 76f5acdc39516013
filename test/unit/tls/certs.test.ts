/** `quorumkv certs` and the TLS files a node loads: real openssl, real files in temp dirs. */
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CertsError, makeCerts } from '../../../src/tls/certs.ts';
import { NodeTls, TlsError, readTlsMaterial } from '../../../src/tls/node-tls.ts';
import { REPO_ROOT } from '../../support/cluster-harness.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'qkv-certs-'));
  dirs.push(dir);
  return dir;
}

function opensslVerify(ca: string, cert: string, purpose: 'sslserver' | 'sslclient'): string {
  return execFileSync('openssl', ['verify', '-CAfile', ca, '-purpose', purpose, cert], { encoding: 'utf8' }).trim();
}

function text(cert: string): string {
  return execFileSync('openssl', ['x509', '-in', cert, '-noout', '-text'], { encoding: 'utf8' });
}

describe('quorumkv certs', () => {
  it('makes a CA, node certificates (server and client) and client certificates that openssl verifies', () => {
    const out = join(tempDir(), 'certs');
    const run = spawnSync(process.execPath, [join(REPO_ROOT, 'bin', 'quorumkv.js'), 'certs', '--out', out, '--nodes', 'n1,n2', '--clients', 'admin', '--hosts', 'kv.example,10.1.2.3'], {
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('made a new CA');
    const ca = join(out, 'ca.pem');
    for (const id of ['n1', 'n2']) {
      expect(opensslVerify(ca, join(out, `${id}.pem`), 'sslserver')).toBe(`${join(out, `${id}.pem`)}: OK`);
      expect(opensslVerify(ca, join(out, `${id}.pem`), 'sslclient')).toBe(`${join(out, `${id}.pem`)}: OK`);
      const cert = new X509Certificate(readFileSync(join(out, `${id}.pem`)));
      expect(cert.subject.split('\n')).toEqual(['O=quorumkv', 'OU=node', `CN=${id}`]);
      expect(cert.subjectAltName).toBe(`DNS:localhost, IP Address:127.0.0.1, DNS:${id}, DNS:kv.example, IP Address:10.1.2.3`);
    }
    expect(opensslVerify(ca, join(out, 'admin.pem'), 'sslclient')).toBe(`${join(out, 'admin.pem')}: OK`);
    const admin = new X509Certificate(readFileSync(join(out, 'admin.pem')));
    expect(admin.subject.split('\n')).toEqual(['O=quorumkv', 'OU=client', 'CN=admin']);
    expect(text(join(out, 'admin.pem'))).toMatch(/Extended Key Usage: *\n *TLS Web Client Authentication\n/);
    expect(new X509Certificate(readFileSync(ca)).ca).toBe(true);
    for (const key of ['ca-key.pem', 'n1-key.pem', 'n2-key.pem', 'admin-key.pem']) {
      expect((statSync(join(out, key)).mode & 0o777).toString(8), key).toBe('600');
    }
  });

  it('signs later certificates with the existing CA, and replaces the CA only with newCa', async () => {
    const out = tempDir();
    const first = await makeCerts({ outDir: out, nodes: ['n1'] });
    expect(first.caCreated).toBe(true);
    const caKey = readFileSync(first.caKeyFile);
    const oldSerial = new X509Certificate(readFileSync(join(out, 'n1.pem'))).serialNumber;
    const second = await makeCerts({ outDir: out, nodes: ['n1', 'n4'] });
    expect(second.caCreated).toBe(false);
    expect(readFileSync(first.caKeyFile)).toEqual(caKey);
    expect(opensslVerify(first.caFile, join(out, 'n4.pem'), 'sslserver')).toContain('OK');
    // Re-issued: a new serial, the same CA.
    expect(new X509Certificate(readFileSync(join(out, 'n1.pem'))).serialNumber).not.toBe(oldSerial);
    const third = await makeCerts({ outDir: out, nodes: ['n1'], newCa: true });
    expect(third.caCreated).toBe(true);
    expect(readFileSync(first.caKeyFile)).not.toEqual(caKey);
  });

  it('refuses bad names and a CA certificate without its key', async () => {
    const out = tempDir();
    await expect(makeCerts({ outDir: out, nodes: ['../n1'] })).rejects.toThrow("'../n1' is not a valid node or client name");
    await expect(makeCerts({ outDir: out, nodes: ['n1'], clients: ['n1'] })).rejects.toThrow(CertsError);
    await expect(makeCerts({ outDir: out, nodes: ['n1'], hosts: ['a b'] })).rejects.toThrow("--hosts: 'a b' is not a DNS name or an IP address");
    await makeCerts({ outDir: out, nodes: [] });
    unlinkSync(join(out, 'ca-key.pem'));
    await expect(makeCerts({ outDir: out, nodes: ['n1'] })).rejects.toThrow('has ca.pem without ca-key.pem: cannot sign with it (pass --new-ca to replace it)');
    expect(existsSync(join(out, 'n1.pem'))).toBe(false);
  });
});

describe('a node\'s TLS files', () => {
  it('load when they are member n1\'s, and refuse another member\'s, a client\'s, a wrong key, another CA and missing files', async () => {
    const out = tempDir();
    const other = tempDir();
    await makeCerts({ outDir: out, nodes: ['n1', 'n2'], clients: ['admin'] });
    await makeCerts({ outDir: other, nodes: ['n1'] });
    const files = (name: string, ca = join(out, 'ca.pem')) => ({ certFile: join(out, `${name}.pem`), keyFile: join(out, `${name}-key.pem`), caFile: ca });

    const tls = NodeTls.load(files('n1'), 'n1');
    expect(tls.material.serialNumber).toBe(new X509Certificate(readFileSync(join(out, 'n1.pem'))).serialNumber);
    expect(() => NodeTls.load(files('n2'), 'n1')).toThrow("cannot serve member 'n1': its certificate names member 'n2', not 'n1'");
    expect(() => NodeTls.load(files('admin'), 'admin')).toThrow('is not a node certificate (needs OU=node)');
    expect(() => readTlsMaterial({ ...files('n1'), keyFile: join(out, 'n2-key.pem') })).toThrow(/--key .*n2-key.pem is not the private key of --cert .*n1.pem/);
    expect(() => readTlsMaterial(files('n1', join(other, 'ca.pem')))).toThrow(/was not issued by --ca/);
    expect(() => readTlsMaterial({ ...files('n1'), caFile: join(out, 'missing.pem') })).toThrow(/cannot read --ca .*missing.pem/);
    expect(() => readTlsMaterial(files('n1'))).not.toThrow();
    // A CA bundle (old and new CA during a rotation) verifies certificates of either.
    writeFileSync(join(other, 'bundle.pem'), Buffer.concat([readFileSync(join(other, 'ca.pem')), readFileSync(join(out, 'ca.pem'))]));
    expect(() => readTlsMaterial(files('n1', join(other, 'bundle.pem')))).not.toThrow();

    // A reload with broken files throws and keeps what was loaded; a good one takes the new files.
    const serial = tls.material.serialNumber;
    copyFileSync(join(out, 'n1.pem'), join(out, 'n1.pem.bak'));
    writeFileSync(join(out, 'n1.pem'), 'garbage');
    expect(() => tls.reload()).toThrow(TlsError);
    expect(tls.material.serialNumber).toBe(serial);
    await makeCerts({ outDir: out, nodes: ['n1'] });
    expect(tls.reload().serialNumber).not.toBe(serial);
  });
});
