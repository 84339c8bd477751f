/** The provisioner's work on a made meeting: deleted when its class is cancelled, closed once it is over, moved with it. */
import { randomUUID } from 'node:crypto';
import { coerceError } from '../errors.ts';
import { nextUtcMidnight, planMeeting, rankHosts } from './allocation.ts';
import { DELETE_GIVE_UP_MS, deleteVerdict, refusesForGood } from './decisions.ts';
import { isMeetingGone, ZoomError } from './errors.ts';
import { reserveHost, type PoolHost } from './hosts.ts';
import { create } from './meeting-create.ts';
import { meetingBody } from './meeting-calls.ts';
import type { MeetingWork } from './meeting-work.ts';
import type { Pass } from './pass.ts';
import { spendHostWrite } from './usage.ts';

/** A cancelled class's meeting is deleted at Zoom, on its host even if that host left the pool. */
export async function remove(p: Pass, w: MeetingWork): Promise<void> {
  const { byId, call, clock, count, fail, hostOf, logger, settle } = p;
  let note: string | null = null;
  if (w.meetingId && w.hostId !== null) {
    const meetingId = w.meetingId;
    try {
      const host = await hostOf(w.hostId);
      if (host) await call(host, (c, creds) => c.deleteMeeting(creds, meetingId));
      else note = `meeting ${meetingId} was left at Zoom: its host ${w.hostId} is no longer in the database`;
    } catch (error) {
      const reason = coerceError(error).message;
      const verdict = deleteVerdict(error, { hostInPool: byId.has(w.hostId), now: clock.now(), endsAt: w.endsAt });
      if (verdict === 'retry') return fail(w, error);
      if (verdict === 'give_up') {
        const why = `gave up deleting meeting ${meetingId} at Zoom ${DELETE_GIVE_UP_MS / 86_400_000} days after the class: ${reason}; delete it there by hand`;
        logger.error({ schedule: w.externalId, reason: why }, 'could not delete a cancelled class meeting');
        await settle(w, { meeting_state: 'failed', meeting_error: why, meeting_attempts: w.attempts + 1, meeting_retry_at: null });
        count('delete_abandoned');
        return;
      }
      if (verdict === 'unreachable') note = `meeting ${meetingId} was left at Zoom: its host is disabled and Zoom refuses it (${reason})`;
    }
  }
  if (note) logger.warn({ schedule: w.externalId, reason: note }, 'cancelled class meeting not deleted');
  await settle(w, { meeting_state: 'deleted', host_window_start: null, host_window_end: null, meeting_error: note, meeting_attempts: 0, meeting_retry_at: null });
  count('deleted');
}

/**
 * A regular class on a basic host (a trial until its flag changed, or a fallback when no licensed
 * host was free) moves to a licensed host that can take it, as a new one would be placed. Not once
 * its link may have gone out: students would be left with the deleted meeting's link.
 */
function leavesBasicHost(p: Pass, w: MeetingWork, host: PoolHost): boolean {
  const { candidates, cap, clock, config, settings } = p;
  if (host.plan !== 'basic' || w.trial) return false;
  const linkDue = w.startsAt.getTime() - config.current().notifications.meetingUrl.leadMinutes * 60_000;
  if (clock.now().getTime() >= linkDue) return false;
  const licensed = candidates().filter((s) => s.plan === 'licensed');
  return rankHosts({ startsAt: w.startsAt, endsAt: w.endsAt, trial: false }, licensed, settings, clock.now(), cap).hosts.length > 0;
}

/**
 * A finished class's meeting is closed to late students: join before host lets anyone with the
 * link start it for 30 days, on its host, blocking that host's next class. Turning it off (a
 * PATCH, one host write) keeps the meeting and its recordings; a student then waits for a host
 * who never comes. Zoom refuses while the meeting runs (3000): tried again after retryDelay.
 */
export async function close(p: Pass, w: MeetingWork): Promise<void> {
  const { call, cap, clock, count, day, db, fail, hostOf, inPool, settle } = p;
  let note: string | null = null;
  if (w.meetingId && w.hostId !== null) {
    const meetingId = w.meetingId;
    const host = await hostOf(w.hostId);
    if (!host) note = `meeting ${meetingId} was not closed: its host ${w.hostId} is no longer in the database`;
    else {
      if (!(await spendHostWrite(db, host.id, day(), cap))) {
        await settle(w, { meeting_state: 'ready', meeting_retry_at: nextUtcMidnight(clock.now()) });
        count('close_deferred');
        return;
      }
      try {
        await call(host, (c, creds) => c.updateMeeting(creds, meetingId, { settings: { join_before_host: false } }));
      } catch (error) {
        if (!isMeetingGone(error)) {
          if (inPool(host) || !refusesForGood(error)) return fail(w, error);
          note = `meeting ${meetingId} was not closed: its host is disabled and Zoom refuses it (${coerceError(error).message})`;
        }
      }
    }
  }
  await settle(w, { meeting_state: 'ready', meeting_closed_at: clock.now(), meeting_error: note, meeting_attempts: 0, meeting_retry_at: null });
  count('closed');
}

const DEFERRED = {
  move: { log: 'meeting move deferred', after: 'the meeting is moved', outcome: 'move_deferred' },
  retitle: { log: 'meeting topic update deferred', after: 'the topic is updated', outcome: 'retitle_deferred' },
} as const;

/** The host keeps the meeting but may not write to it now: the move or topic update waits until `at` (Zoom's reset). */
export async function deferWrite(p: Pass, w: MeetingWork, what: keyof typeof DEFERRED, why: string, at: Date): Promise<void> {
  const { count, logger, settle } = p;
  const d = DEFERRED[what];
  logger.warn({ schedule: w.externalId, reason: why, retryAt: at.toISOString() }, d.log);
  await settle(w, { meeting_state: 'ready', meeting_error: `${why}; ${d.after} after ${at.toISOString()}`, meeting_retry_at: at });
  count(d.outcome);
}

/**
 * Moves the meeting in place if its host can keep the class at its new time: `done` (moved,
 * deferred or failed, all recorded), `gone` (Zoom no longer has it) or `rehost` (it cannot stay).
 */
async function moveInPlace(p: Pass, w: MeetingWork, host: PoolHost, meetingId: string): Promise<{ outcome: 'done' | 'gone' } | { outcome: 'rehost'; why: string }> {
  const { call, cap, cfg, clock, count, day, db, fail, owner, refused, setHostAside, settings, settle, states } = p;
  const state = states.get(host.id);
  if (!state) return { outcome: 'rehost', why: `its host ${host.label} is out of the pool` };
  const refusal = refused.get(host.id);
  if (refusal) return { outcome: 'rehost', why: `its host ${host.label} was ${refusal}` };
  const klass = { startsAt: w.startsAt, endsAt: w.endsAt, trial: w.trial };
  // Whether the plan suits the class; the host's budget and limits are handled below.
  const suits = host.plan === 'licensed' || rankHosts(klass, [{ ...state, busy: [], exhaustedUntil: null, accountBudgetLeft: true }], settings, clock.now(), Infinity).hosts.length > 0;
  if (!suits || leavesBasicHost(p, w, host)) return { outcome: 'rehost', why: `its basic host ${host.label} does not suit it` };
  const plan = planMeeting(klass, host.plan, settings);
  /** No writes on the host today: keep the meeting and move it after Zoom's reset, unless that comes too late for the class. */
  const noWrites = async (why: string): Promise<{ outcome: 'done' } | { outcome: 'rehost'; why: string }> => {
    const reset = nextUtcMidnight(clock.now());
    if (reset.getTime() > plan.windowStart.getTime()) return { outcome: 'rehost', why: `${why} and its next write comes after the class starts` };
    await deferWrite(p, w, 'move', why, reset);
    return { outcome: 'done' };
  };
  if (state.exhaustedUntil && state.exhaustedUntil.getTime() > clock.now().getTime()) return noWrites(`Zoom host ${host.label} reached its daily meeting create/update limit`);
  const reserved = await reserveHost(db, { scheduleId: w.id, hostId: host.id, windowStart: plan.windowStart, windowEnd: plan.windowEnd, day: day(), writeCap: cap, leaseOwner: owner, attemptId: randomUUID(), version: w.version, state: 'updating', now: clock.now() });
  if (reserved.result === 'lease_lost') return { outcome: 'done' };
  if (reserved.result === 'busy') return { outcome: 'rehost', why: `its host ${host.label} is busy then` };
  if (reserved.result === 'write_budget') return noWrites(`Zoom host ${host.label} has spent its ${cap} meeting writes for today (UTC)`);
  const body = meetingBody(w, plan, cfg.meeting.topicTemplate);
  try {
    // join_before_host again: a meeting closed after the old time must open for the new one.
    await call(host, (c, creds) => c.updateMeeting(creds, meetingId, { start_time: body.start_time, duration: body.duration, topic: body.topic, timezone: 'UTC', settings: { join_before_host: true, jbh_time: body.settings.jbh_time } }));
  } catch (error) {
    if (isMeetingGone(error)) return { outcome: 'gone' };
    if (!(error instanceof ZoomError && error.kind === 'host-daily-limit')) {
      await fail(w, error, 'ready');
      return { outcome: 'done' };
    }
    await setHostAside(host, error);
    return noWrites(`Zoom host ${host.label} reached its daily meeting create/update limit`);
  }
  await settle(w, { meeting_state: 'ready', meeting_version: w.version, meeting_title: w.title, meeting_closed_at: null, meeting_error: null, meeting_attempts: 0, meeting_retry_at: null });
  count('updated');
  return { outcome: 'done' };
}

/**
 * The class moved: its meeting follows, in place if its host can keep it, else on another host.
 * The working meeting is deleted only when another host can take the class: a class keeps a
 * meeting at its old time rather than be left with none.
 */
export async function move(p: Pass, w: MeetingWork): Promise<void> {
  const { fail, hostOf } = p;
  if (w.meetingId && w.hostId !== null) {
    const meetingId = w.meetingId;
    const host = await hostOf(w.hostId);
    const inPlace = host ? await moveInPlace(p, w, host, meetingId) : { outcome: 'gone' as const };
    if (inPlace.outcome === 'done') return;
    if (host && inPlace.outcome === 'rehost') {
      // The row remembers one replaced meeting: another re-host waits until the last one's is deleted.
      if (w.replaced) return fail(w, new Error(`the class moved: ${inPlace.why}; the meeting ${w.replaced.meetingId} it replaced before is not deleted yet; its meeting stays as it was`), 'ready', 'move_blocked');
      // Another host is reserved, the meeting made there, and only then the old one deleted: see Replacing.
      // The old meeting keeps its window (held on its host) until deleted: the snapshot keeps it too.
      return create(p, { ...w, state: 'none', meetingId: null }, { meetingId, host, why: inPlace.why });
    }
  }
  return recreate(p, w, 'moved');
}

/** The class's meeting is gone, or was deleted to re-host it: the class is placed afresh. */
export async function recreate(p: Pass, w: MeetingWork, outcome: string): Promise<void> {
  const { count, freeOwnWindow, settle } = p;
  await settle(w, { meeting_state: 'none', meeting_id: null, meeting_uuid: null, join_url: null, start_url: null, passcode: null, meeting_account_id: null, host_window_start: null, host_window_end: null, meeting_title: null }, false);
  freeOwnWindow(w);
  count(outcome);
  return create(p, { ...w, state: 'none', meetingId: null });
}
