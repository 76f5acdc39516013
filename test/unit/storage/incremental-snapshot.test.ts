/**
 * Incremental snapshot files (src/storage/snapshot-update.ts) written from a
 * real StateMachine's export: each file, incremental or whole, must hold
 * exactly the state at its index, through restarts, installed snapshots,
 * abandoned exports, failed writes and damaged bases.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StateMachine } from '../../../src/state/index.ts';
import type { ClientSession, Command, KeyRow, SnapshotView } from '../../../src/state/index.ts';
import type { NodeStorage, SnapshotContent, SnapshotKeyRow, StoredSnapshot } from '../../../src/storage/index.ts';
import { commandArb } from '../state/arbitraries.ts';
import { Harness } from '../state/helpers.ts';
import { base64, entries, useScratch } from './helpers.ts';

const scratch = useScratch();

const CONF = { voters: ['n1', 'n2', 'n3'], learners: [] };
/** Every offered incremental write is taken, however much changed. */
const ALWAYS = { incrementalLimits: { maxChangedFraction: Infinity, maxReplacedFraction: Infinity } };

/** A state machine and the storage it snapshots into, with the log persisted up to what is applied. */
class Node {
  h: Harness;
  private persisted: number;

  constructor(
    public storage: NodeStorage,
    h = new Harness(),
  ) {
    this.h = h;
    this.persisted = storage.lastIndex;
  }

  apply(command: Command, session: ClientSession | null = null, advanceMs = 0): void {
    this.h.advance(advanceMs);
    this.h.apply(command, session);
  }

  /** The log covers every applied index, so storage accepts a snapshot at any of them. */
  persistLog(): void {
    const through = this.h.index;
    if (through > this.persisted) {
      this.storage.persist({ entries: entries(this.persisted + 1, through, 1), hardState: { term: 1, vote: 'n1', commit: through } });
      this.persisted = through;
    }
  }

  /**
   * Snapshots the state machine as the node does; `incremental` offers the
   * export's changes. `during` runs after every few rows the writer takes,
   * `failAfterRows` makes the row source throw.
   */
  async snapshot(options: {
    incremental: boolean;
    during?: () => void;
    failAfterRows?: number;
  }): Promise<{ file: StoredSnapshot; expected: State; hadChanges: boolean }> {
    this.persistLog();
    const expected = stateOf(this.h.sm);
    const view = this.h.sm.exportRows();
    try {
      const changes = options.incremental ? view.changes : null;
      const content: SnapshotContent = {
        keys: interleave(view.keyRows, options),
        sessions: view.sessionRows,
        stateDigest: view.digest,
        keyCount: view.keyCount,
        ...(changes === null ? {} : { changes: { ...changes, rows: interleave(changes.rows, options) } }),
      };
      const file = await this.storage.writeSnapshot({ index: view.lastAppliedIndex, term: 1, logTimeMs: view.logTimeMs, confState: CONF }, content);
      view.stored();
      return { file, expected, hadChanges: view.changes !== null };
    } finally {
      view.close();
    }
  }
}

function* interleave(rows: Iterable<SnapshotKeyRow>, options: { during?: () => void; failAfterRows?: number }): Generator<SnapshotKeyRow> {
  let n = 0;
  for (const row of rows) {
    if (options.failAfterRows !== undefined && n === options.failAfterRows) throw new Error('injected failure');
    yield row;
    if (++n % 3 === 0) options.during?.();
  }
}

interface State {
  readonly digest: string;
  readonly keys: Record<string, unknown>;
  readonly sessions: unknown[];
}

const plainKey = (r: KeyRow): unknown => ({ type: r.type, value: base64(r.value), expiresAtMs: r.expiresAtMs });

/** The state as a whole snapshot would hold it, from an export that is closed again (its change set goes back). */
function stateOf(sm: StateMachine): State {
  const view: SnapshotView = sm.exportRows();
  try {
    return fromRows(view.digest, view.keyRows, view.sessionRows);
  } finally {
    view.close();
  }
}

function fromRows(digest: string, keys: Iterable<KeyRow>, sessions: Iterable<{ clientId: string; sequence: number; result: Uint8Array; lastSeenMs: number }>): State {
  const byKey: Record<string, unknown> = {};
  for (const row of keys) {
    expect(byKey[row.key], `key '${row.key}' twice`).toBeUndefined();
    byKey[row.key] = plainKey(row);
  }
  const list = [...sessions].map((s) => ({ ...s, result: base64(s.result) })).sort((x, y) => (x.clientId < y.clientId ? -1 : 1));
  return { digest, keys: Object.fromEntries(Object.entries(byKey).sort(([x], [y]) => (x < y ? -1 : 1))), sessions: list };
}

/** Reads the file back (every check of the reader and SQLite's integrity check), restores from it, and compares. */
async function expectFileHolds(storage: NodeStorage, file: StoredSnapshot, expected: State): Promise<StateMachine> {
  const verifier = scratch.track(storage.openSnapshot(file));
  await verifier.verify();
  verifier.close();
  const reader = scratch.track(storage.openSnapshot(file));
  const keys = [...reader.keys()];
  const sessions = [...reader.sessions()];
  expect(reader.info.stateDigest).toBe(expected.digest);
  expect(reader.info.keyCount).toBe(keys.length);
  reader.close();
  expect(fromRows(expected.digest, keys, sessions)).toEqual(expected);
  const restored = StateMachine.fromRows({ lastAppliedIndex: file.index, logTimeMs: file.logTimeMs, keyRows: keys, sessionRows: sessions });
  expect(restored.digest()).toBe(expected.digest);
  return restored;
}

function restoreFrom(storage: NodeStorage, file: StoredSnapshot): StateMachine {
  const reader = scratch.track(storage.openSnapshot(file));
  try {
    return StateMachine.fromRows({ lastAppliedIndex: file.index, logTimeMs: file.logTimeMs, keyRows: reader.keys(), sessionRows: reader.sessions() });
  } finally {
    reader.close();
  }
}

function leftovers(storage: NodeStorage): string[] {
  return fs.readdirSync(join(storage.dir, 'snapshots')).filter((name) => name.endsWith('.tmp'));
}

/** Commands over a wider key space than the state tests' arbitraries, so that files hold more than a handful of rows. */
const wideKey = fc.integer({ min: 0, max: 59 }).map((i) => `key:${i}`);
const wideCommandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('set' as const), key: wideKey, value: fc.uint8Array({ maxLength: 40 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('set' as const), key: wideKey, value: fc.uint8Array({ maxLength: 8 }), ttlMs: fc.integer({ min: 1, max: 40 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), keys: fc.array(wideKey, { maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('rpush' as const), key: wideKey, values: fc.array(fc.uint8Array({ maxLength: 6 }), { minLength: 1, maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('hset' as const), key: wideKey, fields: fc.array(fc.tuple(fc.constantFrom('f', 'g'), fc.uint8Array({ maxLength: 6 })), { minLength: 1, maxLength: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('expireSweep' as const), keys: fc.array(wideKey, { maxLength: 4 }) }) },
);

interface Step {
  readonly command: Command;
  readonly client: string | null;
  readonly advanceMs: number;
}

/** Whether a command may Clear, which drops the change set (the next snapshot is whole). */
function mayClear(command: Command): boolean {
  if (command.op === 'clear') return true;
  return command.op === 'txn' && [...command.success, ...command.failure].some((op) => op.op === 'clear');
}

const stepArb: fc.Arbitrary<Step> = fc.record({
  command: fc.oneof({ weight: 3, arbitrary: wideCommandArb }, { weight: 1, arbitrary: commandArb }),
  client: fc.option(fc.constantFrom('c1', 'c2', 'c3'), { freq: 4 }),
  advanceMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 20 })),
});

/** What happens between two segments of commands. */
const eventArb = fc.constantFrom('incremental', 'incremental', 'incremental-during', 'full', 'abandon', 'restart');

describe('incremental snapshots from a state machine', () => {
  it('each file, incremental or whole, holds exactly the state at its index', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.array(stepArb, { maxLength: 25 }), eventArb), { minLength: 1, maxLength: 8 }), async (segments) => {
        const dir = scratch.dir();
        let node = new Node(scratch.open(dir, ALWAYS));
        const sequences = new Map<string, number>();
        // Whether the state machine has a base (a stored or restored snapshot) and no Clear since: then it must offer changes.
        let based = false;
        const run = (step: Step): void => {
          const session = step.client === null ? null : { clientId: step.client, sequence: (sequences.get(step.client) ?? 0) + 1 };
          if (session !== null) sequences.set(session.clientId, session.sequence);
          if (mayClear(step.command)) based = false;
          node.apply(step.command, session, step.advanceMs);
        };
        for (const [steps, event] of segments) {
          for (const step of steps) run(step);
          if (event === 'abandon') {
            // An export opened and dropped half-read: its change set goes back to the state machine.
            const view = node.h.sm.exportRows();
            view.changes?.rows.next();
            view.close();
            continue;
          }
          if (event === 'restart') {
            node.persistLog();
            const latest = node.storage.latestSnapshot;
            if (latest === null) continue;
            node.storage.close();
            const storage = scratch.open(dir, { ...ALWAYS, create: false });
            // Restart from the newest file, then apply the log after it, as a node does.
            const replayed = new Harness({}, restoreFrom(storage, latest));
            node = new Node(storage, replayed);
            based = true;
            continue;
          }
          // As the node: a snapshot only when something was applied since the newest one.
          if (node.h.index <= (node.storage.latestSnapshot?.index ?? 0)) continue;
          const incremental = event !== 'full';
          const during = steps.slice(0, 6);
          let next = 0;
          const { file, expected, hadChanges } = await node.snapshot({
            incremental,
            during: () => {
              const step = event === 'incremental-during' ? during[next++] : undefined;
              if (step !== undefined) run(step);
            },
          });
          if (based) expect(hadChanges).toBe(true);
          // Every file written here is the newest, and the base of the next: offered changes are always taken.
          expect(node.storage.lastSnapshotWrite?.incremental).toBe(incremental && hadChanges);
          based = true;
          await expectFileHolds(node.storage, file, expected);
          expect(leftovers(node.storage)).toEqual([]);
        }
        node.storage.close();
      }),
      { numRuns: 40 },
    );
  });
});
