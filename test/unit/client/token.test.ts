/**
 * The client's token: every call carries `authorization: Bearer <token>`,
 * unary calls, their retries, watches and backups alike.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { QuorumClient } from '../../../src/client/index.ts';
import { ServerPool, status } from './scripted-server.ts';

const pool = new ServerPool();
const clients: QuorumClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  pool.closeAll();
});

const authorization = (call: { metadata: grpc.Metadata }): unknown => call.metadata.get('authorization')[0];

describe('QuorumClient token', () => {
  it('sends the token on unary calls, on each retry, on watches and on backups', async () => {
    const seen: Record<string, unknown[]> = { Get: [], Watch: [], Backup: [] };
    let gets = 0;
    const node = await pool.start({
      kv: {
        Get: (_request, call) => {
          seen['Get']?.push(authorization(call));
          // The first attempt fails in a way a read retries.
          if (gets++ === 0) throw status(grpc.status.UNAVAILABLE, 'try again');
          return { found: true, value: Buffer.from('v') };
        },
        Watch: (call) => {
          seen['Watch']?.push(authorization(call));
          call.write({ index: 1, type: 'PUT', key: 'k', value: Buffer.from('v'), value_type: 'STRING' });
        },
      },
      cluster: {
        Status: () => ({ applied_index: 0 }),
        Backup: (call) => {
          seen['Backup']?.push(authorization(call));
          call.write({ offset: 0, data: Buffer.from('x'), index: 1, term: 1, size_bytes: 1 });
          call.end();
        },
      },
    });
    const client = new QuorumClient({ endpoints: [node.address], token: 's3cret-token', retry: { initialBackoffMs: 5, maxBackoffMs: 20 } });
    clients.push(client);

    expect(await client.getString('k')).toBe('v');
    const controller = new AbortController();
    for await (const event of client.watch('k', { fromIndex: 1, signal: controller.signal })) {
      expect(event.key).toBe('k');
      controller.abort();
    }
    for await (const chunk of client.backup()) expect(chunk.data.length).toBe(1);

    expect(seen).toEqual({ Get: ['Bearer s3cret-token', 'Bearer s3cret-token'], Watch: ['Bearer s3cret-token'], Backup: ['Bearer s3cret-token'] });
  });

  it('sends no authorization header without a token, and refuses a token that cannot be a header', async () => {
    let header: unknown = 'unset';
    const node = await pool.start({ kv: { Size: (_r, call) => ((header = authorization(call)), { keys: 0 }) } });
    const client = new QuorumClient({ endpoints: [node.address] });
    clients.push(client);
    await client.size();
    expect(header).toBeUndefined();
    expect(() => new QuorumClient({ endpoints: [node.address], token: 'has space' })).toThrow(/token must be visible ASCII/);
  });
});
