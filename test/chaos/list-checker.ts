/**
 * A checker for one list that clients only append to (RPush of a value no
 * other append uses) and read whole (LRange 0 -1).
 *
 * If the list is linearizable, there is one order of appends, and every read
 * returns a prefix of it. So, with L the longest read:
 * - every read is a prefix of L, and no value appears twice;
 * - every value read was appended by an append invoked before the read
 *   returned, and not by one that definitely failed;
 * - a read that begins after another read ended is at least as long (no
 *   going back in time);
 * - an append acknowledged before a read began is in that read;
 * - an append acknowledged before another append began comes before it;
 * - an acknowledged append that returned length n sits at position n-1 (or,
 *   if no read saw it yet, beyond every read).
 * These are necessary conditions; for append-only lists with unique values
 * they are also sufficient, without any search.
 */

export interface ListAppend {
  readonly id: number;
  readonly value: string;
  readonly call: number;
  /** Null when the outcome is unknown. */
  readonly ret: number | null;
  readonly outcome: 'ok' | 'fail' | 'unknown';
  /** The list's length after the append, as answered (ok only). */
  readonly length?: number;
}

export interface ListRead {
  readonly id: number;
  readonly call: number;
  readonly ret: number;
  readonly values: readonly string[];
  /** A read after healing: what it misses is a lost write. */
  readonly final?: boolean;
}

export interface ListViolation {
  readonly kind: 'duplicate' | 'unknown-value' | 'failed-append-visible' | 'future-value' | 'not-a-prefix' | 'stale-read' | 'lost-append' | 'append-order' | 'wrong-position';
  /** The operations involved (ids). */
  readonly ops: readonly number[];
  readonly message: string;
  /** The violation rests on a final read. */
  readonly final: boolean;
}

export function checkList(key: string, appends: readonly ListAppend[], reads: readonly ListRead[]): ListViolation[] {
  const out: ListViolation[] = [];
  const add = (v: Omit<ListViolation, 'final'>, final = false) => out.push({ ...v, final });
  const byValue = new Map<string, ListAppend>();
  for (const a of appends) {
    if (byValue.has(a.value)) throw new Error(`list ${key}: value ${a.value} appended twice; the workload must use unique values`);
    byValue.set(a.value, a);
  }

  // Each read on its own: its values exist, none twice, none from the future.
  for (const r of reads) {
    const seen = new Set<string>();
    for (const v of r.values) {
      if (seen.has(v)) add({ kind: 'duplicate', ops: [r.id], message: `read #${r.id} of ${key} holds ${v} twice` }, r.final);
      seen.add(v);
      const a = byValue.get(v);
      if (a === undefined) add({ kind: 'unknown-value', ops: [r.id], message: `read #${r.id} of ${key} holds ${v}, which no append wrote` }, r.final);
      else if (a.outcome === 'fail') add({ kind: 'failed-append-visible', ops: [r.id, a.id], message: `read #${r.id} of ${key} holds ${v}, whose append #${a.id} definitely failed` }, r.final);
      else if (a.call > r.ret) add({ kind: 'future-value', ops: [r.id, a.id], message: `read #${r.id} of ${key} (ended ${ms(r.ret)}) holds ${v}, appended later (#${a.id} at ${ms(a.call)})` }, r.final);
    }
  }

  // One order: every read a prefix of the longest.
  let longest: ListRead | null = null;
  for (const r of reads) if (longest === null || r.values.length > longest.values.length) longest = r;
  const order = longest?.values ?? [];
  for (const r of reads) {
    const at = r.values.findIndex((v, i) => order[i] !== v);
    if (at !== -1) {
      add(
        {
          kind: 'not-a-prefix',
          ops: [r.id, (longest as ListRead).id],
          message: `read #${r.id} of ${key} has ${r.values[at]} at position ${at}, but read #${(longest as ListRead).id} has ${order[at] ?? 'nothing'} there`,
        },
        r.final === true || longest?.final === true,
      );
    }
  }
  const position = new Map<string, number>();
  order.forEach((v, i) => position.set(v, i));

  // Reads never go back in time: sorted by start, each must be as long as every read that ended before it began.
  const byReturn = [...reads].sort((a, b) => a.ret - b.ret);
  const byCall = [...reads].sort((a, b) => a.call - b.call);
  let ended = 0;
  let longestEnded: ListRead | null = null;
  for (const r of byCall) {
    while (ended < byReturn.length && (byReturn[ended] as ListRead).ret < r.call) {
      const e = byReturn[ended] as ListRead;
      if (longestEnded === null || e.values.length > longestEnded.values.length) longestEnded = e;
      ended++;
    }
    if (longestEnded !== null && r.values.length < longestEnded.values.length) {
      add(
        {
          kind: 'stale-read',
          ops: [r.id, longestEnded.id],
          message: `read #${r.id} of ${key} (began ${ms(r.call)}) has ${r.values.length} values, but read #${longestEnded.id}, which ended before (${ms(longestEnded.ret)}), had ${longestEnded.values.length}`,
        },
        r.final,
      );
    }
  }

  // Acknowledged appends are in every read that began after them, in acknowledgement order.
  const acked = appends.filter((a) => a.outcome === 'ok' && a.ret !== null).sort((a, b) => (a.ret as number) - (b.ret as number));
  for (const r of byCall) {
    const inRead = new Set(r.values);
    for (const a of acked) {
      if ((a.ret as number) >= r.call) break;
      if (!inRead.has(a.value)) {
        add(
          {
            kind: 'lost-append',
            ops: [r.id, a.id],
            message: `read #${r.id} of ${key} (began ${ms(r.call)}) lacks ${a.value}, whose append #${a.id} was acknowledged at ${ms(a.ret as number)}`,
          },
          r.final,
        );
      }
    }
  }
  for (const b of appends) {
    const pb = position.get(b.value);
    if (pb === undefined) continue;
    for (const a of acked) {
      if ((a.ret as number) >= b.call) break;
      const pa = position.get(a.value);
      if (pa === undefined || pa > pb) {
        add({
          kind: 'append-order',
          ops: [a.id, b.id],
          message: `in ${key}, ${b.value} (#${b.id}, invoked ${ms(b.call)}) is at ${pb}, but ${a.value} (#${a.id}, acknowledged before, at ${ms(a.ret as number)}) is ${pa === undefined ? 'missing' : `at ${pa}`}`,
        });
      }
    }
  }

  // The length an append answered is its position.
  for (const a of acked) {
    if (a.length === undefined) continue;
    const p = position.get(a.value);
    if (p === undefined ? a.length <= order.length : p !== a.length - 1) {
      add({
        kind: 'wrong-position',
        ops: [a.id],
        message: `append #${a.id} of ${a.value} to ${key} answered length ${a.length}, but the value is ${p === undefined ? `in no read (the longest has ${order.length})` : `at position ${p}`}`,
      });
    }
  }
  return out;
}

function ms(t: number): string {
  return `${(t / 1000).toFixed(3)}s`;
}
