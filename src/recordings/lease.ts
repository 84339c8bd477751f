import type { Clock, TimerHandle } from '../clock.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import { renewRecordingLease, type Progress } from './rows.ts';

export interface LeaseHold {
  /** Stops renewing (the attempt is over). */
  release(): void;
}

/**
 * Keeps a claim's lease while its download runs: renews it every lease/3, recording the partial's
 * progress so a successor can resume from it. Aborts the download the moment a renewal says the
 * lease is lost or fails, and when no renewal succeeded for lease − lease/4 (a hung database must
 * not let the lease run out under a worker that keeps writing). Timer-based, not per chunk: a
 * stalled transfer keeps its lease until the download deadline.
 */
export function holdLease(o: { db: Db; clock: Clock; token: string; leaseMs: number; progress: () => Promise<Progress>; abort: (reason: Error) => void }): LeaseHold {
  const { clock } = o;
  let done = false;
  let renewal: TimerHandle | undefined;
  let watchdog: TimerHandle | undefined;

  const stop = (): void => {
    done = true;
    if (renewal) clock.clearTimeout(renewal);
    if (watchdog) clock.clearTimeout(watchdog);
  };
  const fail = (reason: Error): void => {
    if (done) return;
    stop();
    o.abort(reason);
  };
  // The lease the database holds runs from when the renewal was sent at the latest: count from there.
  const guard = (sentAt: number): void => {
    if (watchdog) clock.clearTimeout(watchdog);
    const left = sentAt + o.leaseMs - o.leaseMs / 4 - clock.now().getTime();
    watchdog = clock.setTimeout(() => fail(new Error(`lease not renewed within ${o.leaseMs - o.leaseMs / 4} ms: stopped before another worker takes the file over`)), left);
  };
  const schedule = (): void => {
    renewal = clock.setTimeout(() => {
      const sentAt = clock.now().getTime();
      void o
        .progress()
        .then((progress) => renewRecordingLease(o.db, clock, o.token, o.leaseMs, progress))
        .then(
          (held) => {
            if (done) return;
            if (!held) return fail(new Error('lease lost: another worker took this file over'));
            guard(sentAt);
            schedule();
          },
          (error: unknown) => fail(new Error(`could not renew the lease: ${coerceError(error).message}`)),
        );
    }, o.leaseMs / 3);
  };
  guard(clock.now().getTime());
  schedule();
  return { release: stop };
}
