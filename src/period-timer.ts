import type { Clock, TimerHandle } from './clock.ts';

/**
 * The next run of a loop whose period is a live setting. A loop that re-read its period only when
 * its timer fired kept the old one for a whole period: `retention.interval` shortened from 1d to 1m
 * pruned nothing until the next day. Armed for one period after a starting point, it moves when
 * told the configuration changed and the period with it, keeping that starting point (a period
 * shortened below the time already waited fires at once).
 */
export interface PeriodTimer {
  /** Fires one period after `fromMs` (default: now). */
  arm(fromMs?: number): void;
  /** Fires after `ms`, whatever the period (a retry or a wake-up gap): not moved by a change. */
  armIn(ms: number): void;
  /** The configuration changed: a pending period wait is moved if its period did. */
  configChanged(): void;
  clear(): void;
  armed(): boolean;
}

export function createPeriodTimer(clock: Clock, periodMs: () => number, fire: () => void): PeriodTimer {
  let handle: TimerHandle | undefined;
  // Set while waiting for a period: when the wait began and how long it was.
  let period: { fromMs: number; ms: number } | undefined;

  const set = (delayMs: number): void => {
    if (handle) clock.clearTimeout(handle);
    handle = clock.setTimeout(() => {
      handle = undefined;
      period = undefined;
      fire();
    }, Math.max(0, delayMs));
  };

  const arm = (fromMs = clock.now().getTime()): void => {
    const ms = periodMs();
    period = { fromMs, ms };
    set(fromMs + ms - clock.now().getTime());
  };

  return {
    arm,
    armIn(ms) {
      period = undefined;
      set(ms);
    },
    configChanged() {
      if (!handle || !period || periodMs() === period.ms) return;
      arm(period.fromMs);
    },
    clear() {
      if (handle) clock.clearTimeout(handle);
      handle = undefined;
      period = undefined;
    },
    armed: () => handle !== undefined,
  };
}
