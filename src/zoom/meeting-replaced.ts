/**
 * The meeting a re-host replaced. It stays the class's meeting until the new one is recorded, then is
 * deleted at Zoom on its host (by a later pass if need be) as a side task with its own backoff
 * (`replaced_attempts`, `replaced_retry_at`): the class's other work (a move, a cancel, a close) never
 * waits for it. Until deleted, its host window stays held on its host: the meeting is live there.
 */
import { coerceError } from '../errors.ts';
import { DELETE_GIVE_UP_MS, deleteVerdict, failureBackoffMs, refusesForGood } from './decisions.ts';
import type { PoolHost } from './hosts.ts';
import type { MeetingWork } from './meeting-work.ts';
import type { Pass } from './pass.ts';

export type Dropped = { done: true; note: string | null } | { done: false; error: unknown };

/**
 * Deletes a replaced meeting on its host (even one out of the pool): `done` when nothing is left to
 * delete, or nothing can be (its host gone, Zoom refusing it for good, or still failing some days
 * after the class; the note asks for a hand deletion), else the error, to retry after a backoff.
 */
export async function deleteReplaced(p: Pass, w: MeetingWork, host: PoolHost | undefined, meetingId: string): Promise<Dropped> {
  const { call, clock, inPool } = p;
  if (!host) return { done: true, note: `replaced meeting ${meetingId} was left at Zoom: its host is no longer in the database; delete it there by hand` };
  try {
    await call(host, (c, creds) => c.deleteMeeting(creds, meetingId));
    return { done: true, note: null };
  } catch (error) {
    const reason = coerceError(error).message;
    const verdict = deleteVerdict(error, { hostInPool: inPool(host), now: clock.now(), endsAt: w.endsAt });
    if (verdict === 'done') return { done: true, note: null };
    // A refused host (the usual reason to re-host) refuses this DELETE alike, pool or not: retrying
    // until days after the class would only hold its window; an operator must delete it.
    if (verdict === 'unreachable' || refusesForGood(error)) return { done: true, note: `replaced meeting ${meetingId} was left at Zoom on host ${host.label}: Zoom refuses the host (${reason}); delete it there by hand` };
    if (verdict === 'give_up') return { done: true, note: `gave up deleting replaced meeting ${meetingId} at Zoom ${DELETE_GIVE_UP_MS / 86_400_000} days after the class: ${reason}; delete it there by hand` };
    return { done: false, error };
  }
}

/**
 * The side task: deletes the replaced meeting if its DELETE is due, keeping the lease for the
 * class's own work. Returns the work as it stands after (`replaced` null once done). Never throws:
 * a failure only backs this task off. `inline`: right after the re-host (counted as `moved`).
 */
export async function dropReplaced(p: Pass, w: MeetingWork, inline = false): Promise<MeetingWork> {
  const { cfg, clock, count, hostOf, logger, settle } = p;
  const replaced = w.replaced;
  if (!replaced || w.state === 'creating' || (replaced.retryAt !== null && replaced.retryAt.getTime() > clock.now().getTime())) return w;
  let dropped: Dropped;
  try {
    dropped = await deleteReplaced(p, w, await hostOf(replaced.hostId), replaced.meetingId);
  } catch (error) {
    dropped = { done: false, error };
  }
  try {
    if (!dropped.done) {
      const attempts = replaced.attempts + 1;
      const retryAt = new Date(clock.now().getTime() + failureBackoffMs(cfg.provisioning.retryDelay.ms, attempts));
      logger.warn({ schedule: w.externalId, meeting: replaced.meetingId, reason: coerceError(dropped.error).message, retryAt: retryAt.toISOString() }, 'could not delete the meeting a re-host replaced yet');
      await settle(w, { replaced_attempts: attempts, replaced_retry_at: retryAt }, false);
      count('replaced_retry');
      return { ...w, replaced: { ...replaced, attempts, retryAt } };
    }
    if (dropped.note) logger.error({ schedule: w.externalId, reason: dropped.note }, 'replaced meeting not deleted');
    await settle(w, { ...CLEARED, ...(dropped.note ? { meeting_error: dropped.note } : {}) }, false);
    // Right after the re-host that replaced it, its deletion is part of `moved`.
    if (dropped.note || !inline) count(dropped.note ? 'replaced_left' : 'replaced_deleted');
    return { ...w, replaced: null };
  } catch (error) {
    logger.error({ schedule: w.externalId, err: coerceError(error) }, 'could not record the replaced meeting');
    return w;
  }
}

const CLEARED = { replaced_meeting_id: null, replaced_meeting_account_id: null, replaced_window_start: null, replaced_window_end: null, replaced_attempts: 0, replaced_retry_at: null };

/**
 * A re-host made no new meeting (Zoom refused the create, or recovery found none): the replaced
 * meeting is the class's meeting again, on its host and window, with its link, title and (older)
 * version as they were kept, so the move is tried again. The lease is kept: the caller settles.
 */
export async function restoreReplaced(p: Pass, w: MeetingWork): Promise<boolean> {
  const { clock, db, owner } = p;
  const result = await db
    .updateTable('schedules')
    .set((eb) => ({
      meeting_state: 'ready',
      meeting_id: eb.ref('replaced_meeting_id'),
      meeting_account_id: eb.ref('replaced_meeting_account_id'),
      host_window_start: eb.ref('replaced_window_start').$castTo<Date | null>(),
      host_window_end: eb.ref('replaced_window_end').$castTo<Date | null>(),
      meeting_attempt_id: null,
      ...CLEARED,
      updated_at: clock.now(),
    }))
    .where('id', '=', w.id)
    .where('meeting_lease_owner', '=', owner)
    .where('replaced_meeting_id', 'is not', null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Recovery found no meeting for a re-host's intent: the class keeps the meeting it had; the next pass moves it again. */
export async function keepReplaced(p: Pass, w: MeetingWork, why: string): Promise<void> {
  const { count, logger, settle } = p;
  if (!(await restoreReplaced(p, w))) return;
  logger.warn({ schedule: w.externalId, reason: why }, 're-host came to nothing; the class keeps its meeting');
  await settle(w, { meeting_error: `${why}; the class keeps its meeting, and its move is tried again`, meeting_retry_at: null });
  count('rehost_dropped');
}
