import { describe, expect, it } from 'vitest';
import { virtualClock } from '../src/clock.ts';
import { createPeriodTimer } from '../src/period-timer.ts';

describe('period timer', () => {
  const setup = (initialMs: number) => {
    const clock = virtualClock(new Date('2026-12-01T00:00:00Z'));
    let period = initialMs;
    const fired: number[] = [];
    const start = clock.now().getTime();
    const listeners = new Set<() => void>();
    const timer = createPeriodTimer(clock, () => period, () => fired.push(clock.now().getTime() - start), (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    });
    // A configuration reload, as ConfigStore.onChange reports it.
    const configChanged = (): void => {
      for (const listener of listeners) listener();
    };
    return { clock, timer, fired, listeners, configChanged, setPeriod: (ms: number) => (period = ms) };
  };

  it('fires one period after arming, and moves with the period from the same starting point', async () => {
    const { clock, timer, fired, setPeriod, configChanged } = setup(60_000);
    timer.arm();
    await clock.advance(10_000);
    setPeriod(30_000);
    configChanged();
    await clock.advance(20_000);
    expect(fired).toEqual([30_000]);
    expect(timer.armed()).toBe(false);
  });

  it('a change that leaves the period alone does not move it; one below the time waited fires at once', async () => {
    const { clock, timer, fired, setPeriod, configChanged } = setup(60_000);
    timer.arm();
    await clock.advance(40_000);
    configChanged();
    await clock.advance(19_999);
    expect(fired).toEqual([]);
    setPeriod(1000);
    configChanged();
    await clock.advance(0);
    expect(fired).toEqual([59_999]);
  });

  it('a fixed delay (armIn) is not moved by a period change, and clear stops it', async () => {
    const { clock, timer, fired, listeners, setPeriod, configChanged } = setup(60_000);
    timer.armIn(5000);
    setPeriod(1000);
    configChanged();
    await clock.advance(4999);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(fired).toEqual([5000]);
    timer.arm();
    timer.clear();
    expect(listeners.size).toBe(0);
    configChanged();
    await clock.advance(120_000);
    expect(fired).toEqual([5000]);
  });
});
