import type { Clock, TimerHandle } from './clock.ts';

/**
 * The next run of a loop whose period is a live setting. A loop that re-read its period only when
 * its timer fired kept the old one for a whole period: `retention.interval` shortened from 1d to 1m
 * pruned nothing until the next day. Armed for one period after a starting point, it moves when the
 * configuration changes the period, keeping that starting point (a period shortened below the time
 * already waited fires at once). It listens to the configuration from its first arming until `clear`.
 */
export interface PeriodTimer {
  /** Fires one period after `fromMs` (default: now). */
  arm(fromMs?: number): void;
  /** Fires after `ms`, whatever the period (a retry or a wake-up gap): not moved by a change. */
  armIn(ms: number): void;
  /** Stops: no pending run, and no more listening to the configuration. */
  clear(): void;
  armed(): boolean;
}

/** `onConfigChange`: subscribes to configuration changes (`ConfigStore.onChange`), returning the unsubscribe. */
export function createPeriodTimer(clock: Clock, periodMs: () => number, fire: () => void, onConfigChange: (listener: () => void) => () => void): PeriodTimer {
  let handle: TimerHandle | undefined;
  // Set while waiting for a period: when the wait began and how long it was.
  let period: { fromMs: number; ms: number } | undefined;
  let unsubscribe: (() => void) | undefined;

  // A pending period wait is moved if its period changed.
  const configChanged = (): void => {
    if (!handle || !period || periodMs() === period.ms) return;
    arm(period.fromMs);
  };

  const set = (delayMs: number): void => {
    unsubscribe ??= onConfigChange(configChanged);
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
    clear() {
      unsubscribe?.();
      unsubscribe = undefined;
      if (handle) clock.clearTimeout(handle);
      handle = undefined;
      period = undefined;
    },
    armed: () => handle !== undefined,
  };
}
