import { Cron } from 'croner';

/**
 * The next cron tick strictly after `after`, read in `timeZone` (DST-correct: croner works in the
 * zone's wall time). Only the arithmetic comes from croner; the waiting is done on our Clock.
 */
export function nextCronTick(pattern: string, timeZone: string, after: Date): Date | undefined {
  const job = new Cron(pattern, { timezone: timeZone, paused: true });
  try {
    return job.nextRun(after) ?? undefined;
  } finally {
    job.stop();
  }
}

/** Throws a readable error for a pattern croner cannot parse (config validation). */
export function cronProblem(pattern: string, timeZone: string): string | undefined {
  try {
    new Cron(pattern, { timezone: timeZone, paused: true }).stop();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}
