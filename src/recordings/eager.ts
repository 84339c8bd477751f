export interface EagerSource {
  chunks: AsyncGenerator<Uint8Array>;
  /** Stops reading and cancels the source (when the chunks will not be consumed after all). */
  stop(): void;
}

/**
 * Reads `source` as fast as it delivers into a bounded buffer and yields from there. A fetch body
 * is a web stream, which drops its queued chunks when the connection fails; reading eagerly keeps
 * every byte that arrived before the failure, so a resumed download loses nothing it already had.
 * The failure itself is thrown after the buffered chunks. Reading starts at the call, not at the
 * first `next()`, so the time spent preparing the destination loses nothing either.
 */
export function eager(source: AsyncIterable<Uint8Array>, highWaterBytes: number): EagerSource {
  const queue: Uint8Array[] = [];
  let queued = 0;
  let finished = false;
  let stopped = false;
  let failure: { error: unknown } | null = null;
  let wakeConsumer: (() => void) | null = null;
  let wakeProducer: (() => void) | null = null;
  const wakeUp = (fn: (() => void) | null): void => fn?.();

  const producer = (async () => {
    try {
      for await (const chunk of source) {
        queue.push(chunk);
        queued += chunk.length;
        wakeUp(wakeConsumer);
        while (queued > highWaterBytes && !stopped) await new Promise<void>((resolve) => (wakeProducer = resolve));
        if (stopped) break; // leaving the loop cancels the source
      }
    } catch (error) {
      failure = { error };
    } finally {
      finished = true;
      wakeUp(wakeConsumer);
    }
  })();

  const stop = (): void => {
    stopped = true;
    queue.length = 0;
    queued = 0;
    wakeUp(wakeProducer);
  };

  async function* drain(): AsyncGenerator<Uint8Array> {
    try {
      for (;;) {
        const chunk = queue.shift();
        if (chunk) {
          queued -= chunk.length;
          wakeUp(wakeProducer);
          yield chunk;
          continue;
        }
        if (finished) {
          if (failure) throw failure.error;
          return;
        }
        await new Promise<void>((resolve) => (wakeConsumer = resolve));
      }
    } finally {
      // The consumer stopped early (a write failed): let the producer leave and cancel the source.
      stop();
      await producer;
    }
  }
  return { chunks: drain(), stop };
}
