/**
 * TLS end to end: real `quorumkv serve` processes started with --cert/--key/--ca
 * (certificates from the real `quorumkv certs` code), real gRPC on 127.0.0.1.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/qkv-main.ts';
import { QuorumClient } from '../../src/client/index.ts';
import { NodeTls } from '../../src/tls/node-tls.ts';
import { INSTALL_SNAPSHOT_PATH, SEND_PATH, passBuffer } from '../../src/transport/service.ts';
import { encodeBatch } from '../../src/transport/codec.ts';
import { METADATA_FROM, METADATA_TO } from '../../src/transport/peer-sender.ts';
import { GrpcError, NodeClient, TestCluster, bytes, eventually, sleep, text } from '../support/cluster-harness.ts';
import { listServices } from '../support/reflection.ts';
import { TestCerts } from '../support/test-certs.ts';

/** The serial number of the certificate a new TLS connection to `port` is served (presenting `identity` for mTLS). */
function servedSerial(port: number, ca: Buffer, identity?: { cert: Buffer; key: Buffer }): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, ...identity, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      const serial = socket.getPeerCertificate().serialNumber.toUpperCase();
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', reject);
  });
}


/** A raw Raft stream (Send unless another path) to member `target`'s peer port, claiming to come from `claimedFrom`; resolves with the answer. */
function peerSend(port: number, target: string, credentials: grpc.ChannelCredentials, claimedFrom: string, batch: Buffer | null, path = SEND_PATH): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials, { 'grpc.ssl_target_name_override': target });
  const metadata = new grpc.Metadata();
  metadata.set(METADATA_FROM, claimedFrom);
  metadata.set(METADATA_TO, target);
  return new Promise((resolve) => {
    const call = client.makeClientStreamRequest<Buffer, Buffer>(path, passBuffer, passBuffer, metadata, { deadline: Date.now() + 5000 }, (error) => {
      client.close();
      resolve(error);
    });
    if (batch !== null) call.write(batch);
    call.end();
  });
}

describe('a TLS cluster', () => {
  let cluster: TestCluster;
  let certs: TestCerts;
  let ca: Buffer;

  beforeAll(async () => {
    cluster = await TestCluster.start({ size: 3, tls: true });
    certs = cluster.certs as TestCerts;
    ca = readFileSync(certs.caFile);
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it('refuses a plaintext client', async () => {
    const plaintext = new NodeClient(`127.0.0.1:${cluster.spec('n1').clientPort}`);
    try {
      const error = await plaintext.call('Status', {}, 2000).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(GrpcError);
      expect((error as GrpcError).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      plaintext.close();
    }
  });

  it('serves KV to a client that has only the CA, through the leader and through a follower (forwarded over TLS)', async () => {
    const leader = await cluster.waitForLeader();
    const follower = ['n1', 'n2', 'n3'].find((id) => id !== leader) as string;
    const caOnly = await certs.credentials(null);
    const viaFollower = new NodeClient(`127.0.0.1:${cluster.spec(follower).clientPort}`, caOnly);
    const viaLeader = new NodeClient(`127.0.0.1:${cluster.spec(leader).clientPort}`, caOnly);
    try {
      expect((await viaFollower.call('Set', { key: 'tls-key', value: bytes('through a follower') }))['applied']).toBe(true);
      const read = await viaLeader.call('Get', { key: 'tls-key', consistency: 'LINEARIZABLE' });
      expect(text(read['value'])).toBe('through a follower');
      expect((await viaLeader.call('Set', { key: 'tls-key', value: bytes('through the leader') }))['applied']).toBe(true);
      expect(text((await viaFollower.call('Get', { key: 'tls-key', consistency: 'LINEARIZABLE' }))['value'])).toBe('through the leader');
    } finally {
      viaFollower.close();
      viaLeader.close();
    }

    // The library client too, with `tls: { ca }` (a file path) and a client certificate (PEM buffers).
    const app = await certs.client('app');
    const client = new QuorumClient({
      endpoints: [`127.0.0.1:${cluster.spec(follower).clientPort}`],
      tls: { ca: certs.caFile, cert: readFileSync(app.certFile), key: readFileSync(app.keyFile) },
    });
    try {
      await client.set('library', 'over tls');
      expect(text(await client.get('library'))).toBe('over tls');
    } finally {
      client.close();
    }
  });

  it('serves qkv with --cacert (or QKV_CACERT), one-shot, cluster commands and the REPL', async () => {
    const endpoints = ['--endpoints', `127.0.0.1:${cluster.spec('n2').clientPort}`];
    const admin = await certs.client('admin');
    const run = async (argv: string[], env: Record<string, string> = {}, input?: string) => {
      const stdin = new PassThrough();
      if (input !== undefined) stdin.end(input);
      let stdout = '';
      let stderr = '';
      const out = new PassThrough().on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      const err = new PassThrough().on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await main({ argv, env: { QKV_HISTORY_FILE: join(certs.dir, 'history'), ...env }, stdin, stdout: out, stderr: err, interactive: false, homeDir: certs.dir });
      return { code, stdout, stderr };
    };
    expect(await run([...endpoints, '--cacert', certs.caFile, 'set', 'cli', 'over tls'])).toEqual({ code: 0, stdout: 'OK\n', stderr: '' });
    expect(await run([...endpoints, 'get', 'cli'], { QKV_CACERT: certs.caFile, QKV_CERT: admin.certFile, QKV_KEY: admin.keyFile })).toEqual({ code: 0, stdout: 'over tls\n', stderr: '' });
    const members = await run([...endpoints, '--cacert', certs.caFile, 'cluster', 'members']);
    expect(members.code, members.stderr).toBe(0);
    expect(members.stdout).toMatch(/n1[\s\S]*n2[\s\S]*n3/);
    const repl = await run([...endpoints, '--cacert', certs.caFile], {}, 'get cli\n');
    expect(repl.stdout).toContain('over tls');
    // Without the CA the same command cannot connect.
    const plaintext = await run([...endpoints, '--timeout', '1500', 'get', 'cli']);
    expect(plaintext.code).toBe(1);
    expect(plaintext.stderr).toMatch(/^\(error\) (UNAVAILABLE|DEADLINE_EXCEEDED)/);
  });

  it('answers server reflection over TLS to a client with only the CA (what grpcurl -cacert uses)', async () => {
    const services = await listServices(`127.0.0.1:${cluster.spec('n2').clientPort}`, await certs.credentials(null));
    expect(services).toEqual(expect.arrayContaining(['quorumkv.v1.KV', 'quorumkv.v1.Cluster', 'grpc.health.v1.Health']));
  });

  it('refuses on the peer port a member certificate used to claim another member id, and a batch sent as another member', async () => {
    const n2 = NodeTls.load({ ...(await certs.node('n2')), caFile: certs.caFile }, 'n2').peerChannelCredentials();
    const port = cluster.spec('n1').peerPort;
    const impostor = await peerSend(port, 'n1', n2, 'n3', null);
    expect(impostor?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(impostor?.details).toBe("member 'n1' refuses a stream claiming to come from member 'n3': its certificate names member 'n2', not 'n3'");
    const snapshot = await peerSend(port, 'n1', n2, 'n3', null, INSTALL_SNAPSHOT_PATH);
    expect(snapshot?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(snapshot?.details).toContain("its certificate names member 'n2', not 'n3'");

    const clusterId = (await cluster.client('n1').call('Status'))['cluster_id'] as string;
    const forged = encodeBatch(clusterId, 'n3', 'n1', [{ type: 'heartbeatResp', from: 'n3', to: 'n1', term: 1, readRound: 0 }]);
    const asOther = await peerSend(port, 'n1', n2, 'n2', forged);
    expect(asOther?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(asOther?.details).toContain("member 'n2' (by its certificate) sent a message as 'n3'");

    // A client certificate (OU=client) is no member's, whatever its CN.
    const admin = await certs.client('admin');
    const asClient = grpc.credentials.createSsl(ca, readFileSync(admin.keyFile), readFileSync(admin.certFile), { checkServerIdentity: () => undefined });
    const refused = await peerSend(port, 'n1', asClient, 'admin', null);
    expect(refused?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(refused?.details).toContain('is not a node certificate (needs OU=node)');
  });

  it('takes a new member over TLS: AddMember forwarded by a follower, --join asking a client port, the learner catching up', async () => {
    const n4 = await cluster.newSpec('n4');
    const leader = await cluster.waitForLeader();
    const follower = ['n1', 'n2', 'n3'].find((id) => id !== leader) as string;
    await cluster.client(follower).call('AddMember', { id: 'n4', peer_address: `127.0.0.1:${n4.peerPort}`, client_address: `127.0.0.1:${n4.clientPort}` });
    expect((await cluster.client(leader).call('Set', { key: 'before-join', value: bytes('seen by n4') }))['applied']).toBe(true);
    cluster.launch(n4, ['--join', `127.0.0.1:${cluster.spec(follower).clientPort}`]);
    await eventually('n4 catches up', 30_000, async () => {
      const members = (await cluster.client(leader).call('Members'))['members'] as Record<string, unknown>[];
      return members.find((m) => m['id'] === 'n4')?.['lag_entries'] === 0 ? true : undefined;
    });
    const local = await cluster.client('n4').call('Get', { key: 'before-join', consistency: 'SERIALIZABLE' });
    expect(text(local['value'])).toBe('seen by n4');
    await cluster.client(leader).call('RemoveMember', { id: 'n4' });
    await cluster.kill('n4');
  }, 60_000);

  it('reloads its certificate on SIGHUP without a restart, and keeps the old one when the new files are broken', async () => {
    const n1 = cluster.processes.get('n1');
    if (n1 === undefined) throw new Error('no n1');
    const { clientPort, peerPort } = cluster.spec('n1');
    const files = await certs.node('n1');
    const n2Files = await certs.node('n2');
    const asN2 = { cert: readFileSync(n2Files.certFile), key: readFileSync(n2Files.keyFile) };
    const before = await servedSerial(clientPort, ca);
    expect(await servedSerial(peerPort, ca, asN2)).toBe(before);

    writeFileSync(files.certFile, 'not a certificate\n');
    n1.child.kill('SIGHUP');
    await eventually('n1 logs the failed reload', 10_000, async () => (n1.output().includes('reload failed') ? true : undefined));
    expect(n1.output()).toContain(`--cert ${files.certFile} is not a PEM certificate`);
    expect(await servedSerial(clientPort, ca)).toBe(before);

    const reissued = await certs.reissueNode('n1');
    const expected = new X509Certificate(readFileSync(reissued.certFile)).serialNumber.toUpperCase();
    expect(expected).not.toBe(before);
    n1.child.kill('SIGHUP');
    await eventually('the client port serves the re-issued certificate', 10_000, async () => ((await servedSerial(clientPort, ca)) === expected ? true : undefined));
    expect(await servedSerial(peerPort, ca, asN2)).toBe(expected);
    // The same process all along, still a working member.
    expect(n1.child.exitCode).toBeNull();
    const client = new NodeClient(`127.0.0.1:${clientPort}`, await certs.credentials(null));
    try {
      expect((await client.call('Set', { key: 'after-reload', value: bytes('yes') }))['applied']).toBe(true);
    } finally {
      client.close();
    }
  });

  it('keeps out a member whose certificate comes from another CA: its streams are refused, it never leads, the others keep serving', async () => {
    const foreign = await TestCerts.create(join(certs.dir, 'foreign'));
    const impostorFiles = await foreign.node('n3');
    await cluster.kill('n3');
    const impostor = cluster.launch(cluster.spec('n3'), [
      '--initial-cluster', cluster.initialCluster,
      '--cert', impostorFiles.certFile, '--key', impostorFiles.keyFile, '--ca', foreign.caFile,
    ]);
    const leader = await cluster.waitForLeader(20_000, ['n1', 'n2']);
    const termBefore = (await cluster.client(leader).call('Status'))['term'];

    // Its side: the members' certificates do not chain to its CA, and they drop its handshakes.
    await eventually('the foreign node logs the refusal', 20_000, async () => (/TLS handshake with peer failed/.test(impostor.output()) ? true : undefined));
    expect(impostor.output()).toContain('self-signed certificate in certificate chain');

    const asImpostor = new NodeClient(`127.0.0.1:${cluster.spec('n3').clientPort}`, await foreign.credentials(null));
    try {
      for (let round = 0; round < 20; round++) {
        const written = `round ${round}`;
        expect((await cluster.client(leader).call('Set', { key: 'foreign-ca', value: bytes(written) }))['applied']).toBe(true);
        const status = await asImpostor.call('Status');
        expect(status['role']).not.toBe('LEADER');
        const local = await asImpostor.call('Get', { key: 'foreign-ca', consistency: 'SERIALIZABLE' });
        expect(local['found']).toBe(false);
        await sleep(200);
      }
    } finally {
      asImpostor.close();
    }
    // Its elections never reached the members: same leader, same term.
    expect(await cluster.waitForLeader(5_000, ['n1', 'n2'])).toBe(leader);
    expect((await cluster.client(leader).call('Status'))['term']).toBe(termBefore);
  }, 60_000);
});

describe('a TLS node with --client-cert-auth', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await TestCluster.start({ size: 1, tls: true, flags: ['--client-cert-auth'] });
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it('serves a client presenting a certificate from its CA, and refuses one with only the CA', async () => {
    const certs = cluster.certs as TestCerts;
    // The harness's own client presents user admin's certificate.
    expect((await cluster.client('n1').call('Set', { key: 'k', value: bytes('v') }))['applied']).toBe(true);
    const caOnly = new NodeClient(`127.0.0.1:${cluster.spec('n1').clientPort}`, await certs.credentials(null));
    try {
      const error = await caOnly.call('Get', { key: 'k' }, 2000).then(
        () => null,
        (e: unknown) => e,
      );
      expect((error as GrpcError).code).toBe(grpc.status.UNAVAILABLE);
    } finally {
      caOnly.close();
    }
  });
});
