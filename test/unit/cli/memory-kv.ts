/**
 * Scripts for a ScriptedServer that keep strings, lists and hashes in a Map:
 * just enough of the KV service for qkv's end-to-end paths (one-shot and
 * REPL) to run against a real gRPC server. Not a model of the server.
 */
import * as grpc from '@grpc/grpc-js';
import { status, type Scripts } from '../client/scripted-server.ts';

type Stored = { type: 'STRING'; value: Buffer } | { type: 'LIST'; values: Buffer[] } | { type: 'HASH'; fields: Map<string, Buffer> };

export function memoryKv(): Scripts & { readonly data: Map<string, Stored> } {
  const data = new Map<string, Stored>();
  const wrongType = (key: string, held: string) => status(grpc.status.FAILED_PRECONDITION, `WRONGTYPE: key '${key}' holds a ${held.toLowerCase()}`);
  const list = (key: string): Buffer[] => {
    const v = data.get(key) ?? { type: 'LIST', values: [] };
    if (v.type !== 'LIST') throw wrongType(key, v.type);
    data.set(key, v);
    return v.values;
  };
  const hash = (key: string): Map<string, Buffer> => {
    const v = data.get(key) ?? { type: 'HASH', fields: new Map<string, Buffer>() };
    if (v.type !== 'HASH') throw wrongType(key, v.type);
    data.set(key, v);
    return v.fields;
  };
  return {
    data,
    kv: {
      Get: (r) => {
        const v = data.get(r['key']);
        if (v !== undefined && v.type !== 'STRING') throw wrongType(r['key'], v.type);
        return { found: v !== undefined, value: v?.value ?? Buffer.alloc(0) };
      },
      Set: (r) => {
        const before = data.get(r['key']);
        const applied = r['condition'] === 'ALWAYS' || (r['condition'] === 'IF_ABSENT') === (before === undefined);
        if (applied) data.set(r['key'], { type: 'STRING', value: r['value'] });
        return { applied, previous_found: before !== undefined, previous: before?.type === 'STRING' ? before.value : Buffer.alloc(0) };
      },
      Delete: (r) => ({ deleted: (r['keys'] as string[]).filter((k) => data.delete(k)).length }),
      Type: (r) => ({ type: data.get(r['key'])?.type ?? 'NONE' }),
      Size: () => ({ keys: data.size }),
      Clear: () => {
        const deleted = data.size;
        data.clear();
        return { deleted };
      },
      Keys: () => ({ keys: [...data.keys()].sort(), next_cursor: '' }),
      RPush: (r) => ({ length: list(r['key']).push(...(r['values'] as Buffer[])) }),
      LRange: (r) => {
        const values = data.has(r['key']) ? list(r['key']) : [];
        const stop = r['stop'] < 0 ? values.length + r['stop'] : r['stop'];
        return { values: values.slice(r['start'], stop + 1) };
      },
      HSet: (r) => {
        const fields = hash(r['key']);
        const entries = Object.entries(r['fields'] as Record<string, Buffer>);
        const added = entries.filter(([f]) => !fields.has(f)).length;
        for (const [f, v] of entries) fields.set(f, v);
        return { added };
      },
      HGetAll: (r) => ({ fields: Object.fromEntries(data.has(r['key']) ? hash(r['key']) : []) }),
    },
  };
}
