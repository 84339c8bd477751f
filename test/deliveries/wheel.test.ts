import { describe, expect, it } from 'vitest';
import { createTimingWheel } from '../../src/deliveries/wheel.ts';

const T0 = Date.parse('2026-12-01T00:00:00Z');

describe('timing wheel', () => {
  it('fires each entry once, at its tick, in due order, across every level', () => {
    const wheel = createTimingWheel(T0);
    const dues = [500, 1_000, 59_000, 61_000, 3_599_000, 3_601_000, 86_399_000, 86_401_000, 6 * 86_400_000 + 123_000];
    dues.forEach((d, i) => wheel.add(i + 1, T0 + d));
    wheel.add(100, T0 - 5_000); // already overdue: fires at once
    const fired: [number, number][] = [];
    for (let t = T0; t <= T0 + 7 * 86_400_000; t += 1000) {
      for (const id of wheel.advance(t)) fired.push([id, t - T0]);
    }
    expect(fired.map(([id]) => id)).toEqual([100, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Never early, and at most one tick late.
    for (const [id, at] of fired) {
      const due = id === 100 ? -5_000 : (dues[id - 1] ?? 0);
      expect(at).toBeGreaterThanOrEqual(due);
      expect(at - due).toBeLessThan(1000 + (id === 100 ? 5_000 : 0));
    }
    expect(wheel.size).toBe(0);
  });

  it('re-arms a moved entry and forgets a removed one', () => {
    const wheel = createTimingWheel(T0);
    wheel.add(1, T0 + 3_600_000);
    wheel.add(2, T0 + 7_200_000);
    wheel.add(1, T0 + 10_800_000); // moved later
    wheel.remove(2);
    expect(wheel.advance(T0 + 3_600_000)).toEqual([]);
    expect(wheel.advance(T0 + 7_200_000)).toEqual([]);
    expect(wheel.advance(T0 + 10_800_000)).toEqual([1]);
  });

  it('can jump ahead in one advance (after a pause) and reports when the next entry is due', () => {
    const wheel = createTimingWheel(T0);
    expect(wheel.nextDueAt()).toBeUndefined();
    wheel.add(1, T0 + 90_000);
    wheel.add(2, T0 + 5 * 3_600_000 + 30_000);
    expect(wheel.nextDueAt()).toBe(T0 + 90_000);
    expect(wheel.advance(T0 + 3 * 3_600_000)).toEqual([1]);
    const next = wheel.nextDueAt() ?? 0;
    expect(next).toBeGreaterThan(T0 + 3 * 3_600_000);
    expect(next).toBeLessThanOrEqual(T0 + 5 * 3_600_000 + 30_000);
    expect(wheel.advance(T0 + 5 * 3_600_000 + 30_000)).toEqual([2]);
  });

  it('holds entries beyond its horizon and fires them when their time comes', () => {
    const wheel = createTimingWheel(T0);
    wheel.add(1, T0 + wheel.horizonMs + 86_400_000);
    let fired: number[] = [];
    for (let t = T0; t <= T0 + wheel.horizonMs + 86_400_000 && fired.length === 0; t += 60_000) fired = wheel.advance(t);
    expect(fired).toEqual([1]);
  });
});
