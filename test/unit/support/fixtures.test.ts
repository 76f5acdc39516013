// The checker against histories with published verdicts (porcupine's test
// data; see test/fixtures/linearizability/README.md).
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseJepsenEtcdLog, parseKvLog } from '../../support/history-parsers.ts';
import { checkOperations } from '../../support/linearizability.ts';
import { kvAppendModel, registerModel } from '../../support/models.ts';

const fixtures = new URL('../../fixtures/linearizability/', import.meta.url);
const jepsenDir = new URL('jepsen-etcd/', fixtures);
const kvDir = new URL('kv/', fixtures);

// `etcd_000.log not-linearizable`; the one without a verdict says `unknown (...)`.
const expected = new Map(
  readFileSync(new URL('EXPECTED.txt', jepsenDir), 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [file = '', verdict = ''] = line.split(/\s+/);
      return [file, verdict] as const;
    }),
);
const verdictOf = { linearizable: 'ok', 'not-linearizable': 'illegal' } as const;

describe('jepsen etcd histories', () => {
  const logs = readdirSync(jepsenDir)
    .filter((file) => file.endsWith('.log'))
    .sort();

  it('has a line in EXPECTED.txt for every log', () => {
    expect(logs).toHaveLength(103);
    expect([...expected.keys()].sort()).toEqual(logs);
    const verdicts = [...expected.values()];
    expect(verdicts.filter((v) => v === 'linearizable')).toHaveLength(23);
    expect(verdicts.filter((v) => v === 'not-linearizable')).toHaveLength(79);
  });

  const judged = logs.flatMap((file) => {
    const verdict = expected.get(file);
    return verdict === 'linearizable' || verdict === 'not-linearizable' ? [{ file, verdict: verdict as keyof typeof verdictOf }] : [];
  });
  it.each(judged)('$file is $verdict', ({ file, verdict }) => {
    const ops = parseJepsenEtcdLog(readFileSync(new URL(file, jepsenDir), 'utf8'));
    const result = checkOperations(registerModel, ops);
    expect(result.verdict).toBe(verdictOf[verdict]);
  });

  it('etcd_095 (no published verdict) completes under a timeout', () => {
    const ops = parseJepsenEtcdLog(readFileSync(new URL('etcd_095.log', jepsenDir), 'utf8'));
    const result = checkOperations(registerModel, ops, { timeoutMs: 5_000 });
    expect(['ok', 'illegal', 'unknown']).toContain(result.verdict);
  });

  it('explains a violation by naming a read that saw a stale value', () => {
    const ops = parseJepsenEtcdLog(readFileSync(new URL('etcd_000.log', jepsenDir), 'utf8'));
    const result = checkOperations(registerModel, ops);
    if (result.verdict !== 'illegal') throw new Error(`expected illegal, got ${result.verdict}`);
    expect(result.culprit.input.kind).toBe('read');
    expect(result.pending).toContain(result.culprit);
    expect(result.explanation).toContain(`#${ops.indexOf(result.culprit)} client ${result.culprit.clientId}`);
  });
});

describe('key-value histories', () => {
  const files = readdirSync(kvDir)
    .filter((file) => file.endsWith('.txt'))
    .sort();

  it('has the six histories', () => {
    expect(files).toEqual(['c01-bad.txt', 'c01-ok.txt', 'c10-bad.txt', 'c10-ok.txt', 'c50-bad.txt', 'c50-ok.txt']);
  });

  it.each(files)('%s gets the verdict its name gives', (file) => {
    const ops = parseKvLog(readFileSync(new URL(file, kvDir), 'utf8'));
    const result = checkOperations(kvAppendModel, ops);
    expect(result.verdict).toBe(file.endsWith('-ok.txt') ? 'ok' : 'illegal');
  });
});
