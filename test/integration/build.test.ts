/**
 * bin/ runs the build of src/ (scripts/build.js), as real processes in a copy
 * of the repository. Most copies get a node_modules without tsx: a process or
 * worker thread there that still went through tsx could not load at all, so
 * serving proves the build ran.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT, TestCluster, bytes, text } from '../support/cluster-harness.ts';

/** What bin/ needs from a checkout. */
const CHECKOUT = ['bin', 'scripts', 'src', 'proto', 'package.json', 'tsconfig.json'];

const copies: string[] = [];
let cluster: TestCluster | null = null;

afterEach(async () => {
  await cluster?.stop();
  cluster = null;
  for (const dir of copies.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A copy of the checkout with no build yet; its node_modules links this one's packages, all but tsx unless `tsx`. */
function copyCheckout(options: { tsx: boolean }): string {
  const root = mkdtempSync(join(tmpdir(), 'quorumkv-build-test-'));
  copies.push(root);
  for (const name of CHECKOUT) cpSync(join(REPO_ROOT, name), join(root, name), { recursive: true });
  const modules = join(REPO_ROOT, 'node_modules');
  if (options.tsx) {
    symlinkSync(modules, join(root, 'node_modules'));
  } else {
    mkdirSync(join(root, 'node_modules'));
    for (const name of readdirSync(modules)) {
      if (name !== 'tsx' && name !== '.bin') symlinkSync(join(modules, name), join(root, 'node_modules', name));
    }
  }
  return root;
}

/** A copy without tsx, its bin/quorumkv.js, and a source file of it to edit, with that file's text. */
function editableCheckout(): { root: string; bin: string; source: string; original: string } {
  const root = copyCheckout({ tsx: false });
  const source = join(root, 'src', 'cli', 'quorumkv.ts');
  return { root, bin: join(root, 'bin', 'quorumkv.js'), source, original: readFileSync(source, 'utf8') };
}

/** The build dirs (dist/<id>/) in a copy, and whether a temporary one was left behind. */
function builds(root: string): { ids: string[]; leftovers: string[] } {
  const dist = join(root, 'dist');
  const names = existsSync(dist) ? readdirSync(dist) : [];
  return { ids: names.filter((name) => !name.includes('.tmp-')).sort(), leftovers: names.filter((name) => name.includes('.tmp-')) };
}

function run(bin: string, args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('bin/ runs the build of src/', () => {
  it('serves with client threads, and restores a snapshot at start-up, with no tsx installed', async () => {
    const root = copyCheckout({ tsx: false });
    cluster = await TestCluster.start({ size: 1, bin: join(root, 'bin', 'quorumkv.js'), flags: ['--client-threads', '2'] });
    const client = cluster.client('n1');
    await client.call('Set', { key: 'k', value: bytes('before restart') });
    await client.call('Snapshot');
    const stopped = await cluster.kill('n1', 'SIGTERM');
    expect(stopped, cluster.outputs()).toEqual({ code: 0, signal: null });

    // The restart rebuilds the state from the snapshot file in a worker thread (state-restore.ts restoreInWorker).
    cluster.launch(cluster.spec('n1'));
    await cluster.waitForLeader();
    expect(text((await cluster.client('n1').call('Get', { key: 'k' }))['value'])).toBe('before restart');
    expect(builds(root).ids).toHaveLength(1);
  });

  it('builds again when a source changed, and runs the new code; a touch alone changes nothing', async () => {
    const { root, bin, source, original } = editableCheckout();

    expect((await run(bin, ['--help'])).stdout).toContain('run one node');
    const [first] = builds(root).ids;

    writeFileSync(source, original.replace('run one node (', 'run one edited node ('));
    const edited = await run(bin, ['--help']);
    expect(edited.stdout).toContain('run one edited node');
    expect(builds(root).ids).toHaveLength(2);

    // The build is named by the sources' content, so a newer mtime alone is no change.
    const later = new Date(Date.now() + 60_000);
    utimesSync(source, later, later);
    expect((await run(bin, ['--help'])).stdout).toContain('run one edited node');
    expect(builds(root).ids).toHaveLength(2);

    // Back to the original source: its build is still there and used.
    writeFileSync(source, original);
    expect((await run(bin, ['--help'])).stdout).toContain('run one node');
    expect(builds(root).ids).toContain(first);
    expect(builds(root).ids).toHaveLength(2);
  });

  it('removes builds beyond the four last used, but none that a running process uses', async () => {
    const { root, bin, source, original } = editableCheckout();
    cluster = await TestCluster.start({ size: 1, bin });
    const [running] = builds(root).ids;

    const edits: string[] = [];
    const edit = async (n: number): Promise<void> => {
      writeFileSync(source, original.replace('run one node (', `run one node ${n} (`));
      expect((await run(bin, ['--help'])).stdout).toContain(`run one node ${n} (`);
      edits.push(builds(root).ids.find((id) => id !== running && !edits.includes(id)) as string);
    };
    for (let n = 1; n <= 6; n++) await edit(n);
    // The first edit's build is one too many; the running node's, older still, stays.
    expect(builds(root).ids.sort()).toEqual([running, ...edits.slice(1)].sort());

    await cluster.stop();
    cluster = null;
    await edit(7);
    expect(builds(root).ids.sort()).toEqual(edits.slice(2).sort());
  });

  it('makes one build when several processes start at once on changed sources', async () => {
    const root = copyCheckout({ tsx: false });
    const bin = join(root, 'bin', 'qkv.js');
    const runs = await Promise.all([1, 2, 3].map(() => run(bin, ['--help'])));
    for (const result of runs) {
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('usage: qkv');
    }
    expect(builds(root)).toEqual({ ids: [expect.stringMatching(/^[0-9a-f]{16}$/)], leftovers: [] });
  });

  it('runs the TypeScript with tsx, saying so, when it cannot build', async () => {
    const root = copyCheckout({ tsx: true });
    // A file where the build directory should be: nothing can be written under it.
    writeFileSync(join(root, 'dist'), '');
    const result = await run(join(root, 'bin', 'quorumkv.js'), ['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('run one node');
    expect(result.stderr).toMatch(/^quorumkv: cannot build src\/ \(.+\); running the TypeScript with tsx instead/);
  });
});
