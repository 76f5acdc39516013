/**
 * The deployment files, checked by running what they describe.
 *
 * docker-compose.yml is run without Docker, as plain processes on loopback,
 * with the services' exact commands and environments. Inside compose the
 * nodes reach each other by service name (n1, n2, n3) and could all use the
 * same ports; on one host they cannot. So the compose file gives each node
 * its own ports and interpolates only what must differ on a host, with
 * defaults for containers: QKV_LISTEN_HOST, QKV_ADVERTISE_HOST,
 * QKV_PORT_BLOCK and QKV_DATA_ROOT. This test renders the file with the real
 * `docker-compose config` (those set to 127.0.0.1, a free port block and a
 * temporary directory), then starts each service as its container would: the
 * image's ENTRYPOINT and the service's command, with the image's ENV under
 * the service's environment (both read from deploy/Dockerfile), from the
 * repository root, which the image's WORKDIR mirrors. Nothing is rewritten
 * after rendering. The compose health check runs the same way.
 *
 * docker-compose must be installed (.ci/run installs it): a missing tool
 * fails these tests rather than skipping them.
 *
 * deploy/examples goes through the config loader too. deploy/k8s is checked
 * by test/unit/deploy/k8s.test.ts.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAGS, envName, loadConfig } from '../../src/config/config.ts';
import type { Config } from '../../src/config/config.ts';
import { tlsCredentials } from '../../src/client/index.ts';
import { loadProtos } from '../../src/proto/loader.ts';
import { makeCerts } from '../../src/tls/certs.ts';
import {
  REPO_ROOT,
  blockPorts,
  composeVersion,
  containerArgv,
  findFreePortBlock,
  readImageConfig,
  record,
  renderCompose,
} from '../support/compose-files.ts';
import type { ComposeService, Env, ImageConfig, RenderedCompose } from '../support/compose-files.ts';

const execFileAsync = promisify(execFile);

const NODE_NAMES = ['n1', 'n2', 'n3'] as const;
/** The tls profile's services: the same members (ids n1, n2, n3) with TLS. */
const TLS_NAMES = ['tls-n1', 'tls-n2', 'tls-n3'] as const;
const KNOWN_ENV = new Set(FLAGS.map(({ flag }) => envName(flag)));
const COMPOSE_MISSING =
  'docker-compose is not installed. .ci/run installs it (apt-get install -y docker-compose, Debian bookworm ships 1.29.2); ' +
  'install it the same way to run these tests locally.';

function expectKnownVariables(env: Env, where: string): void {
  const unknown = Object.keys(env).filter((key) => key.startsWith('QUORUMKV_') && !KNOWN_ENV.has(key));
  expect(unknown, `${where}: QUORUMKV_* variables that \`quorumkv serve\` does not read`).toEqual([]);
}

/** What `quorumkv serve` would load from a container's argv and environment. */
function loadServeConfig(argv: readonly string[], env: Env): Config {
  const serve = argv.indexOf('serve');
  expect(serve, `'serve' in ${JSON.stringify(argv)}`).toBeGreaterThan(0);
  return loadConfig(argv.slice(serve + 1), env);
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

/** A published port as "HOST_IP:PUBLISHED:TARGET", from the short or the long syntax. */
function publishedPort(port: unknown): string {
  if (typeof port === 'string') return port.replace(/\/tcp$/, '');
  const long = record(port, 'port');
  return `${String(long['host_ip'] ?? '')}:${String(long['published'])}:${String(long['target'])}`;
}

/** A volume mount as "SOURCE:TARGET", from the short (docker-compose v1) or the long (v2) syntax. */
function volumeMount(volume: unknown): string {
  if (typeof volume === 'string') return volume.replace(/:rw$/, '');
  const long = record(volume, 'volume');
  return `${String(long['source'])}:${String(long['target'])}`;
}

describe('docker-compose.yml', () => {
  let image: ImageConfig;

  beforeAll(() => {
    if (composeVersion() === null) throw new Error(COMPOSE_MISSING);
    image = readImageConfig();
  });

  it('renders for containers: service names as hosts, one /data volume each, client ports on the host loopback', () => {
    const rendered = renderCompose({});
    const byDefault = [...rendered.services.values()].filter((service) => service.profiles.length === 0).map((service) => service.name);
    expect(byDefault.sort()).toEqual([...NODE_NAMES]);
    const clusters = new Set<string>();
    NODE_NAMES.forEach((name, i) => {
      const service = rendered.services.get(name) as ComposeService;
      expectKnownVariables(service.environment, `services.${name}.environment`);
      const config = loadServeConfig(containerArgv(image, service.command), { ...image.env, ...service.environment });
      expect(config.id).toBe(name);
      expect(config.clientAddr).toBe(`0.0.0.0:700${i + 1}`);
      expect(config.advertiseClientAddr).toBe(`${name}:700${i + 1}`);
      expect(config.advertisePeerAddr).toBe(`${name}:710${i + 1}`);
      expect(config.initialCluster.get(name)).toBe(config.advertisePeerAddr);
      expect(config.dataDir).toBe(`/data/${name}`);
      clusters.add(JSON.stringify([...config.initialCluster]));
      expect(service.volumes.map(volumeMount)).toEqual([`${name}-data:/data`]);
      expect(service.ports.map(publishedPort)).toEqual([`127.0.0.1:700${i + 1}:700${i + 1}`]);
      // The image's own HEALTHCHECK is the one this test runs through compose.
      expect(service.healthcheck).toEqual(image.healthcheck);
      expect(service.restart).toBe('unless-stopped');
    });
    expect(clusters.size, 'the same QUORUMKV_INITIAL_CLUSTER on every node').toBe(1);
    expect([...rendered.volumes].sort()).toEqual([...NODE_NAMES, ...TLS_NAMES].map((name) => `${name}-data`).sort());
  });

  it('has a tls profile: the same members with TLS from ./certs (read-only), their own ports, volumes and network', () => {
    const rendered = renderCompose({});
    const tlsServices = [...rendered.services.values()].filter((service) => service.profiles.includes('tls')).map((service) => service.name);
    expect(tlsServices.sort()).toEqual([...TLS_NAMES]);
    const clusters = new Set<string>();
    TLS_NAMES.forEach((name, i) => {
      const id = NODE_NAMES[i] as string;
      const service = rendered.services.get(name) as ComposeService;
      expect(service.profiles).toEqual(['tls']);
      expectKnownVariables(service.environment, `services.${name}.environment`);
      const config = loadServeConfig(containerArgv(image, service.command), { ...image.env, ...service.environment });
      expect(config.id).toBe(id);
      expect(config.tls).toEqual({ certFile: `/certs/${id}.pem`, keyFile: `/certs/${id}-key.pem`, caFile: '/certs/ca.pem' });
      expect(config.clientAddr).toBe(`0.0.0.0:800${i + 1}`);
      // Dialed by the names in the certificates (aliases on the tls network).
      expect(config.advertiseClientAddr).toBe(`${id}:800${i + 1}`);
      expect(config.advertisePeerAddr).toBe(`${id}:810${i + 1}`);
      expect(config.initialCluster.get(id)).toBe(config.advertisePeerAddr);
      clusters.add(JSON.stringify([...config.initialCluster]));
      expect(service.volumes.map(volumeMount)).toEqual([`${name}-data:/data`, `${path.join(REPO_ROOT, 'certs')}:/certs:ro`]);
      expect(service.ports.map(publishedPort)).toEqual([`127.0.0.1:800${i + 1}:800${i + 1}`]);
      expect(service.healthcheck).toEqual(image.healthcheck);
    });
    expect(clusters.size, 'the same QUORUMKV_INITIAL_CLUSTER on every tls node').toBe(1);
  });

  describe.each([
    { profile: 'default', services: NODE_NAMES, blockVariable: 'QKV_PORT_BLOCK' },
    { profile: 'tls', services: TLS_NAMES, blockVariable: 'QKV_TLS_PORT_BLOCK' },
  ] as const)('its $profile profile\'s three services run as processes on loopback', ({ profile, services: SERVICE_NAMES, blockVariable }) => {
    let protos: ReturnType<typeof loadProtos>;
    let root = '';
    let block = 0;
    let rendered: RenderedCompose;
    const nodes: RunningNode[] = [];
    const killAll = (): void => {
      for (const node of nodes) if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill('SIGKILL');
    };

    beforeAll(async () => {
      if (composeVersion() === null) throw new Error(COMPOSE_MISSING);
      protos = loadProtos();
      root = fs.mkdtempSync(path.join(os.tmpdir(), 'qkv-compose-'));
      block = await findFreePortBlock();
      const certsDir = path.join(root, 'certs');
      // What the compose file's comment says to run first (SANs include 127.0.0.1, which the loopback run dials).
      if (profile === 'tls') await makeCerts({ outDir: certsDir, nodes: [...NODE_NAMES], clients: ['admin'] });
      rendered = renderCompose({
        QKV_LISTEN_HOST: '127.0.0.1',
        QKV_ADVERTISE_HOST: '127.0.0.1',
        [blockVariable]: String(block),
        QKV_DATA_ROOT: root,
        QKV_CERTS_DIR: certsDir,
      });
      // A worker that dies without running afterAll must not leave nodes behind.
      process.on('exit', killAll);
    });

    afterAll(async () => {
      for (const node of nodes) node.close();
      killAll();
      await Promise.all(nodes.map((node) => Promise.race([node.exited, sleep(10_000)])));
      process.off('exit', killAll);
      if (root !== '') fs.rmSync(root, { recursive: true, force: true });
    });

    it('renders for one host: loopback only, ports in one free block, a data directory each', () => {
      const ports: number[] = [];
      for (const name of SERVICE_NAMES) {
        const service = rendered.services.get(name) as ComposeService;
        const config = loadServeConfig(containerArgv(image, service.command), { ...image.env, ...service.environment });
        for (const address of [config.clientAddr, config.peerAddr, config.httpAddr, config.advertiseClientAddr, config.advertisePeerAddr]) {
          expect(address.startsWith('127.0.0.1:'), address).toBe(true);
        }
        ports.push(portOf(config.clientAddr), portOf(config.peerAddr), portOf(config.httpAddr));
        expect(config.dataDir).toBe(path.join(root, config.id));
      }
      expect(ports.sort()).toEqual(blockPorts(block).sort());
    });

    it('elect a leader, replicate a write, report healthy and exit 0 on SIGTERM', async () => {
      for (const name of SERVICE_NAMES) {
        const service = rendered.services.get(name) as ComposeService;
        nodes.push(startNode(name, containerArgv(image, service.command), { ...image.env, ...service.environment }, protos));
      }
      const running = (): void => {
        for (const node of nodes) {
          if (node.child.exitCode !== null || node.child.signalCode !== null) {
            throw new Error(`${node.name} exited early (${String(node.child.exitCode ?? node.child.signalCode)}):\n${node.output()}`);
          }
        }
      };
      const allOutput = (): string => nodes.map((node) => `--- ${node.name}\n${node.output()}`).join('\n');

      // Every node names the same leader, and that node says it leads.
      const leader = await eventually('a leader every node agrees on', 60_000, running, allOutput, async () => {
        const statuses = await Promise.all(nodes.map((node) => unary<StatusResponse>(node.cluster, 'Status', {})));
        expect(statuses.map((status) => status.id)).toEqual([...NODE_NAMES]);
        const leaderId = statuses[0]?.leader_id ?? '';
        if (leaderId === '' || statuses.some((status) => status.leader_id !== leaderId)) return undefined;
        return statuses.find((status) => status.id === leaderId)?.role === 'LEADER' ? leaderId : undefined;
      });

      // What the Kubernetes readiness probe asks: gRPC health on the client port.
      for (const node of nodes) {
        await eventually(`${node.name} health SERVING`, 15_000, running, allOutput, async () => {
          const health = await unary<{ status: string }>(node.health, 'Check', { service: '' });
          return health.status === 'SERVING' ? true : undefined;
        });
      }

      // The compose health check, exactly as the service declares it.
      for (const name of SERVICE_NAMES) {
        const service = rendered.services.get(name) as ComposeService;
        const check = service.healthcheck as readonly string[];
        expect(check[0]).toBe('node');
        await execFileAsync(process.execPath, check.slice(1), { cwd: REPO_ROOT, env: nodeEnv({ ...image.env, ...service.environment }), timeout: 10_000 });
      }

      // Written through one follower, read through the other (both forward to the leader).
      const [writer, reader] = nodes.filter((node) => node.id !== leader) as [RunningNode, RunningNode];
      const key = 'compose-test';
      const value = Buffer.from(`written through ${writer.name}`);
      const set = await eventually(`Set through ${writer.name}`, 20_000, running, allOutput, () =>
        unary<{ applied: boolean }>(writer.kv, 'Set', { key, value }, 5_000),
      );
      expect(set.applied).toBe(true);
      const read = await eventually(`Get through ${reader.name}`, 10_000, running, allOutput, () =>
        unary<{ found: boolean; value: Buffer }>(reader.kv, 'Get', { key, consistency: 'LINEARIZABLE' }, 5_000),
      );
      expect(read.found).toBe(true);
      expect(Buffer.from(read.value).toString()).toBe(value.toString());
      // And every node applies it: a serializable read answers from the node's own state.
      for (const node of nodes) {
        await eventually(`${node.name} applies the write`, 10_000, running, allOutput, async () => {
          const local = await unary<{ found: boolean; value: Buffer }>(node.kv, 'Get', { key, consistency: 'SERIALIZABLE' });
          return local.found && Buffer.from(local.value).equals(value) ? true : undefined;
        });
      }

      for (const node of nodes) node.close();
      for (const node of nodes) node.child.kill('SIGTERM');
      // compose's stop_grace_period is 30 s: a node still running then would be killed.
      const exits = await Promise.all(nodes.map((node) => Promise.race([node.exited, sleep(30_000).then(() => null)])));
      nodes.forEach((node, i) => {
        expect(exits[i], `${node.name} exits within 30 s of SIGTERM:\n${node.output()}`).not.toBeNull();
        expect(exits[i], `${node.name} exit after SIGTERM:\n${node.output()}`).toEqual({ code: 0, signal: null });
      });
    }, 180_000);
  });
});

describe('deploy/Dockerfile', () => {
  it('runs `node bin/quorumkv.js serve` as a numeric non-root user, data on a /data volume, the three ports exposed', () => {
    const image = readImageConfig();
    expect(containerArgv(image, null)).toEqual(['node', 'bin/quorumkv.js', 'serve']);
    expect(image.user).toMatch(/^[1-9]\d*(:\d+)?$/);
    expect(image.volumes).toEqual(['/data']);
    expect(image.env['QUORUMKV_DATA_DIR']).toBe('/data');
    expect(image.exposed).toEqual([7001, 7101, 7201]);
    expect(image.healthcheck).toEqual(['node', 'deploy/healthcheck.mjs']);
    // The image is built from these paths: the entry point, its sources and the health check must exist.
    for (const file of ['bin/quorumkv.js', 'deploy/healthcheck.mjs', 'proto', 'scripts/build.js', 'src', 'package-lock.json']) {
      expect(fs.existsSync(path.join(REPO_ROOT, file)), file).toBe(true);
    }
  });
});

// --- processes and gRPC ------------------------------------------------------

interface StatusResponse {
  id: string;
  role: string;
  leader_id: string;
}

interface RunningNode {
  /** The compose service. */
  readonly name: string;
  /** Its member id. */
  readonly id: string;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly kv: grpc.Client;
  readonly cluster: grpc.Client;
  readonly health: grpc.Client;
  /** The last lines the process printed. */
  output(): string;
  close(): void;
}

/**
 * A container's environment has only what the image and the service set;
 * PATH stands in for the base image's own. Nothing else of the test
 * runner's environment (NODE_OPTIONS, QUORUMKV_*) leaks in.
 */
function nodeEnv(env: Env): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin', ...env };
}

function startNode(name: string, argv: readonly string[], env: Env, protos: ReturnType<typeof loadProtos>): RunningNode {
  // The image's `node` is this Node (both 20); everything after it is run as written.
  expect(argv[0]).toBe('node');
  const config = loadServeConfig(argv, env);
  const child = spawn(process.execPath, argv.slice(1), { cwd: REPO_ROOT, env: nodeEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const keep = (chunk: Buffer): void => {
    lines.push(...chunk.toString('utf8').split('\n').filter((line) => line !== ''));
    if (lines.length > 80) lines.splice(0, lines.length - 80);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  // As a client of this deployment would: TLS with the deployment's CA when the node has TLS on.
  const credentials = config.tls === null ? grpc.credentials.createInsecure() : tlsCredentials({ ca: config.tls.caFile });
  const target = config.advertiseClientAddr;
  const kv = new protos.clients.kv(target, credentials);
  const cluster = new protos.clients.cluster(target, credentials);
  const health = new protos.clients.health(target, credentials);
  return {
    name,
    id: config.id,
    child,
    exited,
    kv,
    cluster,
    health,
    output: () => lines.join('\n'),
    close: () => {
      kv.close();
      cluster.close();
      health.close();
    },
  };
}

type UnaryMethod = (
  request: object,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

function unary<T>(client: grpc.Client, method: string, request: object, timeoutMs = 2_000): Promise<T> {
  const call = (client as unknown as Record<string, UnaryMethod | undefined>)[method];
  if (call === undefined) return Promise.reject(new Error(`no method ${method}`));
  return new Promise<T>((resolve, reject) => {
    call.call(client, request, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error !== null) reject(error);
      else resolve(response as T);
    });
  });
}

/**
 * Retries `attempt` (an error or undefined means "not yet") until it returns
 * a value or `timeoutMs` passes. `check` runs first each round and its error
 * is not retried (a node that exited will not come back).
 */
async function eventually<T>(
  what: string,
  timeoutMs: number,
  check: () => void,
  context: () => string,
  attempt: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = 'none';
  for (;;) {
    check();
    try {
      const value = await attempt();
      if (value !== undefined) return value;
      last = 'not yet';
    } catch (error) {
      last = error instanceof Error ? error.message : error;
    }
    if (Date.now() >= deadline) throw new Error(`no ${what} within ${timeoutMs} ms (last: ${String(last)})\n${context()}`);
    await sleep(200);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- examples --------------------------------------------------------------------

describe('deploy/examples', () => {
  it('kv1.env with quorumkv.json configures member kv1 of a three-member cluster', () => {
    const examples = path.join(REPO_ROOT, 'deploy', 'examples');
    const env: Env = {};
    for (const line of fs.readFileSync(path.join(examples, 'kv1.env'), 'utf8').split('\n')) {
      if (line.trim() === '' || line.startsWith('#')) continue;
      // The subset both `docker run --env-file` and systemd read the same way.
      const match = /^([A-Z_][A-Z0-9_]*)=([^"'\s]*)$/.exec(line);
      expect(match, `kv1.env line '${line}'`).not.toBeNull();
      env[match?.[1] as string] = match?.[2] as string;
    }
    expectKnownVariables(env, 'kv1.env');
    expect(env['QUORUMKV_CONFIG']).toBe('/etc/quorumkv/quorumkv.json');
    const config = loadConfig([], { ...env, QUORUMKV_CONFIG: path.join(examples, 'quorumkv.json') });
    expect(config.id).toBe('kv1');
    expect(config.initialCluster.size).toBe(3);
    expect(config.initialCluster.get('kv1')).toBe(config.advertisePeerAddr);
    expect(config.clusterName).toBe('orders-kv');
    expect(config.maxMemoryBytes).toBe(2 * 1024 ** 3);
    expect(config.eviction).toBe('noeviction');
  });
});
