/**
 * Where each member can be reached: its peer address (Raft traffic) and its
 * client address (forwarded requests, leader hints, Members). Learned from
 * --initial-cluster, from membership changes (their context names both
 * addresses), and from peers announcing themselves; kept in the data dir so a
 * restarted node can reach the others before it hears from anyone.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NodeId } from '../raft/index.ts';

export interface MemberAddresses {
  readonly peerAddr: string;
  readonly clientAddr: string;
}

export const ADDRESS_BOOK_FILE = 'members.json';

/** What AddMember puts in a membership change's context. */
export function encodeMemberContext(addresses: MemberAddresses): string {
  return JSON.stringify({ peerAddr: addresses.peerAddr, clientAddr: addresses.clientAddr });
}

export function decodeMemberContext(context: string): MemberAddresses | null {
  if (context === '') return null;
  try {
    const parsed = JSON.parse(context) as Partial<MemberAddresses>;
    if (typeof parsed.peerAddr === 'string' && typeof parsed.clientAddr === 'string') return { peerAddr: parsed.peerAddr, clientAddr: parsed.clientAddr };
  } catch {
    // A context we did not write: no addresses in it.
  }
  return null;
}

export class AddressBook {
  private readonly members = new Map<NodeId, MemberAddresses>();
  private readonly file: string;
  private readonly listeners: (() => void)[] = [];

  constructor(dataDir: string) {
    this.file = join(dataDir, ADDRESS_BOOK_FILE);
    if (existsSync(this.file)) {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as Record<string, MemberAddresses>;
      for (const [id, addresses] of Object.entries(parsed)) this.members.set(id, { peerAddr: addresses.peerAddr, clientAddr: addresses.clientAddr });
    }
  }

  get(id: NodeId): MemberAddresses | undefined {
    return this.members.get(id);
  }

  entries(): [NodeId, MemberAddresses][] {
    return [...this.members];
  }

  /** Records what is known of `id`; empty strings leave the known value alone. Persists only on change. */
  update(id: NodeId, addresses: Partial<MemberAddresses>): void {
    const known = this.members.get(id) ?? { peerAddr: '', clientAddr: '' };
    const next = {
      peerAddr: addresses.peerAddr !== undefined && addresses.peerAddr !== '' ? addresses.peerAddr : known.peerAddr,
      clientAddr: addresses.clientAddr !== undefined && addresses.clientAddr !== '' ? addresses.clientAddr : known.clientAddr,
    };
    if (next.peerAddr === known.peerAddr && next.clientAddr === known.clientAddr && this.members.has(id)) return;
    this.members.set(id, next);
    this.save();
  }

  remove(id: NodeId): void {
    if (this.members.delete(id)) this.save();
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(Object.fromEntries(this.members), null, 2)}\n`);
    renameSync(tmp, this.file);
    for (const listener of this.listeners) listener();
  }
}
