/**
 * Group commit: items added while a write is in flight go out together in the next one, at most
 * `max` at a time. Each `add` resolves once its item is written (or rejects with the write's
 * error), so batching loses nothing; at LINE's full rate a per-call write becomes a few a second.
 */
export interface GroupCommit<T> {
  add(item: T): Promise<void>;
}

export function createGroupCommit<T>(write: (batch: T[]) => Promise<void>, max = 200): GroupCommit<T> {
  const queue: { item: T; resolve: () => void; reject: (error: unknown) => void }[] = [];
  let writing = false;
  const drain = async (): Promise<void> => {
    writing = true;
    // Let the callers finishing in this turn of the event loop join the batch (SQLite answers so
    // fast that otherwise every item would be a batch of one).
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (queue.length > 0) {
      const batch = queue.splice(0, max);
      try {
        await write(batch.map((b) => b.item));
        for (const b of batch) b.resolve();
      } catch (error) {
        for (const b of batch) b.reject(error);
      }
    }
    writing = false;
  };
  return {
    add(item) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (!writing) void drain();
      });
    },
  };
}
