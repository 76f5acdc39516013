import { describe, expect, it } from 'vitest';
import { SCENARIO_KEYS, SCENARIO_RATE, UsageError, parseOptions } from '../../bench/load-options.ts';
import type { Options } from '../../bench/load-options.ts';

const parse = (...argv: string[]): Options => {
  const options = parseOptions(argv);
  if (options === 'help') throw new Error('help');
  return options;
};

describe('parseOptions: workload runs', () => {
  it('keeps the closed-loop defaults when no scenario is asked for', () => {
    const o = parse();
    expect(o.scenarios).toEqual([]);
    expect(o.keys).toBe(10_000);
    expect(o.ratePerSecond).toBe(0);
  });
});

describe('parseOptions: --scenario', () => {
  it('takes a comma list, with a million keys and a fixed rate unless told otherwise', () => {
    const o = parse('--scenario', 'snapshot-under-load,restart');
    expect(o.scenarios).toEqual(['snapshot-under-load', 'restart']);
    expect(o.keys).toBe(SCENARIO_KEYS);
    expect(o.ratePerSecond).toBe(SCENARIO_RATE);
    expect(o.snapshotOn).toBe('all');
  });

  it('lets --keys, --rate and --snapshot-on override the scenario defaults', () => {
    const o = parse('--scenario', 'snapshot-under-load', '--keys', '5000', '--rate', '300', '--snapshot-on', 'leader');
    expect([o.keys, o.ratePerSecond, o.snapshotOn]).toEqual([5000, 300, 'leader']);
  });

  it('names what is wrong with a bad scenario flag', () => {
    expect(() => parse('--scenario', 'reboot')).toThrow(new UsageError("--scenario must be among snapshot-under-load, restart (got 'reboot')"));
    expect(() => parse('--scenario', 'restart', '--snapshot-on', 'some')).toThrow(/--snapshot-on must be leader or all \(got 'some'\)/);
    expect(() => parse('--scenario', 'snapshot-under-load', '--rate', '0')).toThrow(/needs a fixed --rate above 0/);
    expect(() => parse('--scenario', 'restart', '--endpoints', '127.0.0.1:7001')).toThrow(/not with --endpoints, --compare-etcd or --noop-server/);
    expect(() => parse('--scenario', 'restart', '--noop-server')).toThrow(/not with --endpoints/);
  });
});
