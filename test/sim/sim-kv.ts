import type { Entry } from '../../src/raft/index.ts';

/** The commands the simulation's clients write; reads go through ReadIndex. */
export type KvWrite =
  | { readonly kind: 'put'; readonly key: string; readonly value: string }
  | { readonly kind: 'cas'; readonly key: string; readonly expected: string | null; readonly value: string };

export interface KvWriteResult {
  /** For cas: whether it took effect. A put always does. */
  readonly applied: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeWrite(write: KvWrite): Uint8Array {
  return encoder.encode(JSON.stringify(write));
}

/**
 * The simulation's replicated state: a map of registers. Simple on purpose:
 * the simulation tests the consensus core, not the typed state machine.
 */
export class SimKv {
  private readonly data = new Map<string, string>();
  appliedIndex = 0;

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  apply(entry: Entry): KvWriteResult | null {
    if (entry.index !== this.appliedIndex + 1) {
      throw new Error(`apply out of order: entry ${entry.index} after ${this.appliedIndex}`);
    }
    this.appliedIndex = entry.index;
    if (entry.type !== 'normal') return null;
    const write = JSON.parse(decoder.decode(entry.data)) as KvWrite;
    if (write.kind === 'put') {
      this.data.set(write.key, write.value);
      return { applied: true };
    }
    const current = this.data.get(write.key) ?? null;
    if (current !== write.expected) return { applied: false };
    this.data.set(write.key, write.value);
    return { applied: true };
  }

  /** A digest of the whole state, equal on replicas that applied the same prefix. */
  digest(): string {
    return [...this.data.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => `${k}=${v}`)
      .join(';');
  }

  serialize(): Uint8Array {
    return encoder.encode(JSON.stringify({ appliedIndex: this.appliedIndex, data: [...this.data] }));
  }

  /** Empty bytes are the empty state (the bootstrap snapshot). */
  static deserialize(bytes: Uint8Array): SimKv {
    if (bytes.length === 0) return new SimKv();
    const parsed = JSON.parse(decoder.decode(bytes)) as { appliedIndex: number; data: [string, string][] };
    const kv = new SimKv();
    kv.appliedIndex = parsed.appliedIndex;
    for (const [k, v] of parsed.data) kv.data.set(k, v);
    return kv;
  }
}
