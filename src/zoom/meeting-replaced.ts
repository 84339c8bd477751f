/** The meeting a re-host replaced: deleted at Zoom once the class holds another host, by a later pass if need be. */
import { coerceError } from '../errors.ts';
import { DELETE_GIVE_UP_MS, deleteVerdict } from './decisions.ts';
import type { PoolHost } from './hosts.ts';
import type { MeetingWork } from './meeting-work.ts';
import type { Pass } from './pass.ts';

export type Dropped = { done: true; note: string | null } | { done: false; error: unknown };

/**
 * Deletes a replaced meeting on its host (even one out of the pool): `done` when nothing is left to
 * delete, or nothing can be (its host gone or refused for good, or still failing some days after
 * the class; the note says so), else the error, to retry after a backoff.
 */
export async function deleteReplaced(p: Pass, w: MeetingWork, host: PoolHost | undefined, meetingId: string): Promise<Dropped> {
  const { call, clock, inPool } = p;
  if (!host) return { done: true, note: `replaced meeting ${meetingId} was left at Zoom: its host is no longer in the database` };
  try {
    await call(host, (c, creds) => c.deleteMeeting(creds, meetingId));
    return { done: true, note: null };
  } catch (error) {
    const reason = coerceError(error).message;
    const verdict = deleteVerdict(error, { hostInPool: inPool(host), now: clock.now(), endsAt: w.endsAt });
    if (verdict === 'done') return { done: true, note: null };
    if (verdict === 'unreachable') return { done: true, note: `replaced meeting ${meetingId} was left at Zoom: its host is disabled and Zoom refuses it (${reason})` };
    if (verdict === 'give_up') return { done: true, note: `gave up deleting replaced meeting ${meetingId} at Zoom ${DELETE_GIVE_UP_MS / 86_400_000} days after the class: ${reason}; delete it there by hand` };
    return { done: false, error };
  }
}

/** A replaced meeting left behind (its DELETE failed, or a crash came first): delete it now. */
export async function dropReplaced(p: Pass, w: MeetingWork, replaced: { meetingId: string; hostId: number }): Promise<void> {
  const { count, fail, hostOf, logger, settle } = p;
  const dropped = await deleteReplaced(p, w, await hostOf(replaced.hostId), replaced.meetingId);
  if (!dropped.done) return fail(w, dropped.error);
  if (dropped.note) logger.warn({ schedule: w.externalId, reason: dropped.note }, 'replaced meeting not deleted');
  await settle(w, { replaced_meeting_id: null, replaced_meeting_account_id: null, ...(dropped.note ? { meeting_error: dropped.note } : {}) });
  count('replaced_deleted');
}
