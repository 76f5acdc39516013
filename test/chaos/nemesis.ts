/**
 * The nemeses: each injects one kind of fault and knows how to heal it.
 * Process faults are signals to the node processes; network faults go
 * through the per-link proxy; disk and clock faults through each node's
 * test-only faults file; membership changes through the Cluster API.
 */
import type { SeededRandom } from '../../src/raft/index.ts';
import { GrpcError, sleep } from '../support/cluster-harness.ts';
import type { Reply } from '../support/cluster-harness.ts';
import { describeError } from './client.ts';
import type { ChaosCluster } from './cluster.ts';
import type { FaultProxy, LinkMode } from './proxy.ts';

export const NEMESES = [
  'kill',
  'kill-leader',
  'kill-majority',
  'pause',
  'partition',
  'partition-one-way',
  'delay',
  'loss',
  'fsync',
  'clock',
  'membership',
  'transfer',
] as const;

export type NemesisName = (typeof NEMESES)[number];

/** Faults of one group never overlap: two would fight over the same processes, links or files. */
export type FaultGroup = 'process' | 'topology' | 'latency' | 'loss' | 'disk' | 'clock' | 'leadership';

export const GROUP: Readonly<Record<NemesisName, FaultGroup>> = {
  kill: 'process',
  'kill-leader': 'process',
  'kill-majority': 'process',
  pause: 'process',
  membership: 'process',
  partition: 'topology',
  'partition-one-way': 'topology',
  delay: 'latency',
  loss: 'loss',
  fsync: 'disk',
  clock: 'clock',
  transfer: 'leadership',
};

/** The network heals first, so that restarted and re-added nodes come back to a working cluster. */
export const HEAL_ORDER: readonly FaultGroup[] = ['topology', 'loss', 'latency', 'disk', 'clock', 'leadership', 'process'];

export interface NemesisContext {
  readonly cluster: ChaosCluster;
  readonly proxy: FaultProxy;
  readonly rng: SeededRandom;
  readonly electionMs: number;
  /** Budget for a heal that needs the cluster's help (re-adding a member). */
  readonly healTimeoutMs: number;
  /** Members taken out by the membership nemesis and not yet back. */
  readonly removed: Set<string>;
  readonly log: (text: string) => void;
}

export interface StartedFault {
  readonly description: string;
  readonly targets: readonly string[];
  /** A single-node kill that took the leader down. */
  readonly leaderKilled: boolean;
  heal(): Promise<void>;
}

type Start = (ctx: NemesisContext) => Promise<StartedFault | null>;

export function pick<T>(rng: SeededRandom, items: readonly T[]): T {
  if (items.length === 0) throw new Error('pick from an empty list');
  return items[rng.int(items.length)] as T;
}

export function shuffle<T>(rng: SeededRandom, items: readonly T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

export function between(rng: SeededRandom, low: number, high: number): number {
  return low + rng.next() * (high - low);
}

/** Nodes that are members and whose process runs. */
function members(ctx: NemesisContext): string[] {
  return ctx.cluster.ids.filter((id) => !ctx.removed.has(id) && ctx.cluster.node(id).state === 'running');
}

async function leaderOrAny(ctx: NemesisContext, candidates: readonly string[]): Promise<{ id: string; isLeader: boolean }> {
  const leader = await ctx.cluster.leader();
  if (leader !== null && candidates.includes(leader)) return { id: leader, isLeader: true };
  return { id: pick(ctx.rng, candidates), isLeader: false };
}

const noHeal = async (): Promise<void> => {};

// ---- processes --------------------------------------------------------------

const kill: Start = async (ctx) => {
  const candidates = members(ctx);
  if (candidates.length === 0) return null;
  const leader = await ctx.cluster.leader();
  const id = pick(ctx.rng, candidates);
  await ctx.cluster.kill(id);
  return { description: `SIGKILL ${id}${id === leader ? ' (the leader)' : ''}`, targets: [id], leaderKilled: id === leader, heal: async () => ctx.cluster.launch(id) };
};

const killLeader: Start = async (ctx) => {
  const candidates = members(ctx);
  if (candidates.length === 0) return null;
  const { id, isLeader } = await leaderOrAny(ctx, candidates);
  await ctx.cluster.kill(id);
  return { description: `SIGKILL ${id}${isLeader ? ' (the leader)' : ' (no leader known)'}`, targets: [id], leaderKilled: isLeader, heal: async () => ctx.cluster.launch(id) };
};

const killMajority: Start = async (ctx) => {
  const live = members(ctx);
  const size = ctx.cluster.ids.length - ctx.removed.size;
  const victims = shuffle(ctx.rng, live).slice(0, Math.floor(size / 2) + 1);
  if (victims.length === 0) return null;
  await Promise.all(victims.map((id) => ctx.cluster.kill(id)));
  return {
    description: `SIGKILL ${victims.join(', ')} (a majority)`,
    targets: victims,
    leaderKilled: false,
    heal: async () => {
      for (const id of victims) ctx.cluster.launch(id);
    },
  };
};

const pause: Start = async (ctx) => {
  const candidates = members(ctx);
  if (candidates.length === 0) return null;
  const { id, isLeader } = ctx.rng.next() < 0.5 ? await leaderOrAny(ctx, candidates) : { id: pick(ctx.rng, candidates), isLeader: false };
  ctx.cluster.pause(id);
  return { description: `SIGSTOP ${id}${isLeader ? ' (the leader)' : ''}`, targets: [id], leaderKilled: false, heal: async () => ctx.cluster.resume(id) };
};

// ---- network ----------------------------------------------------------------

function cutLinks(ctx: NemesisContext, pairs: readonly [string, string][], mode: LinkMode): () => Promise<void> {
  for (const [from, to] of pairs) ctx.proxy.set(from, to, { mode });
  return async () => {
    for (const [from, to] of pairs) ctx.proxy.set(from, to, { mode: 'up' });
  };
}

function across(a: readonly string[], b: readonly string[]): [string, string][] {
  return a.flatMap((x) => b.map((y): [string, string] => [x, y]));
}

function both(a: readonly string[], b: readonly string[]): [string, string][] {
  return [...across(a, b), ...across(b, a)];
}

const partition: Start = async (ctx) => {
  const ids = ctx.cluster.ids;
  const mode: LinkMode = ctx.rng.next() < 0.7 ? 'blackhole' : 'reset';
  const kind = pick(ctx.rng, ['halves', 'isolated-leader', 'bridge'] as const);
  let pairs: [string, string][];
  let description: string;
  if (kind === 'isolated-leader') {
    const { id, isLeader } = await leaderOrAny(ctx, ids);
    pairs = both([id], ids.filter((x) => x !== id));
    description = `isolate ${id}${isLeader ? ' (the leader)' : ''}`;
  } else if (kind === 'halves') {
    const order = shuffle(ctx.rng, ids);
    const minority = order.slice(0, Math.floor(ids.length / 2));
    const majority = order.slice(minority.length);
    pairs = both(minority, majority);
    description = `${minority.join(',')} | ${majority.join(',')}`;
  } else {
    // A bridge node talks to both sides; the sides cannot talk to each other.
    const order = shuffle(ctx.rng, ids);
    const bridge = order[0] as string;
    const rest = order.slice(1);
    const left = rest.slice(0, Math.floor(rest.length / 2));
    const right = rest.slice(left.length);
    pairs = both(left, right);
    description = `${left.join(',')} | ${right.join(',')} bridged by ${bridge}`;
  }
  return { description: `${description} (${mode})`, targets: ids, leaderKilled: false, heal: cutLinks(ctx, pairs, mode) };
};

const partitionOneWay: Start = async (ctx) => {
  const ids = ctx.cluster.ids;
  const kind = pick(ctx.rng, ['cannot-send', 'cannot-hear', 'minority-cannot-send'] as const);
  let pairs: [string, string][];
  let description: string;
  if (kind === 'minority-cannot-send') {
    const order = shuffle(ctx.rng, ids);
    const minority = order.slice(0, Math.floor(ids.length / 2));
    pairs = across(minority, order.slice(minority.length));
    description = `${minority.join(',')} cannot send to the others`;
  } else {
    const { id, isLeader } = await leaderOrAny(ctx, ids);
    const others = ids.filter((x) => x !== id);
    pairs = kind === 'cannot-send' ? across([id], others) : across(others, [id]);
    description = `${id}${isLeader ? ' (the leader)' : ''} ${kind === 'cannot-send' ? 'cannot send to' : 'cannot hear from'} the others`;
  }
  return { description, targets: ids, leaderKilled: false, heal: cutLinks(ctx, pairs, 'blackhole') };
};

/** All links, or the links to and from one node. */
function someLinks(ctx: NemesisContext): { pairs: [string, string][]; scope: string } {
  const ids = ctx.cluster.ids;
  if (ctx.rng.next() < 0.5) return { pairs: across(ids, ids).filter(([a, b]) => a !== b), scope: 'all links' };
  const id = pick(ctx.rng, ids);
  return { pairs: both([id], ids.filter((x) => x !== id)), scope: `links of ${id}` };
}

const delay: Start = async (ctx) => {
  const { pairs, scope } = someLinks(ctx);
  const delayMs = Math.round(between(ctx.rng, 10, 150));
  const jitterMs = Math.round(between(ctx.rng, 0, 100));
  for (const [from, to] of pairs) ctx.proxy.set(from, to, { delayMs, jitterMs });
  return {
    description: `${delayMs}+${jitterMs} ms delay on ${scope}`,
    targets: [...new Set(pairs.flat())],
    leaderKilled: false,
    heal: async () => {
      for (const [from, to] of pairs) ctx.proxy.set(from, to, { delayMs: 0, jitterMs: 0 });
    },
  };
};

const loss: Start = async (ctx) => {
  const { pairs, scope } = someLinks(ctx);
  const cutProbability = between(ctx.rng, 0.002, 0.03);
  for (const [from, to] of pairs) ctx.proxy.set(from, to, { cutProbability });
  return {
    description: `${(cutProbability * 100).toFixed(1)}% of chunks reset their connection on ${scope}`,
    targets: [...new Set(pairs.flat())],
    leaderKilled: false,
    heal: async () => {
      for (const [from, to] of pairs) ctx.proxy.set(from, to, { cutProbability: 0 });
    },
  };
};

// ---- disk and clock -----------------------------------------------------------

// A node stalls once per new id; ids only grow, also across runs in one process (the test file runs two).
let stallIds = 0;

const fsync: Start = async (ctx) => {
  const candidates = members(ctx);
  if (candidates.length === 0) return null;
  if (ctx.rng.next() < 0.5) {
    const targets = ctx.rng.next() < 0.5 ? ctx.cluster.ids : [pick(ctx.rng, candidates)];
    const persistDelayMs = Math.round(between(ctx.rng, 5, 40));
    for (const id of targets) ctx.cluster.setFaults(id, { persistDelayMs });
    return {
      description: `slow fsync (+${persistDelayMs} ms) on ${targets.join(', ')}`,
      targets,
      leaderKilled: false,
      heal: async () => {
        for (const id of targets) ctx.cluster.setFaults(id, { persistDelayMs: 0 });
      },
    };
  }
  const { id, isLeader } = ctx.rng.next() < 0.6 ? await leaderOrAny(ctx, candidates) : { id: pick(ctx.rng, candidates), isLeader: false };
  const persistStallMs = Math.round(ctx.electionMs * between(ctx.rng, 1.5, 4));
  ctx.cluster.setFaults(id, { persistStallMs, persistStallId: ++stallIds });
  return { description: `fsync stalls ${persistStallMs} ms on ${id}${isLeader ? ' (the leader)' : ''}`, targets: [id], leaderKilled: false, heal: noHeal };
};

const clock: Start = async (ctx) => {
  const candidates = members(ctx);
  if (candidates.length === 0) return null;
  const { id, isLeader } = ctx.rng.next() < 0.5 ? await leaderOrAny(ctx, candidates) : { id: pick(ctx.rng, candidates), isLeader: false };
  const magnitude = ctx.rng.next() < 0.7 ? between(ctx.rng, 2_000, 120_000) : between(ctx.rng, 600_000, 7_200_000);
  const clockOffsetMs = Math.round(ctx.rng.next() < 0.5 ? magnitude : -magnitude);
  ctx.cluster.setFaults(id, { clockOffsetMs });
  return {
    description: `clock of ${id}${isLeader ? ' (the leader)' : ''} jumps ${clockOffsetMs > 0 ? '+' : ''}${(clockOffsetMs / 1000).toFixed(1)}s`,
    targets: [id],
    leaderKilled: false,
    heal: async () => ctx.cluster.setFaults(id, { clockOffsetMs: 0 }),
  };
};

// ---- membership and leadership ------------------------------------------------

/** Calls a Cluster method on the given nodes in turn until one succeeds or answers something `accept` matches. */
async function adminCall(ctx: NemesisContext, method: string, request: object, via: readonly string[], accept: RegExp | null = null): Promise<Reply | null> {
  let lastError = '';
  for (const id of shuffle(ctx.rng, via)) {
    try {
      return await ctx.cluster.client(id).call(method, request, 5000);
    } catch (error) {
      if (accept !== null && error instanceof GrpcError && accept.test(error.details)) return {};
      lastError = describeError(error);
    }
  }
  ctx.log(`${method} ${JSON.stringify(request)} failed: ${lastError}`);
  return null;
}

const membership: Start = async (ctx) => {
  const candidates = members(ctx);
  if (candidates.length < 3 || ctx.removed.size > 0) return null;
  const { id, isLeader } = ctx.rng.next() < 0.3 ? await leaderOrAny(ctx, candidates) : { id: pick(ctx.rng, candidates), isLeader: false };
  const via = candidates.filter((x) => x !== id);
  const removed = await adminCall(ctx, 'RemoveMember', { id }, via, /is not a member/);
  if (removed === null) return null;
  ctx.removed.add(id);
  await ctx.cluster.stopGracefully(id, 5000);
  ctx.cluster.wipe(id);
  // It comes back as a new member with an empty data dir, joining through a member.
  ctx.cluster.node(id).joinAddress = ctx.cluster.clientAddress(pick(ctx.rng, via));
  return { description: `remove ${id}${isLeader ? ' (the leader)' : ''}, then add it back empty`, targets: [id], leaderKilled: false, heal: () => ensureMember(ctx, id) };
};

/**
 * Brings a node back as a running voter, whatever state the membership
 * nemesis left it in: adds it, starts it, waits for it to catch up, promotes it.
 */
export async function ensureMember(ctx: NemesisContext, id: string): Promise<void> {
  const deadline = performance.now() + ctx.healTimeoutMs;
  const node = ctx.cluster.node(id);
  let last = '';
  while (performance.now() < deadline) {
    const leader = await ctx.cluster.leader();
    if (leader === null || leader === id) {
      last = 'no leader';
      await sleep(200);
      continue;
    }
    let list: Reply[];
    try {
      list = ((await ctx.cluster.client(leader).call('Members', {}, 2000))['members'] as Reply[] | undefined) ?? [];
    } catch (error) {
      last = describeError(error);
      await sleep(200);
      continue;
    }
    const member = list.find((m) => m['id'] === id);
    if (member === undefined) {
      await adminCall(ctx, 'AddMember', { id, peer_address: `127.0.0.1:${node.peerPort}`, client_address: ctx.cluster.clientAddress(id) }, [leader], /already a member/);
      last = 'adding';
      continue;
    }
    if (node.state === 'stopped') {
      node.joinAddress ??= ctx.cluster.clientAddress(leader);
      ctx.cluster.launch(id);
      last = 'starting';
      continue;
    }
    if (member['kind'] === 'LEARNER') {
      if (Number(member['match_index']) > 0 && Number(member['lag_entries']) <= 50) {
        await adminCall(ctx, 'PromoteMember', { id }, [leader], /already a voter/);
        last = 'promoting';
      } else {
        last = `catching up (lag ${String(member['lag_entries'])})`;
        await sleep(200);
      }
      continue;
    }
    ctx.removed.delete(id);
    return;
  }
  throw new Error(`${id} is not back as a voter after ${ctx.healTimeoutMs} ms (${last})`);
}

/**
 * Makes the suite's idea of the membership match the cluster's. A membership
 * change whose answer was lost (a deadline, a leader that lost its quorum)
 * may still commit later; a node it removed is still running and believes
 * it is a member. Such a node is stopped, wiped and added back.
 */
export async function reconcileMembership(ctx: NemesisContext): Promise<void> {
  const membersNow = async (): Promise<{ leader: string; ids: Set<string> } | null> => {
    const leader = await ctx.cluster.leader();
    if (leader === null) return null;
    try {
      const members = ((await ctx.cluster.client(leader).call('Members', {}, 2000))['members'] as Reply[] | undefined) ?? [];
      return { leader, ids: new Set(members.map((m) => String(m['id']))) };
    } catch {
      return null;
    }
  };
  const first = await membersNow();
  if (first === null || ctx.cluster.ids.every((id) => first.ids.has(id) || ctx.removed.has(id))) return;
  // Wiping a node that is still a voter would be a lost disk, not a membership change: ask twice.
  await sleep(500);
  const second = await membersNow();
  if (second === null) return;
  const leader = second.leader;
  for (const id of ctx.cluster.ids) {
    if (first.ids.has(id) || second.ids.has(id) || ctx.removed.has(id)) continue;
    ctx.log(`${id} is no longer a member (a change whose outcome was unknown took effect): adding it back empty`);
    ctx.removed.add(id);
    await ctx.cluster.stopGracefully(id, 5000);
    ctx.cluster.wipe(id);
    ctx.cluster.node(id).joinAddress = ctx.cluster.clientAddress(leader);
    await ensureMember(ctx, id);
  }
}

const transfer: Start = async (ctx) => {
  const candidates = members(ctx);
  const leader = await ctx.cluster.leader();
  if (leader === null) return null;
  const others = candidates.filter((x) => x !== leader);
  if (others.length === 0) return null;
  const to = pick(ctx.rng, others);
  let outcome = 'done';
  try {
    await ctx.cluster.client(leader).call('TransferLeadership', { id: to }, 3000);
  } catch (error) {
    outcome = describeError(error);
  }
  return { description: `transfer leadership ${leader} -> ${to} (${outcome})`, targets: [leader, to], leaderKilled: false, heal: noHeal };
};

export const START: Readonly<Record<NemesisName, Start>> = {
  kill,
  'kill-leader': killLeader,
  'kill-majority': killMajority,
  pause,
  partition,
  'partition-one-way': partitionOneWay,
  delay,
  loss,
  fsync,
  clock,
  membership,
  transfer,
};
