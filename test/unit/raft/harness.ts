import { Raft, SeededRandom, bootstrapState, joiningState } from '../../../src/raft/index.ts';
import type { Entry, HardState, InitialState, Message, NodeId, RaftOptions, Ready, SnapshotMeta } from '../../../src/raft/index.ts';

/** What a node persisted, kept in memory as a test's disk. */
export interface TestDisk {
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  entries: Entry[];
}

export type TestOptions = Partial<Omit<RaftOptions, 'id' | 'random'>>;

const defaults: TestOptions = { electionTicks: 10, heartbeatTicks: 1 };

export function newRaft(id: NodeId, voters: readonly NodeId[], options: TestOptions = {}, seed = 1): Raft {
  return new Raft({ ...defaults, ...options, id, random: new SeededRandom(seed) }, bootstrapState(voters));
}

/** A node started empty to join a running cluster. */
export function newJoiner(id: NodeId, options: TestOptions = {}, seed = 1): Raft {
  return new Raft({ ...defaults, ...options, id, random: new SeededRandom(seed) }, joiningState());
}

export function restartRaft(id: NodeId, disk: TestDisk, options: TestOptions = {}, seed = 1): Raft {
  const initial: InitialState = { hardState: disk.hardState, snapshot: disk.snapshot, entries: [...disk.entries] };
  return new Raft({ ...defaults, ...options, id, random: new SeededRandom(seed) }, initial);
}

/** Takes the node's Ready (if any), persists it to `disk`, and advances. */
export function drain(raft: Raft, disk?: TestDisk): Ready | null {
  if (!raft.hasReady()) return null;
  const rd = raft.ready();
  if (disk !== undefined) persist(disk, rd);
  raft.advance();
  return rd;
}

export function persist(disk: TestDisk, rd: Ready): void {
  if (rd.snapshot !== null) {
    disk.snapshot = rd.snapshot;
    disk.entries = [];
  }
  if (rd.hardState !== null) disk.hardState = rd.hardState;
  const first = rd.entries[0];
  if (first !== undefined) {
    disk.entries = disk.entries.filter((e) => e.index < first.index).concat(rd.entries);
  }
}

/** Messages the node wants sent now. */
export function outbox(raft: Raft): Message[] {
  return [...(drain(raft)?.messages ?? [])];
}

export type MessageOf<T extends Message['type']> = Message & { type: T };

export function ofType<T extends Message['type']>(messages: readonly Message[], type: T): MessageOf<T>[] {
  return messages.filter((m): m is MessageOf<T> => m.type === type);
}

export function data(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

export function text(entry: Entry): string {
  return new TextDecoder().decode(entry.data);
}

/**
 * A set of cores wired by a perfect, synchronous network, with per-link cuts.
 * Enough to script the paper's scenarios step by step.
 */
export class TestCluster {
  readonly nodes = new Map<NodeId, Raft>();
  readonly disks = new Map<NodeId, TestDisk>();
  readonly applied = new Map<NodeId, Entry[]>();
  private readonly cut = new Set<string>();
  /** Every message delivered, for tests that count rounds. */
  readonly delivered: Message[] = [];

  constructor(
    readonly ids: readonly NodeId[],
    readonly options: TestOptions = {},
  ) {
    ids.forEach((id, i) => {
      const { hardState, snapshot, entries } = bootstrapState(ids);
      this.add(id, newRaft(id, ids, options, i + 1), { hardState, snapshot, entries: [...entries] });
    });
  }

  add(id: NodeId, raft: Raft, disk?: TestDisk): void {
    this.nodes.set(id, raft);
    this.disks.set(id, disk ?? { hardState: { term: 0, vote: '', commit: 0 }, snapshot: null, entries: [] });
    if (!this.applied.has(id)) this.applied.set(id, []);
  }

  node(id: NodeId): Raft {
    const raft = this.nodes.get(id);
    if (raft === undefined) throw new Error(`no node ${id}`);
    return raft;
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }

  cutOneWay(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}>${to}`);
  }

  healAll(): void {
    this.cut.clear();
  }

  /** Delivers messages until nothing more happens. */
  settle(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      const inFlight: Message[] = [];
      for (const [id, raft] of this.nodes) {
        const rd = drain(raft, this.disks.get(id));
        if (rd === null) continue;
        this.applied.get(id)?.push(...rd.committedEntries);
        inFlight.push(...rd.messages);
      }
      if (inFlight.length === 0) return;
      for (const m of inFlight) {
        if (this.cut.has(`${m.from}>${m.to}`)) continue;
        const target = this.nodes.get(m.to);
        if (target === undefined) continue;
        this.delivered.push(m);
        target.step(m);
      }
    }
    throw new Error('the cluster did not settle');
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).tick();
  }

  tickAll(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const raft of this.nodes.values()) raft.tick();
      this.settle();
    }
  }

  /** Makes `id` leader by running its election timer out. */
  elect(id: NodeId): void {
    const raft = this.node(id);
    for (let i = 0; i < 100 && raft.currentRole !== 'leader'; i++) {
      raft.tick();
      this.settle();
    }
    if (raft.currentRole !== 'leader') throw new Error(`${id} did not become leader`);
  }

  leader(): Raft | undefined {
    return [...this.nodes.values()].find((r) => r.currentRole === 'leader');
  }

  propose(id: NodeId, ...payloads: string[]): void {
    this.node(id).propose(payloads.map(data));
    this.settle();
  }

  appliedTexts(id: NodeId): string[] {
    return (this.applied.get(id) ?? []).filter((e) => e.type === 'normal').map(text);
  }
}
