import type { Clock, TimerHandle } from './clock.ts';
import { coerceError } from './errors.ts';
import type { Logger } from './logger.ts';
import { createPeriodTimer } from './period-timer.ts';

/**
 * The loop behind stored-work processors (LINE and Zoom webhook events): woken by each intake, by a
 * sweep every `sweepMs()` (work another replica or a crash left behind), and once at start. Wakes
 * within `gatherMs` make one run; a wake during a run makes another after it. `batch` does one
 * batch and says whether more may be waiting.
 */
export interface BatchLoop {
  wake(): void;
  /** Resolves once nothing is being processed (tests await this instead of sleeping). */
  idle(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

export function createBatchLoop(o: {
  clock: Clock;
  logger: Logger;
  what: string;
  gatherMs: number;
  sweepMs: () => number;
  /** Subscribes to configuration changes (`ConfigStore.onChange`): a changed sweep period moves the wait in progress. */
  onConfigChange: (listener: () => void) => () => void;
  batch: () => Promise<boolean>;
}): BatchLoop {
  const { clock } = o;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = true;
  let gather: TimerHandle | undefined;

  const run = async (): Promise<void> => {
    while (again) {
      again = false;
      try {
        while (await o.batch());
      } catch (error) {
        // The database is unreachable or similar: the next wake or sweep tries again.
        o.logger.error({ err: coerceError(error) }, `${o.what} failed`);
      }
    }
  };

  const startRun = (): void => {
    running ??= run().finally(() => {
      running = undefined;
      if (again) wake();
    });
  };

  const wake = (): void => {
    again = true;
    if (running || gather) return;
    gather = clock.setTimeout(() => {
      gather = undefined;
      startRun();
    }, o.gatherMs);
  };

  /** Runs now what is waiting to be gathered, and waits until nothing runs. */
  const drain = async (): Promise<void> => {
    const flush = (): void => {
      if (!gather) return;
      clock.clearTimeout(gather);
      gather = undefined;
      startRun();
    };
    flush();
    while (running) {
      await running;
      flush();
    }
  };

  const sweep = createPeriodTimer(clock, o.sweepMs, () => {
    if (stopped) return;
    wake();
    sweep.arm();
  }, o.onConfigChange);

  return {
    wake,
    idle: drain,
    start() {
      if (!stopped) return;
      stopped = false;
      wake();
      sweep.arm();
    },
    async stop() {
      stopped = true;
      sweep.clear();
      await drain();
    },
  };
}
