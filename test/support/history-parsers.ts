/**
 * Parsers for the history formats in test/fixtures/linearizability (see the
 * README there). Each line is one event; an operation's call and return times
 * are the 1-based line numbers of its invocation and completion, so an
 * explanation's times point straight into the file. Operations come out in
 * invocation order.
 */
import type { Operation } from './linearizability.ts';
import type { KvAppendInput, KvAppendOutput, RegisterInput, RegisterOutput } from './models.ts';

// `INFO  jepsen.util - 3	:invoke	:write	4`; some logs use spaces instead of tabs.
const JEPSEN_LINE = /^INFO\s+jepsen\.util\s+-\s+(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(\S.*?)\s*$/;
const INTEGER = /^-?\d+$/;
const PAIR = /^\[\s*(-?\d+)\s+(-?\d+)\s*\]$/;

/**
 * Jepsen's etcd register logs. Completions:
 * - `:ok` — the read's value (`nil`: never written), the write, the cas happened.
 * - `:fail :cas` — definitely not applied: the compare failed. Kept as a
 *   'fail' output, which the register model takes to mean the register did not
 *   hold the compare value (what porcupine does); dropping it would lose that.
 * - `:fail :read` (`:timed-out`) — the read's outcome is unknown; like every
 *   unknown outcome it gets an infinite return time. It constrains nothing.
 * - `:fail :write` — definitely not applied ('fail', no effect).
 * - `:info` — unknown: may take effect at any time after the call, or never.
 * - no completion at all — the same as `:info`.
 */
export function parseJepsenEtcdLog(text: string): Operation<RegisterInput, RegisterOutput>[] {
  const ops: Operation<RegisterInput, RegisterOutput>[] = [];
  const open = new Map<number, Operation<RegisterInput, RegisterOutput>>();
  forEachLine(text, (line, lineNo) => {
    const match = JEPSEN_LINE.exec(line);
    if (match === null) throw parseError(lineNo, 'not a jepsen.util operation line', line);
    const [, processText = '', type = '', f = '', arg = ''] = match;
    const process = Number(processText);
    if (type === 'invoke') {
      if (open.has(process)) throw parseError(lineNo, `process ${process} invokes while an operation is open`, line);
      const op: Operation<RegisterInput, RegisterOutput> = {
        clientId: process,
        input: jepsenInput(f, arg, lineNo, line),
        output: { status: 'unknown' },
        call: lineNo,
        return: Infinity,
      };
      ops.push(op);
      open.set(process, op);
      return;
    }
    const op = open.get(process);
    if (op === undefined) throw parseError(lineNo, `process ${process} completes an operation it never invoked`, line);
    if (op.input.kind !== f) throw parseError(lineNo, `completes :${f} but process ${process} invoked :${op.input.kind}`, line);
    open.delete(process);
    // :info, and :fail on a read, leave the operation as invoked: unknown, with no return.
    if (type === 'info' || (type === 'fail' && f === 'read')) return;
    op.return = lineNo;
    if (type === 'fail') op.output = { status: 'fail' };
    else op.output = f === 'read' ? { status: 'ok', value: jepsenReadValue(arg, lineNo, line) } : { status: 'ok' };
  });
  return ops;
}

function jepsenInput(f: string, arg: string, lineNo: number, line: string): RegisterInput {
  if (f === 'read') return { kind: 'read' };
  if (f === 'write') {
    if (!INTEGER.test(arg)) throw parseError(lineNo, 'a write takes an integer', line);
    return { kind: 'write', value: Number(arg) };
  }
  const pair = PAIR.exec(arg);
  if (pair === null) throw parseError(lineNo, 'a cas takes [compare set]', line);
  return { kind: 'cas', compare: Number(pair[1]), set: Number(pair[2]) };
}

function jepsenReadValue(arg: string, lineNo: number, line: string): number | null {
  if (arg === 'nil') return null;
  if (!INTEGER.test(arg)) throw parseError(lineNo, 'a read returns nil or an integer', line);
  return Number(arg);
}

// `{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}`
const STRING = String.raw`"((?:[^"\\]|\\.)*)"`;
const KV_LINE = new RegExp(
  String.raw`^\{:process (\d+), :type :(invoke|ok|fail|info), :f :(get|put|append), :key ${STRING}, :value (?:nil|${STRING})\}$`,
);

/**
 * porcupine's key-value logs. `:ok` completes an operation (a get's value is
 * the key's whole string); `:info` or no completion leaves it unknown; `:fail`
 * means it definitely did not happen, and since none of get, put and append
 * reports anything else, such an operation is dropped.
 */
export function parseKvLog(text: string): Operation<KvAppendInput, KvAppendOutput>[] {
  const ops: (Operation<KvAppendInput, KvAppendOutput> | undefined)[] = [];
  const open = new Map<number, number>(); // process -> index in ops
  forEachLine(text, (line, lineNo) => {
    const match = KV_LINE.exec(line);
    if (match === null) throw parseError(lineNo, 'not a key-value operation line', line);
    const [, processText = '', type = '', f = '', rawKey = '', rawValue] = match;
    const process = Number(processText);
    const key = unescape(rawKey);
    const value = rawValue === undefined ? undefined : unescape(rawValue);
    if (type === 'invoke') {
      if (open.has(process)) throw parseError(lineNo, `process ${process} invokes while an operation is open`, line);
      let input: KvAppendInput;
      if (f === 'get') input = { kind: 'get', key };
      else if (value === undefined) throw parseError(lineNo, `:${f} needs a value`, line);
      else input = f === 'put' ? { kind: 'put', key, value } : { kind: 'append', key, value };
      open.set(process, ops.length);
      ops.push({ clientId: process, input, output: { status: 'unknown' }, call: lineNo, return: Infinity });
      return;
    }
    const index = open.get(process);
    const op = index === undefined ? undefined : ops[index];
    if (index === undefined || op === undefined) {
      throw parseError(lineNo, `process ${process} completes an operation it never invoked`, line);
    }
    if (op.input.kind !== f || op.input.key !== key) {
      throw parseError(lineNo, `does not match process ${process}'s open ${op.input.kind} on ${JSON.stringify(op.input.key)}`, line);
    }
    open.delete(process);
    if (type === 'info') return;
    if (type === 'fail') {
      ops[index] = undefined;
      return;
    }
    op.return = lineNo;
    if (f !== 'get') op.output = { status: 'ok' };
    else if (value === undefined) throw parseError(lineNo, 'an ok get needs a value', line);
    else op.output = { status: 'ok', value };
  });
  return ops.filter((op) => op !== undefined);
}

function unescape(text: string): string {
  return text.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c));
}

function forEachLine(text: string, visit: (line: string, lineNo: number) => void): void {
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() !== '') visit(line, i + 1);
  });
}

function parseError(lineNo: number, problem: string, line: string): Error {
  return new Error(`line ${lineNo}: ${problem}: ${line}`);
}
