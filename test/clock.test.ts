import { describe, expect, it } from 'vitest';
import { virtualClock } from '../src/clock.ts';

describe('virtual clock', () => {
  it('fires timers in time order (ties in arming order) as time advances', async () => {
    const clock = virtualClock('2026-01-01T00:00:00Z');
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`b@${clock.now().toISOString()}`), 2000);
    clock.setTimeout(() => fired.push(`a@${clock.now().toISOString()}`), 1000);
    clock.setTimeout(() => fired.push(`c@${clock.now().toISOString()}`), 2000);
    const cancelled = clock.setTimeout(() => fired.push('never'), 1500);
    clock.clearTimeout(cancelled);
    await clock.advance(1999);
    expect(fired).toEqual(['a@2026-01-01T00:00:01.000Z']);
    await clock.advance(1);
    expect(fired).toEqual(['a@2026-01-01T00:00:01.000Z', 'b@2026-01-01T00:00:02.000Z', 'c@2026-01-01T00:00:02.000Z']);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('runs timers armed by timers within the same advance, and sleeps resolve on virtual time', async () => {
    const clock = virtualClock();
    const seen: number[] = [];
    const loop = async (): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        await clock.sleep(60_000);
        seen.push(clock.now().getTime());
      }
    };
    const done = loop();
    await clock.advance(180_000);
    await done;
    const start = Date.parse('2026-01-01T00:00:00Z');
    expect(seen).toEqual([start + 60_000, start + 120_000, start + 180_000]);
  });

  it('aborts a sleep and refuses to go backwards unless asked', async () => {
    const clock = virtualClock();
    const controller = new AbortController();
    const sleeping = clock.sleep(1000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(sleeping).rejects.toThrow('stop');
    expect(clock.pendingTimers()).toBe(0);
    await expect(clock.set(new Date('2025-01-01T00:00:00Z'))).rejects.toThrow(/cannot go back/);
    await clock.set(new Date('2025-01-01T00:00:00Z'), { allowBackwards: true });
    expect(clock.now().toISOString()).toBe('2025-01-01T00:00:00.000Z');
  });
});
