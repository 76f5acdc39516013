import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WRITE_BACK_STEP_BYTES, WriteBackPacer, copyFileInSteps } from '../../../src/storage/durable-fs.ts';
import { useScratch } from './helpers.ts';

describe('copying and writing a snapshot in synced steps', () => {
  const scratch = useScratch();

  it('copies every byte, across a step boundary and a tail shorter than its buffer', () => {
    const dir = scratch.dir();
    const from = join(dir, 'base.sqlite');
    const to = join(dir, 'copy.sqlite.tmp');
    const content = randomBytes(WRITE_BACK_STEP_BYTES + (1 << 20) + 12_345);
    fs.writeFileSync(from, content);
    copyFileInSteps(from, to);
    expect(fs.readFileSync(to).equals(content)).toBe(true);
  });

  it('copies an empty file, and replaces what the target held', () => {
    const dir = scratch.dir();
    const from = join(dir, 'empty');
    const to = join(dir, 'target');
    fs.writeFileSync(from, '');
    fs.writeFileSync(to, 'old bytes');
    copyFileInSteps(from, to);
    expect(fs.readFileSync(to).length).toBe(0);
  });

  it('reports a missing source and creates no target', () => {
    const dir = scratch.dir();
    expect(() => copyFileInSteps(join(dir, 'missing'), join(dir, 'target'))).toThrow(/ENOENT/);
    expect(fs.existsSync(join(dir, 'target'))).toBe(false);
  });

  it('a pacer syncs the file others write, however much is reported, and closes once', () => {
    const dir = scratch.dir();
    const path = join(dir, 'written');
    fs.writeFileSync(path, randomBytes(4096));
    const pacer = new WriteBackPacer(path);
    for (let i = 0; i < 5; i++) pacer.wrote(WRITE_BACK_STEP_BYTES / 2);
    pacer.close();
    pacer.close();
    pacer.wrote(WRITE_BACK_STEP_BYTES);
    expect(fs.readFileSync(path).length).toBe(4096);
  });
});
