/**
 * Reads the deployment files the way their own tools do, for
 * test/integration/compose.test.ts and test/unit/deploy/k8s.test.ts: docker-compose.yml as rendered by the real
 * `docker-compose config`, the runtime stage of deploy/Dockerfile (what a
 * container inherits: ENV, ENTRYPOINT, CMD, HEALTHCHECK), and a Kubernetes
 * container's env list resolved as the kubelet would (downward API fields and
 * $(VAR) references).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const COMPOSE_FILE = path.join(REPO_ROOT, 'docker-compose.yml');
export const DOCKERFILE = path.join(REPO_ROOT, 'deploy', 'Dockerfile');

export type Env = Record<string, string>;

// --- docker-compose --------------------------------------------------------

export interface ComposeService {
  readonly name: string;
  /** `command:` after rendering; null when the service keeps the image's CMD. */
  readonly command: readonly string[] | null;
  readonly environment: Env;
  /** The healthcheck's command (the part after "CMD"); null without one. */
  readonly healthcheck: readonly string[] | null;
  readonly restart: string | null;
  /** Published ports as rendered (short or long syntax, passed through). */
  readonly ports: readonly unknown[];
  /** Volume mounts as rendered. */
  readonly volumes: readonly unknown[];
  /** `profiles:`; empty for a service that `docker-compose up` starts by default. */
  readonly profiles: readonly string[];
}

export interface RenderedCompose {
  readonly services: ReadonlyMap<string, ComposeService>;
  readonly volumes: readonly string[];
}

/** `docker-compose version`'s first line, or null when docker-compose is not installed. */
export function composeVersion(): string | null {
  const result = spawnSync('docker-compose', ['version'], { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) return null;
  return result.stdout.split('\n')[0] ?? '';
}

/**
 * docker-compose.yml as `docker-compose config` renders it, with `vars` set
 * for interpolation. QKV_* and COMPOSE_* variables of the caller's own
 * environment are left out, so that only `vars` can change the result.
 */
export function renderCompose(vars: Env): RenderedCompose {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('QKV_') && !key.startsWith('COMPOSE_')) env[key] = value;
  }
  Object.assign(env, vars);
  const result = spawnSync('docker-compose', ['--file', COMPOSE_FILE, '--project-directory', REPO_ROOT, 'config'], {
    env,
    encoding: 'utf8',
    cwd: REPO_ROOT,
  });
  if (result.error !== undefined) throw new Error(`cannot run docker-compose: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`docker-compose config exited ${String(result.status)}: ${result.stderr.trim()}`);
  const document = record(parse(result.stdout), 'the rendered compose file');
  const services = new Map<string, ComposeService>();
  for (const [name, value] of Object.entries(record(document['services'], 'services'))) {
    const service = record(value, `services.${name}`);
    services.set(name, {
      name,
      command: service['command'] === undefined ? null : stringList(service['command'], `services.${name}.command (use the list form)`),
      environment: environmentOf(service['environment'], name),
      healthcheck: healthcheckOf(service['healthcheck'], name),
      restart: typeof service['restart'] === 'string' ? service['restart'] : null,
      ports: Array.isArray(service['ports']) ? service['ports'] : [],
      volumes: Array.isArray(service['volumes']) ? service['volumes'] : [],
      profiles: service['profiles'] === undefined ? [] : stringList(service['profiles'], `services.${name}.profiles`),
    });
  }
  const volumes = document['volumes'] === undefined ? [] : Object.keys(record(document['volumes'], 'volumes'));
  return { services, volumes };
}

/** The map form docker-compose v1 renders, or the KEY=VALUE list form. */
function environmentOf(value: unknown, service: string): Env {
  const env: Env = {};
  if (value === undefined || value === null) return env;
  if (Array.isArray(value)) {
    for (const item of stringList(value, `services.${service}.environment`)) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new Error(`services.${service}.environment: '${item}' has no value`);
      env[item.slice(0, eq)] = item.slice(eq + 1);
    }
    return env;
  }
  for (const [key, raw] of Object.entries(record(value, `services.${service}.environment`))) {
    // A key without a value would take the caller's environment: not reproducible, so refused.
    if (raw === null || raw === undefined) throw new Error(`services.${service}.environment.${key} has no value`);
    env[key] = String(raw);
  }
  return env;
}

function healthcheckOf(value: unknown, service: string): readonly string[] | null {
  if (value === undefined || value === null) return null;
  const test = stringList(record(value, `services.${service}.healthcheck`)['test'], `services.${service}.healthcheck.test (use ["CMD", ...])`);
  if (test[0] !== 'CMD') throw new Error(`services.${service}.healthcheck.test must be ["CMD", ...], not ${JSON.stringify(test)}`);
  return test.slice(1);
}

// --- Dockerfile ------------------------------------------------------------

export interface ImageConfig {
  /** ENV of the runtime (last) stage, in order. */
  readonly env: Env;
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
  readonly workdir: string | null;
  /** HEALTHCHECK's command (exec form), null without one. */
  readonly healthcheck: readonly string[] | null;
  readonly exposed: readonly number[];
  readonly user: string | null;
  readonly volumes: readonly string[];
}

/**
 * What a container of the image inherits, from the instructions after the
 * last FROM. Only the forms deploy/Dockerfile uses are understood (exec-form
 * ENTRYPOINT/CMD/HEALTHCHECK, unquoted ENV values); anything else throws, so a
 * change there cannot be misread silently.
 */
export function readImageConfig(file: string = DOCKERFILE): ImageConfig {
  const all = dockerInstructions(fs.readFileSync(file, 'utf8'));
  const lastFrom = all.map((i) => i.op).lastIndexOf('FROM');
  const env: Env = {};
  let entrypoint: readonly string[] = [];
  let cmd: readonly string[] = [];
  let workdir: string | null = null;
  let healthcheck: readonly string[] | null = null;
  let user: string | null = null;
  const exposed: number[] = [];
  const volumes: string[] = [];
  for (const { op, args } of all.slice(lastFrom + 1)) {
    switch (op) {
      case 'ENV': {
        const words = args.split(/\s+/);
        if (!words[0]?.includes('=')) {
          env[words[0] ?? ''] = words.slice(1).join(' ');
          break;
        }
        for (const word of words) {
          const eq = word.indexOf('=');
          if (eq <= 0 || /["'$]/.test(word)) throw new Error(`${file}: ENV ${word}: only plain KEY=VALUE is understood here`);
          env[word.slice(0, eq)] = word.slice(eq + 1);
        }
        break;
      }
      case 'ENTRYPOINT':
        entrypoint = execForm(args, file, op);
        break;
      case 'CMD':
        cmd = execForm(args, file, op);
        break;
      case 'WORKDIR':
        workdir = args;
        break;
      case 'USER':
        user = args;
        break;
      case 'EXPOSE':
        for (const port of args.split(/\s+/)) exposed.push(Number.parseInt(port, 10));
        break;
      case 'VOLUME':
        volumes.push(...(args.startsWith('[') ? execForm(args, file, op) : args.split(/\s+/)));
        break;
      case 'HEALTHCHECK': {
        const match = /^(?:--\S+\s+)*CMD\s+(\[.*\])$/s.exec(args);
        if (args === 'NONE') healthcheck = null;
        else if (match?.[1] === undefined) throw new Error(`${file}: HEALTHCHECK must use the exec form: CMD ["..."]`);
        else healthcheck = execForm(match[1], file, op);
        break;
      }
      default:
        break;
    }
  }
  return { env, entrypoint, cmd, workdir, healthcheck, exposed, user, volumes };
}

function dockerInstructions(text: string): Array<{ op: string; args: string }> {
  const out: Array<{ op: string; args: string }> = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    // Comments and blank lines are dropped, also inside a continued instruction (as Docker does).
    if (line === '' || line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    current += line;
    const match = /^(\S+)\s+([\s\S]*)$/.exec(current);
    if (match?.[1] === undefined || match[2] === undefined) throw new Error(`cannot read Dockerfile instruction '${current}'`);
    out.push({ op: match[1].toUpperCase(), args: match[2].trim() });
    current = '';
  }
  return out;
}

function execForm(args: string, file: string, op: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw new Error(`${file}: ${op} must use the exec form (a JSON array), not '${args}'`);
  }
  return stringList(parsed, `${file}: ${op}`);
}

/**
 * The argv a container runs: the image's ENTRYPOINT, then the service's
 * command or else the image's CMD (Docker's rule when no entrypoint is
 * given by the service).
 */
export function containerArgv(image: ImageConfig, command: readonly string[] | null): string[] {
  return [...image.entrypoint, ...(command ?? image.cmd)];
}

// --- Kubernetes ------------------------------------------------------------

export interface PodIdentity {
  readonly name: string;
  readonly namespace: string;
}

/**
 * A container's `env:` list as the kubelet resolves it: `valueFrom.fieldRef`
 * for the pod's name and namespace, and $(VAR) in a value replaced by a
 * variable defined earlier in the list ($$ escapes; an unknown reference is
 * left as written).
 */
export function resolvePodEnv(list: unknown, pod: PodIdentity): Env {
  if (!Array.isArray(list)) throw new Error('env must be a list');
  const env: Env = {};
  for (const item of list) {
    const entry = record(item, 'env entry');
    const name = entry['name'];
    if (typeof name !== 'string') throw new Error(`env entry without a name: ${JSON.stringify(entry)}`);
    if (entry['valueFrom'] !== undefined) {
      const fieldPath = record(record(entry['valueFrom'], `env ${name}.valueFrom`)['fieldRef'], `env ${name}.valueFrom.fieldRef`)['fieldPath'];
      if (fieldPath === 'metadata.name') env[name] = pod.name;
      else if (fieldPath === 'metadata.namespace') env[name] = pod.namespace;
      else throw new Error(`env ${name}: fieldRef ${String(fieldPath)} is not resolved by this test`);
      continue;
    }
    const value = entry['value'];
    if (typeof value !== 'string') throw new Error(`env ${name}: value must be a string (quote numbers), got ${JSON.stringify(value)}`);
    env[name] = value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole: string, ref: string | undefined) => {
      if (ref === undefined) return '$';
      return env[ref] ?? whole;
    });
  }
  return env;
}

// --- ports -----------------------------------------------------------------

/**
 * A QKV_PORT_BLOCK value B whose nine ports (B001-B003, B101-B103,
 * B201-B203) are free on 127.0.0.1 now. Blocks 10-32 keep every port below
 * Linux's ephemeral range (32768+), so outgoing connections do not take them
 * meanwhile. The search starts at a random block so that concurrent runs rarely race.
 */
export async function findFreePortBlock(): Promise<number> {
  const count = 23;
  const first = Math.floor(Math.random() * count);
  for (let i = 0; i < count; i++) {
    const block = 10 + ((first + i) % count);
    const ports = blockPorts(block);
    const free = await Promise.all(ports.map(portIsFree));
    if (free.every(Boolean)) return block;
  }
  throw new Error('no free QKV_PORT_BLOCK between 10 and 32 on 127.0.0.1');
}

/** client, peer and HTTP ports of nodes 1-3 in block B. */
export function blockPorts(block: number): number[] {
  return [0, 100, 200].flatMap((role) => [1, 2, 3].map((node) => block * 1000 + role + node));
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

// --- small checks ----------------------------------------------------------

export function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what} must be a mapping`);
  return value as Record<string, unknown>;
}

export function stringList(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v): v is string => typeof v === 'string')) throw new Error(`${what} must be a list of strings`);
  return value;
}
