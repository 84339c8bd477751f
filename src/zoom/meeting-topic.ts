/** The provisioner's topic update: a class whose title changed gets its meeting's topic PATCHed. */
import { coerceError } from '../errors.ts';
import { nextUtcMidnight } from './allocation.ts';
import { isMeetingGone, ZoomError } from './errors.ts';
import { meetingTopic } from './meeting-calls.ts';
import { deferWrite, recreate } from './meeting-moves.ts';
import type { MeetingWork } from './meeting-work.ts';
import type { Pass } from './pass.ts';
import { spendHostWrite } from './usage.ts';

/**
 * A title change keeps the schedule version (the version re-times deliveries), so the claim finds
 * these meetings by the title their topic was made from. One PATCH, one write of the host's daily
 * budget; with none left today it waits for Zoom's reset. Students' links do not change.
 */
export async function retitle(p: Pass, w: MeetingWork): Promise<void> {
  const { call, cap, cfg, clock, count, day, db, fail, hostOf, refused, setHostAside, settle, states } = p;
  const meetingId = w.meetingId;
  const host = w.hostId === null ? undefined : await hostOf(w.hostId);
  if (meetingId === null || !host) {
    // Nothing at Zoom this pass can reach: record the title so the claim does not come back for it.
    const note = meetingId === null ? null : `the topic of meeting ${meetingId} was not updated: its host ${w.hostId} is no longer in the database`;
    await settle(w, { meeting_title: w.title, meeting_error: note });
    count('retitle_skipped');
    return;
  }
  const refusal = refused.get(host.id);
  if (refusal) return fail(w, new Error(`the topic was not updated: its host ${host.label} was ${refusal}`), 'ready');
  const state = states.get(host.id);
  const deferred = (until: Date, why: string): Promise<void> => deferWrite(p, w, 'retitle', why, until);
  if (state?.exhaustedUntil && state.exhaustedUntil.getTime() > clock.now().getTime()) {
    return deferred(state.exhaustedUntil, `Zoom host ${host.label} reached its daily meeting create/update limit`);
  }
  if (!(await spendHostWrite(db, host.id, day(), cap))) return deferred(nextUtcMidnight(clock.now()), `Zoom host ${host.label} has spent its ${cap} meeting writes for today (UTC)`);
  if (state) state.writesToday++;
  try {
    await call(host, (c, creds) => c.updateMeeting(creds, meetingId, { topic: meetingTopic(w.title, cfg.meeting.topicTemplate) }));
  } catch (error) {
    // Zoom lost the meeting (expired, deleted by hand): the class needs one, placed afresh.
    if (isMeetingGone(error)) return recreate(p, w, 'replaced');
    await setHostAside(host, error);
    if (error instanceof ZoomError && error.kind === 'host-daily-limit') return deferred(nextUtcMidnight(clock.now()), coerceError(error).message);
    return fail(w, error, 'ready');
  }
  await settle(w, { meeting_title: w.title, meeting_error: null, meeting_attempts: 0, meeting_retry_at: null });
  count('retitled');
}
