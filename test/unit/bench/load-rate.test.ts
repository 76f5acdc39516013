import { describe, expect, it } from 'vitest';
import { RateSchedule } from '../../bench/load-rate.ts';

describe('RateSchedule', () => {
  it('makes request k due at start + k / rate', () => {
    const s = new RateSchedule(1000, 50);
    expect([s.dueMs(0), s.dueMs(1), s.dueMs(1000)]).toEqual([50, 51, 1050]);
    expect(new RateSchedule(3, 0).dueMs(2)).toBeCloseTo(666.667, 3);
  });

  it('hands out nothing before the start, then each request once it is due', () => {
    const s = new RateSchedule(100, 1000); // one every 10 ms
    expect(s.take(999)).toBeUndefined();
    expect(s.take(1000)).toBe(1000);
    expect(s.take(1005)).toBeUndefined();
    expect(s.take(1010)).toBe(1010);
    expect(s.sent).toBe(2);
  });

  it('keeps the schedule when the sender falls behind: the backlog comes out with its original due times', () => {
    const s = new RateSchedule(100, 0);
    expect(s.dueCount(45)).toBe(5); // 0, 10, 20, 30, 40
    const times: number[] = [];
    for (let t = s.take(45); t !== undefined; t = s.take(45)) times.push(t);
    expect(times).toEqual([0, 10, 20, 30, 40]);
    expect(s.dueCount(45)).toBe(0);
    expect(s.nextDueMs()).toBe(50);
  });

  it('counts the backlog the same way take() hands it out, at every instant', () => {
    const s = new RateSchedule(7, 3);
    for (let now = 0; now < 2000; now += 0.37) {
      const backlog = s.dueCount(now);
      let taken = 0;
      while (s.take(now) !== undefined) taken++;
      expect(taken).toBe(backlog);
    }
  });

  it('refuses a rate that is not a positive number', () => {
    expect(() => new RateSchedule(0, 0)).toThrow(RangeError);
    expect(() => new RateSchedule(Number.NaN, 0)).toThrow(RangeError);
    expect(() => new RateSchedule(Infinity, 0)).toThrow(RangeError);
  });
});
