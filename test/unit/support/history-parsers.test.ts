import { describe, expect, it } from 'vitest';
import { parseJepsenEtcdLog, parseKvLog } from '../../support/history-parsers.ts';

const jepsen = (...lines: string[]): string => lines.map((line) => `INFO  jepsen.util - ${line}`).join('\n');

describe('parseJepsenEtcdLog', () => {
  it('pairs invocations with completions, timed by line number', () => {
    const ops = parseJepsenEtcdLog(
      jepsen(
        '0\t:invoke\t:read\tnil',
        '1\t:invoke\t:write\t4',
        '0\t:ok\t:read\tnil',
        '1\t:ok\t:write\t4',
        '2\t:invoke\t:cas\t[4 1]',
        '0\t:invoke\t:read\tnil',
        '2\t:ok\t:cas\t[4 1]',
        '0\t:ok\t:read\t1',
      ),
    );
    expect(ops).toEqual([
      { clientId: 0, input: { kind: 'read' }, output: { status: 'ok', value: null }, call: 1, return: 3 },
      { clientId: 1, input: { kind: 'write', value: 4 }, output: { status: 'ok' }, call: 2, return: 4 },
      { clientId: 2, input: { kind: 'cas', compare: 4, set: 1 }, output: { status: 'ok' }, call: 5, return: 7 },
      { clientId: 0, input: { kind: 'read' }, output: { status: 'ok', value: 1 }, call: 6, return: 8 },
    ]);
  });

  it('keeps a failed cas as a definite failure, with its return', () => {
    const [op] = parseJepsenEtcdLog(jepsen('2\t:invoke\t:cas\t[3 0]', '2\t:fail\t:cas\t[3 0]'));
    expect(op).toMatchObject({ output: { status: 'fail' }, call: 1, return: 2 });
  });

  it('makes timed-out reads, :info operations and unanswered invocations unknown', () => {
    const ops = parseJepsenEtcdLog(
      jepsen(
        '3\t:invoke\t:read\tnil',
        '3\t:fail\t:read\t:timed-out',
        '4\t:invoke\t:write\t2',
        '4\t:info\t:write\t:timed-out',
        '5\t:invoke\t:cas\t[1 2]',
        '5\t:info\t:cas\t:timed-out',
        '6\t:invoke\t:write\t3',
      ),
    );
    expect(ops.map((op) => [op.input.kind, op.output.status, op.call, op.return])).toEqual([
      ['read', 'unknown', 1, Infinity],
      ['write', 'unknown', 3, Infinity],
      ['cas', 'unknown', 5, Infinity],
      ['write', 'unknown', 7, Infinity],
    ]);
  });

  it('accepts spaces between fields and skips blank lines', () => {
    const ops = parseJepsenEtcdLog('INFO  jepsen.util - 1   :invoke :write  3\n\nINFO  jepsen.util - 1  :ok     :write  3\n');
    expect(ops).toEqual([{ clientId: 1, input: { kind: 'write', value: 3 }, output: { status: 'ok' }, call: 1, return: 3 }]);
  });

  it('rejects what it does not understand, naming the line', () => {
    expect(() => parseJepsenEtcdLog(jepsen('0\t:invoke\t:read\tnil', 'garbage'))).toThrow(/line 2: not a jepsen.util/);
    expect(() => parseJepsenEtcdLog(jepsen('0\t:ok\t:read\t3'))).toThrow(/line 1: process 0 completes an operation it never invoked/);
    expect(() => parseJepsenEtcdLog(jepsen('0\t:invoke\t:read\tnil', '0\t:invoke\t:read\tnil'))).toThrow(/line 2: .*while an operation is open/);
    expect(() => parseJepsenEtcdLog(jepsen('0\t:invoke\t:read\tnil', '0\t:ok\t:write\t3'))).toThrow(/line 2: completes :write/);
    expect(() => parseJepsenEtcdLog(jepsen('0\t:invoke\t:cas\t[1]'))).toThrow(/line 1: a cas takes/);
    expect(() => parseJepsenEtcdLog(jepsen('0\t:invoke\t:read\tnil', '0\t:ok\t:read\tfoo'))).toThrow(/line 2: a read returns/);
  });
});

const kv = (process: number, type: string, f: string, key: string, value: string | null): string =>
  `{:process ${process}, :type :${type}, :f :${f}, :key "${key}", :value ${value === null ? 'nil' : `"${value}"`}}`;

describe('parseKvLog', () => {
  it('pairs invocations with completions, timed by line number', () => {
    const ops = parseKvLog(
      [
        kv(0, 'invoke', 'append', '0', 'x 0 0 y'),
        kv(1, 'invoke', 'get', '0', null),
        kv(0, 'ok', 'append', '0', 'x 0 0 y'),
        kv(1, 'ok', 'get', '0', ''),
        kv(1, 'invoke', 'put', '1', 'v'),
        kv(1, 'ok', 'put', '1', 'v'),
      ].join('\n'),
    );
    expect(ops).toEqual([
      { clientId: 0, input: { kind: 'append', key: '0', value: 'x 0 0 y' }, output: { status: 'ok' }, call: 1, return: 3 },
      { clientId: 1, input: { kind: 'get', key: '0' }, output: { status: 'ok', value: '' }, call: 2, return: 4 },
      { clientId: 1, input: { kind: 'put', key: '1', value: 'v' }, output: { status: 'ok' }, call: 5, return: 6 },
    ]);
  });

  it('leaves :info and unanswered operations unknown, drops failed ones, and unescapes strings', () => {
    const ops = parseKvLog(
      [
        kv(0, 'invoke', 'put', 'k', 'a'),
        kv(0, 'info', 'put', 'k', 'a'),
        kv(1, 'invoke', 'append', 'k', 'b'),
        kv(1, 'fail', 'append', 'k', 'b'),
        kv(2, 'invoke', 'append', 'k\\"q', 'c\\\\'),
      ].join('\n'),
    );
    expect(ops).toEqual([
      { clientId: 0, input: { kind: 'put', key: 'k', value: 'a' }, output: { status: 'unknown' }, call: 1, return: Infinity },
      { clientId: 2, input: { kind: 'append', key: 'k"q', value: 'c\\' }, output: { status: 'unknown' }, call: 5, return: Infinity },
    ]);
  });

  it('rejects what it does not understand, naming the line', () => {
    expect(() => parseKvLog('{:process 0}')).toThrow(/line 1: not a key-value operation line/);
    expect(() => parseKvLog(kv(0, 'ok', 'get', 'k', ''))).toThrow(/line 1: process 0 completes an operation it never invoked/);
    expect(() => parseKvLog([kv(0, 'invoke', 'get', 'k', null), kv(0, 'ok', 'get', 'j', '')].join('\n'))).toThrow(/line 2: does not match/);
    expect(() => parseKvLog([kv(0, 'invoke', 'get', 'k', null), kv(0, 'ok', 'get', 'k', null)].join('\n'))).toThrow(/line 2: an ok get needs a value/);
    expect(() => parseKvLog(kv(0, 'invoke', 'put', 'k', null))).toThrow(/line 1: :put needs a value/);
  });
});
