/** A counting semaphore: at most `limit()` tasks run at once; the limit is read per task (hot reload). */
export interface Limiter {
  run<T>(task: () => Promise<T>): Promise<T>;
  readonly active: number;
}

export function createLimiter(limit: () => number): Limiter {
  let active = 0;
  const waiting: (() => void)[] = [];
  const next = (): void => {
    while (active < limit() && waiting.length > 0) {
      active++;
      waiting.shift()?.();
    }
  };
  return {
    get active() {
      return active;
    },
    async run(task) {
      await new Promise<void>((resolve) => {
        waiting.push(resolve);
        next();
      });
      try {
        return await task();
      } finally {
        active--;
        next();
      }
    },
  };
}

/** One limiter per key (e.g. per Zoom account), created on first use. */
export function keyedLimiter(limit: () => number): (key: string) => Limiter {
  const limiters = new Map<string, Limiter>();
  return (key) => {
    let limiter = limiters.get(key);
    if (!limiter) {
      limiter = createLimiter(limit);
      limiters.set(key, limiter);
    }
    return limiter;
  };
}
