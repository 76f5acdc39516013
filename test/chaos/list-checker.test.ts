import { describe, expect, it } from 'vitest';
import { checkList } from './list-checker.ts';
import type { ListAppend, ListRead } from './list-checker.ts';

let nextId = 0;
const append = (value: string, call: number, ret: number | null, outcome: ListAppend['outcome'] = 'ok', length?: number): ListAppend => ({
  id: nextId++,
  value,
  call,
  ret,
  outcome,
  ...(length === undefined ? {} : { length }),
});
const read = (call: number, ret: number, values: string[], final = false): ListRead => ({ id: nextId++, call, ret, values, final });
const kinds = (appends: ListAppend[], reads: ListRead[]) => checkList('k', appends, reads).map((v) => v.kind);

describe('list append checker', () => {
  it('accepts a linearizable history, concurrent appends in either order, and unknown appends seen or not', () => {
    const appends = [
      append('a', 0, 10, 'ok', 1),
      append('b', 20, 40, 'ok', 3),
      append('c', 21, 39, 'ok', 2), // concurrent with b: may come first
      append('d', 50, null, 'unknown'),
      append('e', 55, null, 'unknown'), // never seen: it may not have happened
      append('f', 60, 70, 'fail'),
    ];
    const reads = [read(11, 12, ['a']), read(25, 30, ['a']), read(41, 45, ['a', 'c', 'b']), read(80, 90, ['a', 'c', 'b', 'd'], true)];
    expect(checkList('k', appends, reads)).toEqual([]);
  });

  it('finds a value read twice', () => {
    expect(kinds([append('a', 0, 10)], [read(20, 30, ['a', 'a'])])).toContain('duplicate');
  });

  it('finds a value no append wrote, and one whose append definitely failed', () => {
    expect(kinds([append('a', 0, 10)], [read(20, 30, ['a', 'zz'])])).toContain('unknown-value');
    expect(kinds([append('a', 0, 10, 'fail')], [read(20, 30, ['a'])])).toContain('failed-append-visible');
  });

  it('finds a value read before it was appended', () => {
    expect(kinds([append('a', 50, 60)], [read(0, 10, ['a'])])).toContain('future-value');
  });

  it('finds reads that disagree on the order', () => {
    const appends = [append('a', 0, 100), append('b', 0, 100)];
    expect(kinds(appends, [read(10, 20, ['a', 'b']), read(30, 40, ['b'])])).toContain('not-a-prefix');
  });

  it('finds a read that goes back in time', () => {
    const appends = [append('a', 0, 100), append('b', 0, 100)];
    expect(kinds(appends, [read(10, 20, ['a', 'b']), read(30, 40, ['a'])])).toContain('stale-read');
  });

  it('finds an acknowledged append missing from a later read, and marks a final read as a lost write', () => {
    const found = checkList('k', [append('a', 0, 10), append('b', 0, 10)], [read(20, 30, ['a'], true)]);
    expect(found.map((v) => v.kind)).toContain('lost-append');
    expect(found.find((v) => v.kind === 'lost-append')?.final).toBe(true);
  });

  it('finds appends out of acknowledgement order', () => {
    expect(kinds([append('a', 0, 10), append('b', 20, 30)], [read(40, 50, ['b', 'a'])])).toContain('append-order');
  });

  it('finds an append whose answered length is not its position', () => {
    expect(kinds([append('a', 0, 10, 'ok', 1), append('b', 20, 30, 'ok', 1)], [read(40, 50, ['a', 'b'])])).toContain('wrong-position');
    // Unseen, but the longest read already covers the position it answered.
    expect(kinds([append('a', 0, 10, 'ok', 1), append('b', 0, 100, 'ok', 1)], [read(5, 8, ['a'])])).toContain('wrong-position');
  });
});
