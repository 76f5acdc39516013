import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Deque } from '../../../src/state/list-deque.ts';

describe('Deque', () => {
  it('pushes and pops at both ends in order', () => {
    const d = new Deque<number>();
    d.pushBack(1);
    d.pushBack(2);
    d.pushFront(0);
    d.pushFront(-1);
    d.pushBack(3); // grows past the initial capacity of 4
    expect(d.toArray()).toEqual([-1, 0, 1, 2, 3]);
    expect(d.popFront()).toBe(-1);
    expect(d.popBack()).toBe(3);
    expect(d.toArray()).toEqual([0, 1, 2]);
    expect(d.length).toBe(3);
  });

  it('answers undefined for pops of an empty deque and indexes out of range', () => {
    const d = new Deque<string>();
    expect(d.popFront()).toBeUndefined();
    expect(d.popBack()).toBeUndefined();
    d.pushBack('a');
    expect(d.at(-1)).toBeUndefined();
    expect(d.at(1)).toBeUndefined();
    expect(d.at(0)).toBe('a');
    expect(() => d.set(1, 'b')).toThrow(RangeError);
  });

  it('slices and sets by logical index across the ring wrap', () => {
    const d = new Deque<number>(8);
    for (let i = 0; i < 6; i++) d.pushBack(i);
    for (let i = 0; i < 4; i++) d.popFront();
    for (let i = 6; i < 12; i++) d.pushBack(i); // wraps around the buffer end
    expect(d.toArray()).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    d.set(5, 99);
    expect(d.slice(3, 7)).toEqual([7, 8, 99, 10]);
    expect([...d]).toEqual([4, 5, 6, 7, 8, 99, 10, 11]);
  });

  it('behaves as an array under any sequence of operations, also while shrinking', () => {
    type Op = { kind: 'pushBack' | 'pushFront'; value: number } | { kind: 'popBack' | 'popFront' } | { kind: 'set'; at: number; value: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constantFrom('pushBack' as const, 'pushFront' as const), value: fc.integer() }),
      fc.record({ kind: fc.constantFrom('popBack' as const, 'popFront' as const) }),
      fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const d = new Deque<number>();
        const model: number[] = [];
        for (const o of ops) {
          switch (o.kind) {
            case 'pushBack':
              d.pushBack(o.value);
              model.push(o.value);
              break;
            case 'pushFront':
              d.pushFront(o.value);
              model.unshift(o.value);
              break;
            case 'popBack':
              expect(d.popBack()).toBe(model.pop());
              break;
            case 'popFront':
              expect(d.popFront()).toBe(model.shift());
              break;
            case 'set':
              if (model.length > 0) {
                d.set(o.at % model.length, o.value);
                model[o.at % model.length] = o.value;
              }
              break;
          }
          expect(d.length).toBe(model.length);
        }
        expect(d.toArray()).toEqual(model);
        for (let i = 0; i < model.length; i++) expect(d.at(i)).toBe(model[i]);
      }),
    );
  });
});
