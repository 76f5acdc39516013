/**
 * The resumable watch: a stream broken mid-way is reopened from the last
 * index seen, and the consumer sees every event exactly once.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { QuorumClient, text, type WatchEvent } from '../../../src/client/index.ts';
import { deadAddress, notLeader, ServerPool, status, type Request } from './scripted-server.ts';

const pool = new ServerPool();
const clients: QuorumClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  pool.closeAll();
});

function client(endpoints: string[]): QuorumClient {
  const c = new QuorumClient({ endpoints, timeoutMs: 3_000, retry: { initialBackoffMs: 5, maxBackoffMs: 20 } });
  clients.push(c);
  return c;
}

interface Ev {
  index: number;
  key: string;
  value?: string;
  type?: 'PUT' | 'DELETE' | 'EXPIRE' | 'EVICT';
}
/** The log the scripted servers serve watches from. */
const LOG: Ev[] = [
  { index: 5, key: 'k', value: 'a' },
  { index: 6, key: 'k1', value: 'b' },
  { index: 6, key: 'k2', value: 'c' },
  { index: 7, key: 'k', type: 'DELETE' },
  { index: 8, key: 'k3', value: 'd' },
];

function wire(e: Ev): object {
  const type = e.type ?? 'PUT';
  return { index: e.index, type, key: e.key, value: Buffer.from(e.value ?? ''), value_type: type === 'PUT' ? 'STRING' : 'NONE' };
}

function short(e: WatchEvent): string {
  return `${e.index}:${e.type}:${e.key}${e.value === null ? '' : `=${text(e.value)}`}`;
}

async function take(iterable: AsyncIterable<WatchEvent>, n: number): Promise<string[]> {
  const out: string[] = [];
  if (n === 0) return out;
  for await (const event of iterable) {
    out.push(short(event));
    if (out.length === n) break;
  }
  return out;
}

/** Sends the log from the requested index; the first `breakAfter` streams stop after that many events with `fail`. */
function watchScript(breaks: { after: number; fail: () => unknown }[]) {
  let opened = 0;
  return (call: grpc.ServerWritableStream<Request, unknown>): void => {
    const plan = breaks[opened++];
    const from = call.request['from_index'] as number;
    const events = LOG.filter((e) => e.index >= from);
    const send = plan === undefined ? events : events.slice(0, plan.after);
    for (const e of send) call.write(wire(e));
    if (plan !== undefined) call.emit('error', plan.fail());
    // else: leave the stream open, as a live watch does
  };
}

const EXPECTED = ['5:put:k=a', '6:put:k1=b', '6:put:k2=c', '7:delete:k', '8:put:k3=d'];

describe('watch', () => {
  it('resumes after a break between indexes: no gap, no repeat', async () => {
    const node = await pool.start({ kv: { Watch: watchScript([{ after: 1, fail: () => status(grpc.status.UNAVAILABLE, 'leader changed') }]) } });
    await expect(take(client([node.address]).watch('k', { prefix: true, fromIndex: 5 }), 5)).resolves.toEqual(EXPECTED);
    expect(node.received('Watch').map((r) => [r['key'], r['prefix'], r['from_index']])).toEqual([
      ['k', true, 5],
      ['k', true, 5],
    ]);
  });

  it('resumes after a break inside one index (several events per entry) from that index, dropping what it saw', async () => {
    const node = await pool.start({
      kv: {
        Watch: watchScript([
          { after: 2, fail: () => status(grpc.status.UNAVAILABLE, 'node stepping down') },
          { after: 3, fail: () => status(grpc.status.UNAVAILABLE, 'again') },
        ]),
      },
    });
    await expect(take(client([node.address]).watch('k', { prefix: true, fromIndex: 1 }), 5)).resolves.toEqual(EXPECTED);
    expect(node.received('Watch').map((r) => r['from_index'])).toEqual([1, 6, 7]);
  });

  it('follows a leader hint and skips a dead endpoint when reconnecting', async () => {
    const second = await pool.start({ kv: { Watch: watchScript([]) } });
    const first = await pool.start({ kv: { Watch: watchScript([{ after: 4, fail: () => notLeader(second.address) }]) } });
    const c = client([first.address, await deadAddress()]);
    await expect(take(c.watch('k', { prefix: true, fromIndex: 5 }), 5)).resolves.toEqual(EXPECTED);
    expect(second.received('Watch')[0]?.['from_index']).toBe(7);
  });

  it('reconnects to another endpoint when its node goes away mid-stream', async () => {
    const other = await pool.start({ kv: { Watch: watchScript([]) } });
    const node = await pool.start({
      kv: {
        Watch: (call) => {
          for (const e of LOG.slice(0, 3)) call.write(wire(e));
          setTimeout(() => node.close(), 20);
        },
      },
    });
    await expect(take(client([node.address, other.address]).watch('k', { prefix: true, fromIndex: 5 }), 5)).resolves.toEqual(EXPECTED);
    expect(other.received('Watch')[0]?.['from_index']).toBe(6);
  });

  it('a watch "from now" starts after the applied index a node reports', async () => {
    const node = await pool.start({
      kv: { Watch: watchScript([{ after: 0, fail: () => status(grpc.status.UNAVAILABLE, 'not yet') }]) },
      cluster: { Status: () => ({ applied_index: 6 }) },
    });
    await expect(take(client([node.address]).watch('k', { prefix: true }), 2)).resolves.toEqual(['7:delete:k', '8:put:k3=d']);
    expect(node.received('Watch').map((r) => r['from_index'])).toEqual([7, 7]);
  });

  it('resumes after the node drops it for falling behind (RESOURCE_EXHAUSTED), even inside one index', async () => {
    const node = await pool.start({
      kv: { Watch: watchScript([{ after: 2, fail: () => status(grpc.status.RESOURCE_EXHAUSTED, 'the watcher fell behind; resume from its last index') }]) },
    });
    await expect(take(client([node.address]).watch('k', { prefix: true, fromIndex: 5 }), 5)).resolves.toEqual(EXPECTED);
    expect(node.received('Watch').map((r) => r['from_index'])).toEqual([5, 6]);
  });

  it('asks another member when a node no longer holds the events (OUT_OF_RANGE)', async () => {
    const restarted = await pool.start({
      kv: { Watch: (call) => void call.emit('error', status(grpc.status.OUT_OF_RANGE, 'events before index 40 are no longer held by this node')) },
    });
    const other = await pool.start({ kv: { Watch: watchScript([]) } });
    await expect(take(client([restarted.address, other.address]).watch('k', { prefix: true, fromIndex: 5 }), 5)).resolves.toEqual(EXPECTED);
  });

  it('fails with OUT_OF_RANGE when no endpoint holds the events any more', async () => {
    const node = await pool.start({
      kv: { Watch: (call) => void call.emit('error', status(grpc.status.OUT_OF_RANGE, 'index 2 is compacted; the first index available is 40')) },
    });
    await expect(take(client([node.address]).watch('k', { fromIndex: 2 }), 1)).rejects.toMatchObject({
      code: 'OUT_OF_RANGE',
      details: 'index 2 is compacted; the first index available is 40',
    });
  });

  it('gives up when no endpoint answers within the retry budget', async () => {
    const c = new QuorumClient({ endpoints: [await deadAddress()], timeoutMs: 200, retry: { initialBackoffMs: 5, maxBackoffMs: 20 } });
    clients.push(c);
    await expect(take(c.watch('k', { fromIndex: 1 }), 1)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('ends quietly when the signal fires, and closes the stream', async () => {
    let cancelled = false;
    const node = await pool.start({
      kv: {
        Watch: (call) => {
          call.write(wire({ index: 5, key: 'k', value: 'a' }));
          call.on('cancelled', () => (cancelled = true));
        },
      },
    });
    const controller = new AbortController();
    const seen: string[] = [];
    for await (const event of client([node.address]).watch('k', { fromIndex: 5, signal: controller.signal })) {
      seen.push(short(event));
      setTimeout(() => controller.abort(), 10);
    }
    expect(seen).toEqual(['5:put:k=a']);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(cancelled).toBe(true);
  });
});
