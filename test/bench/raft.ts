/**
 * npm run bench -- raft [--nodes 3] [--batch 256] [--seconds 3] [--value-bytes 64]
 *
 * Throughput of the consensus core alone: an in-process cluster whose messages
 * are handed over directly, with no disk, network or serialization. Prints
 * entries committed (and applied on every node) per second.
 */
import { parseArgs } from 'node:util';
import { Raft, SeededRandom, bootstrapState } from '../../src/raft/index.ts';
import type { Message } from '../../src/raft/index.ts';

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      nodes: { type: 'string', default: '3' },
      batch: { type: 'string', default: '256' },
      seconds: { type: 'string', default: '3' },
      'value-bytes': { type: 'string', default: '64' },
    },
  });
  const nodeCount = Number(values.nodes);
  const batch = Number(values.batch);
  const seconds = Number(values.seconds);
  const payload = new Uint8Array(Number(values['value-bytes']));

  const ids = Array.from({ length: nodeCount }, (_, i) => `n${i + 1}`);
  const nodes = new Map(ids.map((id, i) => [id, new Raft({ id, random: new SeededRandom(i + 1) }, bootstrapState(ids))]));
  const applied = new Map(ids.map((id) => [id, 0]));
  const leader = nodes.get('n1') as Raft;

  const pump = (): void => {
    for (;;) {
      const messages: Message[] = [];
      for (const [id, raft] of nodes) {
        if (!raft.hasReady()) continue;
        const rd = raft.ready();
        messages.push(...rd.messages);
        applied.set(id, (applied.get(id) ?? 0) + rd.committedEntries.length);
        raft.advance();
      }
      if (messages.length === 0) return;
      for (const m of messages) nodes.get(m.to)?.step(m);
    }
  };
  while (leader.currentRole !== 'leader') {
    leader.tick();
    pump();
  }
  // A batch per round, as a server proposes everything that arrived during one Ready.
  const data = Array.from({ length: batch }, () => payload);
  const measure = (ms: number): { entries: number; elapsedMs: number } => {
    const startCommit = leader.status().commit;
    const began = performance.now();
    let rounds = 0;
    while (performance.now() - began < ms) {
      leader.propose(data);
      pump();
      if (++rounds % 64 === 0) leader.tick();
    }
    return { entries: leader.status().commit - startCommit, elapsedMs: performance.now() - began };
  };
  measure(500); // warm up the JIT
  const { entries, elapsedMs } = measure(seconds * 1000);
  const perSecond = Math.round(entries / (elapsedMs / 1000));
  const minApplied = Math.min(...applied.values());
  console.log(`raft core, ${nodeCount} nodes in process, batches of ${batch} x ${payload.length}-byte entries, no I/O`);
  console.log(`  committed ${entries} entries in ${(elapsedMs / 1000).toFixed(2)} s: ${perSecond.toLocaleString('en-US')} entries/s`);
  console.log(`  every node applied at least ${minApplied} entries`);
}
