/** Pure decisions of the provisioner: how long to wait, and what a failed Zoom call means for a class. */
import { isDeleteDone, isHostRefused, ZoomError } from './errors.ts';

/** Longest wait between tries of a schedule whose meeting work keeps failing (unless retryDelay is longer). */
const MAX_FAILURE_BACKOFF_MS = 2 * 60 * 60_000;

/**
 * Wait before the next try after `attempts` failures in a row (this one included): retryDelay,
 * doubling with each failure, up to MAX_FAILURE_BACKOFF_MS. A create or a move spends a write of the
 * host's 100 a day before Zoom is asked, so a failure that repeats (Zoom refusing to move a class
 * that is live, say) must not be tried every pass: at most about 16 writes a day instead of 288.
 */
export function failureBackoffMs(retryDelayMs: number, attempts: number): number {
  const doubled = retryDelayMs * 2 ** Math.min(Math.max(0, attempts - 1), 20);
  return Math.min(doubled, Math.max(retryDelayMs, MAX_FAILURE_BACKOFF_MS));
}

/**
 * How long after a cancelled class's end its meeting is still tried to be deleted. By then the
 * failure is not passing (Zoom keeps refusing), and an operator must look: the reason says so.
 */
export const DELETE_GIVE_UP_MS = 3 * 86_400_000;

/**
 * Zoom refuses the host for good (its credentials, permissions or user): a host taken out of the
 * pool will never answer otherwise, so its meetings are left and the reason recorded. A bare 404
 * on a host's own path (a listing) means its user is gone too.
 */
export function refusesForGood(error: unknown): boolean {
  return isHostRefused(error) || (error instanceof ZoomError && error.status === 404);
}

/**
 * An intent whose class is over is listed for (to adopt a meeting Zoom may have made) until this
 * long after the class, like a DELETE; then an operator must look.
 */
export function listingGivenUp(now: Date, endsAt: Date): boolean {
  return now.getTime() >= endsAt.getTime() + DELETE_GIVE_UP_MS;
}

/**
 * A meeting's topic is PATCHed when the class title it was made from is not the class's (a title
 * change keeps the version), and only while the class is not over. Null: not known, left alone.
 */
export function needsRetitle(w: { title: string; meetingTitle: string | null; endsAt: Date }, now: Date): boolean {
  return w.meetingTitle !== null && w.meetingTitle !== w.title && w.endsAt.getTime() > now.getTime();
}

/** Zoom refused the credentials (OAuth refused, 401): those are the account's, so all its hosts are refused alike. */
export function refusalCoversAccount(error: unknown): boolean {
  return error instanceof ZoomError && (error.kind === 'auth' || error.status === 401);
}

/**
 * What a failed DELETE of a cancelled class's meeting means: `done` (nothing left to delete),
 * `unreachable` (its host is out of the pool and Zoom refuses it for good), `give_up` (still failing
 * DELETE_GIVE_UP_MS after the class), else `retry` after a backoff.
 */
export function deleteVerdict(error: unknown, o: { hostInPool: boolean; now: Date; endsAt: Date }): 'done' | 'unreachable' | 'give_up' | 'retry' {
  if (isDeleteDone(error)) return 'done';
  if (!o.hostInPool && refusesForGood(error)) return 'unreachable';
  return o.now.getTime() >= o.endsAt.getTime() + DELETE_GIVE_UP_MS ? 'give_up' : 'retry';
}
