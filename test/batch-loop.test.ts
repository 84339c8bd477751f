import { describe, expect, it } from 'vitest';
import { createBatchLoop } from '../src/batch-loop.ts';
import { virtualClock } from '../src/clock.ts';
import { createLogger } from '../src/logger.ts';

describe('batch loop', () => {
  it('sweeps every period, and a changed period moves the sweep in progress (a live setting)', async () => {
    const clock = virtualClock('2026-12-01T00:00:00Z');
    let sweepMs = 60_000;
    const listeners = new Set<() => void>();
    const runs: number[] = [];
    const start = clock.now().getTime();
    const loop = createBatchLoop({
      clock,
      logger: createLogger({ level: 'silent' }),
      what: 'test batches',
      gatherMs: 0,
      sweepMs: () => sweepMs,
      onConfigChange: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      batch: () => {
        runs.push(clock.now().getTime() - start);
        return Promise.resolve(false);
      },
    });
    loop.start();
    await clock.advance(0);
    await loop.idle();
    expect(runs).toEqual([0]);
    await clock.advance(60_000);
    await loop.idle();
    expect(runs).toEqual([0, 60_000]);
    // Ten seconds into the next minute the sweep becomes every 15 s: it runs 15 s after the last, not at 120 s.
    await clock.advance(10_000);
    sweepMs = 15_000;
    for (const listener of listeners) listener();
    await clock.advance(5000);
    await loop.idle();
    expect(runs).toEqual([0, 60_000, 75_000]);
    await loop.stop();
    expect(listeners.size).toBe(0);
  });
});
