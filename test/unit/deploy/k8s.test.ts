/**
 * deploy/k8s, as the README's Kubernetes sections tell a user to apply it:
 * the plaintext manifests (`-f deploy/k8s/`) and the TLS variant (the shared
 * Services and PDB with `-f deploy/k8s/tls/`). The `kubectl apply` lines are
 * read from the README, so the files checked are the files applied.
 *
 * Every manifest is parsed and cross-checked (names, selectors, ports,
 * probes, volumes); every pod's environment, resolved as the kubelet would,
 * goes through the real config loader after the StatefulSet's start script
 * has run in /bin/sh with a stand-in `node` that reports its arguments. For
 * the TLS variant, the README's own commands (`quorumkv certs`, the `kubectl
 * create secret` lines, the users.json heredoc) are run against temp dirs
 * that stand in for the mounted Secrets: the real certs code, TLS loader and
 * auth-file loader must accept what each pod would find, and each node
 * certificate must pass the host-name check a client makes for every address
 * the manifests dial.
 */
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkServerIdentity } from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { FLAGS, envName, loadConfig } from '../../../src/config/config.ts';
import type { Config } from '../../../src/config/config.ts';
import { loadAuthFile } from '../../../src/server/auth.ts';
import { makeCerts } from '../../../src/tls/certs.ts';
import { NodeTls, NODE_UNIT, x509Identity } from '../../../src/tls/node-tls.ts';
import { REPO_ROOT, readImageConfig, record, resolvePodEnv, stringList } from '../../support/compose-files.ts';
import type { Env } from '../../support/compose-files.ts';

const K8S_DIR = path.join(REPO_ROOT, 'deploy', 'k8s');
const KNOWN_ENV = new Set(FLAGS.map(({ flag }) => envName(flag)));
/** What kubectl reads from a directory given to -f (without -R: not its subdirectories). */
const MANIFEST_FILE = /\.(ya?ml|json)$/;

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

// --- the README's commands ---------------------------------------------------------

/** The text under a README heading, up to the next heading of any level (a `#` line inside a code block is a shell comment). */
function readmeSection(heading: string): string {
  const lines = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8').split('\n');
  const start = lines.indexOf(heading);
  if (start === -1) throw new Error(`README.md has no '${heading}' section`);
  const section: string[] = [];
  let inCode = false;
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('```')) inCode = !inCode;
    else if (!inCode && /^#{1,6} /.test(line)) break;
    section.push(line);
  }
  return section.join('\n');
}

/** The section's ```sh blocks as one command per entry: continuation lines joined, comments and blank lines dropped. */
function shellCommands(section: string): string[] {
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] as string);
  return blocks
    .flatMap((block) => block.replace(/\\\n\s*/g, '').split('\n'))
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

function commandStarting(commands: readonly string[], prefix: string): string {
  const found = commands.filter((command) => command.startsWith(prefix));
  expect(found, `one README command starting '${prefix}'`).toHaveLength(1);
  return found[0] as string;
}

/** The values of a repeated option in a command, as `-f X`, `--from-file=X` or `--from-file X`. */
function optionValues(command: string, option: string): string[] {
  const words = command.split(/\s+/);
  const values: string[] = [];
  words.forEach((word, i) => {
    if (word === option && words[i + 1] !== undefined) values.push(words[i + 1] as string);
    else if (word.startsWith(`${option}=`)) values.push(word.slice(option.length + 1));
  });
  return values;
}

/** The files one `kubectl apply -f ...` line applies, relative to the repository. */
function appliedFiles(applyCommand: string): string[] {
  return optionValues(applyCommand, '-f').flatMap((target) => {
    const full = path.join(REPO_ROOT, target);
    if (!fs.statSync(full).isDirectory()) return [target];
    return fs.readdirSync(full).filter((file) => MANIFEST_FILE.test(file) && fs.statSync(path.join(full, file)).isFile()).sort().map((file) => path.join(target, file));
  });
}

// --- manifests ---------------------------------------------------------------------

interface Manifest {
  readonly file: string;
  readonly kind: string;
  readonly name: string;
  readonly body: Record<string, unknown>;
}

function loadManifests(files: readonly string[]): Manifest[] {
  const manifests: Manifest[] = [];
  for (const file of files) {
    for (const document of parseAllDocuments(fs.readFileSync(path.join(REPO_ROOT, file), 'utf8'))) {
      if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map((e) => e.message).join('; ')}`);
      const body = record(document.toJS(), `a document of ${file}`);
      const metadata = record(body['metadata'], `${file}: metadata`);
      if (typeof body['apiVersion'] !== 'string' || typeof body['kind'] !== 'string' || typeof metadata['name'] !== 'string') {
        throw new Error(`${file}: every document needs apiVersion, kind and metadata.name`);
      }
      manifests.push({ file, kind: body['kind'], name: metadata['name'], body });
    }
  }
  return manifests;
}

/** Follows a path of keys and list indexes through parsed YAML. */
function at(value: unknown, ...keys: Array<string | number>): unknown {
  let node = value;
  for (const key of keys) {
    if (typeof key === 'number') node = Array.isArray(node) ? (node[key] as unknown) : undefined;
    else node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined;
  }
  return node;
}

function records(value: unknown, what: string): Array<Record<string, unknown>> {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`${what} must be a list`);
  return value.map((item) => record(item, what));
}

function matches(selector: unknown, labels: unknown): boolean {
  const wanted = record(selector, 'selector');
  const have = record(labels, 'labels');
  return Object.keys(wanted).length > 0 && Object.entries(wanted).every(([key, value]) => have[key] === value);
}

interface Variant {
  readonly name: 'plaintext' | 'tls';
  readonly heading: string;
}

const VARIANTS: readonly Variant[] = [
  { name: 'plaintext', heading: '### Kubernetes' },
  { name: 'tls', heading: '### Kubernetes with TLS' },
];

/** What a variant's README section applies, and the parts of its StatefulSet every check needs; read per test so that a broken file fails a test, not collection. */
function k8s(variant: Variant) {
  const commands = shellCommands(readmeSection(variant.heading));
  const applyCommand = commandStarting(commands, 'kubectl apply');
  const namespace = optionValues(applyCommand, '-n')[0] ?? 'default';
  const files = appliedFiles(applyCommand);
  const manifests = loadManifests(files);
  const one = (kind: string, predicate: (m: Manifest) => boolean = () => true): Manifest => {
    const found = manifests.filter((m) => m.kind === kind && predicate(m));
    expect(found.map((m) => m.name), `one ${kind}`).toHaveLength(1);
    return found[0] as Manifest;
  };
  const statefulSet = one('StatefulSet');
  const spec = record(statefulSet.body['spec'], 'StatefulSet spec');
  const podSpec = record(at(spec, 'template', 'spec'), 'pod spec');
  const container = record(at(podSpec, 'containers', 0), 'the StatefulSet container');
  const containerPort = (name: string): number => {
    const port = records(container['ports'], 'port').find((p) => p['name'] === name);
    return Number(port?.['containerPort']);
  };
  const headless = one('Service', (m) => m.name === spec['serviceName']);
  const clientService = one('Service', (m) => m.name !== spec['serviceName']);
  const replicas = Number(spec['replicas']);
  /** The pods the StatefulSet makes, one more than its replicas: a pod added by scaling up. */
  const pods = Array.from({ length: replicas + 1 }, (_, i) => `${statefulSet.name}-${i}`);
  return { commands, namespace, files, manifests, one, statefulSet, spec, podSpec, container, containerPort, headless, clientService, replicas, pods };
}

/** What `quorumkv serve` loads in one pod: the start script run in /bin/sh with a stand-in `node` that prints its arguments. */
function podConfig(context: ReturnType<typeof k8s>, pod: string, namespace: string): { env: Env; config: Config } {
  const image = readImageConfig();
  const command = stringList(context.container['command'], 'container command');
  const args = stringList(context.container['args'], 'container args');
  const env = { ...image.env, ...resolvePodEnv(context.container['env'], { name: pod, namespace }) };
  const shim = tempDir('qkv-k8s-');
  fs.writeFileSync(path.join(shim, 'node'), '#!/bin/sh\nprintf "%s\\n" "$@"\n', { mode: 0o755 });
  const run = spawnSync(command[0] as string, [...command.slice(1), ...args], { env: { ...env, PATH: `${shim}:/usr/bin:/bin` }, encoding: 'utf8' });
  expect(run.status, `start script for ${pod}: ${run.stderr}`).toBe(0);
  const argv = run.stdout.split('\n').filter((line) => line !== '');
  const serve = argv.indexOf('serve');
  expect(serve, `'serve' in ${JSON.stringify(argv)}`).toBeGreaterThan(0);
  return { env, config: loadConfig(argv.slice(serve + 1), env) };
}

function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}

/** The Secret volumes the container mounts: mount path -> Secret name and mode. */
function secretMounts(context: ReturnType<typeof k8s>): Map<string, { secretName: string; defaultMode: unknown; readOnly: unknown }> {
  const volumes = new Map(records(context.podSpec['volumes'], 'volume').map((volume) => [String(volume['name']), volume]));
  const mounts = new Map<string, { secretName: string; defaultMode: unknown; readOnly: unknown }>();
  for (const mount of records(context.container['volumeMounts'], 'volumeMount')) {
    const secret = at(volumes.get(String(mount['name'])), 'secret');
    if (secret === undefined) continue;
    mounts.set(String(mount['mountPath']), { secretName: String(at(secret, 'secretName')), defaultMode: at(secret, 'defaultMode'), readOnly: mount['readOnly'] });
  }
  return mounts;
}

/** Which Secret and key a file path inside a mounted Secret is; undefined when the path is in no Secret mount. */
function secretFileOf(mounts: ReturnType<typeof secretMounts>, file: string): { secretName: string; key: string } | undefined {
  for (const [mountPath, mount] of mounts) {
    const relative = path.posix.relative(mountPath, file);
    // A Secret's keys are files directly in its mount: no subdirectories, nothing outside.
    if (relative !== '' && !relative.startsWith('..') && !relative.includes('/')) return { secretName: mount.secretName, key: relative };
  }
  return undefined;
}

// --- checks --------------------------------------------------------------------------

describe('deploy/k8s', () => {
  it('every manifest under deploy/k8s is applied by a README Kubernetes section', () => {
    const onDisk: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else onDisk.push(path.relative(REPO_ROOT, full));
      }
    };
    walk(K8S_DIR);
    const applied = new Set(VARIANTS.flatMap((variant) => k8s(variant).files));
    expect(onDisk.filter((file) => !applied.has(file)), 'files under deploy/k8s that no README apply line reaches').toEqual([]);
    expect(k8s(VARIANTS[0] as Variant).files).toEqual(['deploy/k8s/pdb.yaml', 'deploy/k8s/services.yaml', 'deploy/k8s/statefulset.yaml']);
    expect(k8s(VARIANTS[1] as Variant).files).toEqual(['deploy/k8s/services.yaml', 'deploy/k8s/pdb.yaml', 'deploy/k8s/tls/statefulset.yaml']);
  });

  describe.each(VARIANTS)('the $name variant', (variant) => {
    it('is namespace-less: a Service pair, a StatefulSet and a PodDisruptionBudget', () => {
      const { manifests } = k8s(variant);
      for (const manifest of manifests) expect(at(manifest.body, 'metadata', 'namespace'), `${manifest.file} ${manifest.name}`).toBeUndefined();
      expect(manifests.map((m) => m.kind).sort()).toEqual(['PodDisruptionBudget', 'Service', 'Service', 'StatefulSet']);
    });

    it('agrees on names, labels, ports, probes and the volume', () => {
      const { one, spec, podSpec, container, containerPort, headless, clientService } = k8s(variant);
      const podLabels = at(spec, 'template', 'metadata', 'labels');
      expect(spec['replicas']).toBe(3);
      expect(spec['podManagementPolicy']).toBe('Parallel');
      expect(matches(at(spec, 'selector', 'matchLabels'), podLabels)).toBe(true);

      // Peer DNS comes from the headless Service the StatefulSet names, published before pods are ready.
      expect(at(headless.body, 'spec', 'clusterIP')).toBe('None');
      expect(at(headless.body, 'spec', 'publishNotReadyAddresses')).toBe(true);
      for (const service of [headless, clientService]) {
        expect(matches(at(service.body, 'spec', 'selector'), podLabels), `${service.name} selects the pods`).toBe(true);
        for (const port of records(at(service.body, 'spec', 'ports'), 'service port')) {
          expect(containerPort(String(port['targetPort'])), `${service.name} targetPort ${String(port['targetPort'])}`).toBe(port['port']);
        }
      }

      const pdb = one('PodDisruptionBudget');
      expect(at(pdb.body, 'spec', 'maxUnavailable')).toBe(1);
      expect(matches(at(pdb.body, 'spec', 'selector', 'matchLabels'), podLabels)).toBe(true);

      if (variant.name === 'plaintext') {
        expect(at(container, 'readinessProbe', 'grpc', 'port')).toBe(containerPort('client'));
      } else {
        // The kubelet's gRPC probe cannot speak TLS: readiness is /readyz (a leader is known) on the plain HTTP port.
        expect(at(container, 'readinessProbe', 'grpc')).toBeUndefined();
        expect(at(container, 'readinessProbe', 'httpGet', 'path')).toBe('/readyz');
        expect(containerPort(String(at(container, 'readinessProbe', 'httpGet', 'port')))).toBe(containerPort('http'));
      }
      for (const probe of ['livenessProbe', 'startupProbe']) {
        expect(at(container, probe, 'httpGet', 'path')).toBe('/healthz');
        expect(containerPort(String(at(container, probe, 'httpGet', 'port')))).toBe(containerPort('http'));
      }

      const claim = at(spec, 'volumeClaimTemplates', 0, 'metadata', 'name');
      const mounts = records(container['volumeMounts'], 'volumeMount');
      expect(mounts.find((m) => m['name'] === claim)?.['mountPath']).toBe('/data');
      // The kubelet never refreshes a subPath mount: a reloaded Secret would not reach the pod.
      expect(mounts.filter((m) => m['subPath'] !== undefined || m['subPathExpr'] !== undefined)).toEqual([]);
      // The image's numeric user, which runAsNonRoot needs, owns the volume through fsGroup.
      expect(String(at(podSpec, 'securityContext', 'runAsUser'))).toBe(readImageConfig().user?.split(':')[0]);
    });

    it('starts every pod with a config the node accepts: known variables, member ids = pod names, a pod beyond the first three joins', () => {
      const context = k8s(variant);
      const { spec, container, containerPort, clientService, replicas, pods } = context;
      // The kubelet expands $(VAR) in command and args before the shell sees them; the script uses none.
      expect([...stringList(container['command'], 'command'), ...stringList(container['args'], 'args')].join(' ')).not.toContain('$(');
      const namespace = 'shop';
      for (const [ordinal, pod] of pods.entries()) {
        const { env, config } = podConfig(context, pod, namespace);
        const unknown = Object.keys(env).filter((key) => key.startsWith('QUORUMKV_') && !KNOWN_ENV.has(key));
        expect(unknown, `${pod}: QUORUMKV_* variables that \`quorumkv serve\` does not read`).toEqual([]);
        const dns = `${pod}.${String(spec['serviceName'])}.${namespace}.svc`;
        expect(config.id).toBe(pod);
        expect(config.dataDir).toBe('/data');
        expect(config.advertisePeerAddr).toBe(`${dns}:${containerPort('peer')}`);
        expect(config.advertiseClientAddr).toBe(`${dns}:${containerPort('client')}`);
        expect(portOf(config.clientAddr)).toBe(containerPort('client'));
        expect(portOf(config.peerAddr)).toBe(containerPort('peer'));
        expect(portOf(config.httpAddr)).toBe(containerPort('http'));
        // The members the cluster starts with are the pods the StatefulSet makes, at their headless-Service names.
        expect([...config.initialCluster.keys()]).toEqual(pods.slice(0, replicas));
        for (const [id, address] of config.initialCluster) expect(address).toBe(`${id}.${String(spec['serviceName'])}.${namespace}.svc:${containerPort('peer')}`);
        if (ordinal < replicas) {
          expect(config.initialCluster.get(pod)).toBe(config.advertisePeerAddr);
          expect(config.join).toBeNull();
        } else {
          expect(config.join).toBe(`${clientService.name}:${containerPort('client')}`);
        }
        if (variant.name === 'plaintext') {
          expect(config.tls).toBeNull();
          expect(config.authFile).toBeNull();
        }
      }
    });
  });

  describe('the tls variant', () => {
    const tls = VARIANTS[1] as Variant;

    it('reads --cert, --key, --ca and --auth-file from Secrets mounted whole, read-only, readable by the node only', () => {
      const context = k8s(tls);
      const mounts = secretMounts(context);
      expect(mounts.size).toBeGreaterThan(0);
      for (const [mountPath, mount] of mounts) {
        expect(mount.readOnly, `${mountPath} read-only`).toBe(true);
        expect(mount.defaultMode, `${mountPath} mode 0440 (group = the pod's fsGroup)`).toBe(0o440);
      }
      expect(String(at(context.podSpec, 'securityContext', 'fsGroup'))).toBe(readImageConfig().user?.split(':')[1]);
      for (const pod of context.pods) {
        const { config } = podConfig(context, pod, 'shop');
        expect(config.tls, `${pod}: TLS on`).not.toBeNull();
        expect(config.authFile, `${pod}: authentication on`).not.toBeNull();
        const files = { cert: config.tls?.certFile, key: config.tls?.keyFile, ca: config.tls?.caFile, 'auth-file': config.authFile };
        for (const [flag, file] of Object.entries(files)) {
          expect(secretFileOf(mounts, String(file)), `${pod}: --${flag} ${String(file)} inside a mounted Secret`).toBeDefined();
        }
        // Each pod its own certificate, named after the member id.
        expect(secretFileOf(mounts, String(config.tls?.certFile))?.key).toBe(`${pod}.pem`);
        expect(secretFileOf(mounts, String(config.tls?.keyFile))?.key).toBe(`${pod}-key.pem`);
      }
    });

    it('is the plaintext StatefulSet plus TLS: nothing else differs', () => {
      const plain = k8s(VARIANTS[0] as Variant).statefulSet.body;
      const withTls = structuredClone(k8s(tls).statefulSet.body);
      const container = record(at(withTls, 'spec', 'template', 'spec', 'containers', 0), 'container');
      const podSpec = record(at(withTls, 'spec', 'template', 'spec'), 'pod spec');
      const tlsVariables = new Set(['cert', 'key', 'ca', 'auth-file', 'client-cert-auth'].map(envName));
      container['env'] = records(container['env'], 'env').filter((entry) => !tlsVariables.has(String(entry['name'])));
      const secretVolumes = new Set(records(podSpec['volumes'], 'volume').filter((volume) => volume['secret'] !== undefined).map((volume) => volume['name']));
      container['volumeMounts'] = records(container['volumeMounts'], 'volumeMount').filter((mount) => !secretVolumes.has(mount['name']));
      expect(records(podSpec['volumes'], 'volume').length, 'volumes other than Secrets').toBe(secretVolumes.size);
      delete podSpec['volumes'];
      // The same cadence, a different check (see above).
      const readiness = record(container['readinessProbe'], 'readinessProbe');
      delete readiness['httpGet'];
      readiness['grpc'] = at(plain, 'spec', 'template', 'spec', 'containers', 0, 'readinessProbe', 'grpc');
      expect(withTls).toEqual(plain);
    });

    it("the README's commands make the Secrets each pod needs; the node accepts them and the certificates name every address dialed", async () => {
      const context = k8s(tls);
      const { commands, namespace, spec, containerPort, clientService, replicas, pods } = context;
      const section = readmeSection(tls.heading);
      const work = tempDir('qkv-k8s-secrets-');

      // `npx quorumkv certs ...` as written, into the work dir.
      const certsArgs = commandStarting(commands, 'npx quorumkv certs').split(/\s+/).slice(3);
      const option = (name: string): string[] => (optionValues(certsArgs.join(' '), `--${name}`)[0] ?? '').split(',').filter((v) => v !== '');
      expect(option('nodes'), 'the README makes a certificate per initial member').toEqual(pods.slice(0, replicas));
      await makeCerts({ outDir: path.join(work, option('out')[0] as string), nodes: option('nodes'), clients: option('clients'), hosts: option('hosts') });

      // The users.json heredoc as written, through /bin/sh.
      const heredoc = /^cat > users\.json <<EOF\n[\s\S]*?\nEOF$/m.exec(section);
      expect(heredoc, 'a users.json heredoc in the README').not.toBeNull();
      const sh = spawnSync('/bin/sh', ['-c', (heredoc as RegExpExecArray)[0]], { cwd: work, encoding: 'utf8' });
      expect(sh.status, sh.stderr).toBe(0);

      // Each `kubectl create secret generic NAME --from-file=...`: the Secret's keys, as files in a directory of its own.
      const secrets = new Map<string, string>();
      for (const command of commands.filter((c) => c.includes('create secret generic'))) {
        const name = /create secret generic (\S+)/.exec(command)?.[1] as string;
        const dir = path.join(work, 'secrets', name);
        fs.mkdirSync(dir, { recursive: true });
        for (const source of optionValues(command.split('|')[0] as string, '--from-file')) {
          const eq = source.indexOf('=');
          const [key, file] = eq === -1 ? [path.basename(source), source] : [source.slice(0, eq), source.slice(eq + 1)];
          fs.copyFileSync(path.join(work, file), path.join(dir, key));
        }
        secrets.set(name, dir);
      }
      expect(fs.readdirSync(secrets.get('quorumkv-tls') ?? work).filter((key) => key === 'ca-key.pem' || /^admin/.test(key)), 'keys that must not reach the pods').toEqual([]);

      const mounts = secretMounts(context);
      const inSecret = (file: string): string => {
        const where = secretFileOf(mounts, file);
        const dir = secrets.get(where?.secretName ?? '');
        expect(dir, `the README creates Secret ${String(where?.secretName)}`).toBeDefined();
        const local = path.join(dir as string, where?.key as string);
        expect(fs.existsSync(local), `Secret ${String(where?.secretName)} holds ${String(where?.key)}`).toBe(true);
        return local;
      };

      for (const pod of pods.slice(0, replicas)) {
        const { config } = podConfig(context, pod, namespace);
        const files = { certFile: inSecret(String(config.tls?.certFile)), keyFile: inSecret(String(config.tls?.keyFile)), caFile: inSecret(String(config.tls?.caFile)) };
        // The node's own loader: files parse, key matches, chains to the CA, CN = member id, OU = node.
        expect(NodeTls.load(files, config.id).nodeId).toBe(pod);
        expect(loadAuthFile(inSecret(String(config.authFile))).map((user) => user.role).sort()).toEqual(['admin', 'read-write']);

        const certificate = new X509Certificate(fs.readFileSync(files.certFile));
        expect(x509Identity(certificate)).toEqual({ commonName: pod, organizationalUnit: NODE_UNIT });
        // Every name a client dials this node by: its advertised address (followers forward there), the
        // client Service (--join, applications in and out of the namespace), and port-forward's loopback.
        const dialed = [
          hostOf(config.advertiseClientAddr),
          clientService.name,
          `${clientService.name}.${namespace}.svc`,
          'localhost',
          '127.0.0.1',
        ];
        const peer = { subject: { CN: pod }, subjectaltname: certificate.subjectAltName } as unknown as PeerCertificate;
        for (const host of dialed) expect(checkServerIdentity(host, peer), `${pod}'s certificate for ${host} (SANs ${String(certificate.subjectAltName)})`).toBeUndefined();
      }
      // The pod beyond the first three joins through the client Service, which the certificates above name.
      expect(podConfig(context, pods[replicas] as string, namespace).config.join).toBe(`${clientService.name}:${containerPort('client')}`);
      expect(String(spec['serviceName'])).toBe(context.headless.name);

      // The reload loop compares the file each pod mounts.
      const loop = /cat (\S+quorumkv-\$i\.pem) \| cmp -s - (\S+)/.exec(section);
      expect(loop, 'the README reload loop').not.toBeNull();
      const { config: first } = podConfig(context, pods[0] as string, namespace);
      expect(loop?.[1]?.replace('$i', '0')).toBe(first.tls?.certFile);
      expect(section).toContain(`compare \`${String(first.authFile)}\``);
    });
  });
});
