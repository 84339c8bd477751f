/**
 * Time is a dependency: everything that reads the time or waits goes through a Clock, so tests and
 * simulations run on virtual time and never sleep.
 */
export interface Clock {
  /**
   * `system`: real time; "due" is then decided by the database's clock, shared by all replicas.
   * `virtual`: tests and simulations; the database is handed this clock's time instead.
   */
  readonly kind: 'system' | 'virtual';
  /**
   * Virtual clocks only: how far the database's clock is from this one (negative: behind), so a test
   * can run replicas whose clocks disagree with the database's, as they do in production.
   */
  readonly databaseOffsetMs?: number;
  /** The current instant. */
  now(): Date;
  /** Like `setTimeout`, on this clock's time. Returns a handle for `clearTimeout`. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  /** Resolves after `ms` of this clock's time; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface TimerHandle {
  readonly id: number;
}

/** setTimeout can't wait longer than 2^31-1 ms; longer waits are chained. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export function systemClock(): Clock {
  let nextId = 1;
  const timers = new Map<number, NodeJS.Timeout>();
  const clock: Clock = {
    kind: 'system',
    now: () => new Date(),
    setTimeout(fn, ms) {
      const id = nextId++;
      const arm = (remaining: number): void => {
        const step = Math.min(Math.max(remaining, 0), MAX_TIMEOUT_MS);
        const t = setTimeout(() => {
          if (remaining > MAX_TIMEOUT_MS) {
            arm(remaining - MAX_TIMEOUT_MS);
            return;
          }
          timers.delete(id);
          fn();
        }, step);
        t.unref?.();
        timers.set(id, t);
      };
      arm(ms);
      return { id };
    },
    clearTimeout(handle) {
      const t = timers.get(handle.id);
      if (t) clearTimeout(t);
      timers.delete(handle.id);
    },
    sleep: (ms, signal) => sleepOn(clock, ms, signal),
  };
  return clock;
}

interface VirtualTimer {
  id: number;
  at: number;
  seq: number;
  fn: () => void;
}

/** A clock that only moves when told to. `advance` fires due timers in time order. */
export interface VirtualClock extends Clock {
  /** Move time forward by `ms`, firing every timer due on the way (awaiting microtasks between them). */
  advance(ms: number): Promise<void>;
  /** Move time to `instant` (never backwards unless `allowBackwards`). */
  set(instant: Date, options?: { allowBackwards?: boolean }): Promise<void>;
  /** Number of armed timers (for leak checks). */
  pendingTimers(): number;
  /** When the earliest armed timer fires, if any (lets a test step from one wake-up to the next). */
  nextTimerAt(): Date | undefined;
  /** The database's clock is this far from this one (negative: behind); 0 by default. */
  databaseOffsetMs: number;
}

export function virtualClock(start: Date | string = '2026-01-01T00:00:00Z'): VirtualClock {
  let now = new Date(start).getTime();
  let nextId = 1;
  let seq = 0;
  const timers = new Map<number, VirtualTimer>();

  const flushMicrotasks = async (): Promise<void> => {
    // Let promise chains started by a timer run before the next timer fires.
    for (let i = 0; i < 10; i++) await Promise.resolve();
    await new Promise<void>((resolve) => setImmediate(resolve));
  };

  const runUntil = async (target: number): Promise<void> => {
    for (;;) {
      let next: VirtualTimer | undefined;
      for (const t of timers.values()) {
        if (t.at <= target && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      }
      if (!next) break;
      timers.delete(next.id);
      now = Math.max(now, next.at);
      next.fn();
      await flushMicrotasks();
    }
    now = Math.max(now, target);
    await flushMicrotasks();
  };

  const clock: VirtualClock = {
    kind: 'virtual',
    databaseOffsetMs: 0,
    now: () => new Date(now),
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { id, at: now + Math.max(0, ms), seq: seq++, fn });
      return { id };
    },
    clearTimeout(handle) {
      timers.delete(handle.id);
    },
    sleep: (ms, signal) => sleepOn(clock, ms, signal),
    advance: (ms) => runUntil(now + ms),
    async set(instant, options) {
      const target = instant.getTime();
      if (target < now) {
        if (!options?.allowBackwards) throw new Error(`virtual clock cannot go back from ${new Date(now).toISOString()}`);
        now = target;
        return;
      }
      await runUntil(target);
    },
    pendingTimers: () => timers.size,
    nextTimerAt() {
      let next: number | undefined;
      for (const t of timers.values()) if (next === undefined || t.at < next) next = t.at;
      return next === undefined ? undefined : new Date(next);
    },
  };
  return clock;
}

function sleepOn(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clock.clearTimeout(handle);
      reject(signal?.reason);
    };
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
