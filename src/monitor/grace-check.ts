import { z } from 'zod';
import type { Clock } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { inTransaction } from '../db/transaction.ts';
import type { Logger } from '../logger.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { hostWriteDay } from '../zoom/allocation.ts';
import { readZoomCredentials } from '../zoom/accounts.ts';
import type { ZoomClient } from '../zoom/client.ts';
import { isMeetingGone, ZoomError } from '../zoom/errors.ts';
import type { ZoomCredentials } from '../zoom/tokens.ts';
import { spendHostWrite } from '../zoom/usage.ts';
import { participantKey } from '../zoom/webhook.ts';
import { participantRole } from './attendance.ts';
import { deleteStep, graceVerdict } from './grace.ts';
import { bookedCounts } from './headcount.ts';
import { applyLiveSnapshot, applyLiveStatus, poolHosts } from './live.ts';
import { cancelLinksOfEndedClass, forgetEndedMeeting, presentOthers, retryGraceWork, settleGraceWork, startEnding, studentsSeen, unappliedParticipantEvents, type GraceWork } from './monitor-work.ts';

export interface GraceCheckDeps {
  db: Db;
  box: SecretBox;
  clock: Clock;
  config: ConfigStore;
  client: ZoomClient;
  logger: Logger;
  owner: string;
  onDeliveriesChanged?: ((ids: number[]) => void) | undefined;
}

/**
 * What one check concluded: the stored state, `retry`, `lost` (lease gone: another replica decides,
 * or the class moved before anything was done) or `moved` (moved while its meeting was being ended).
 */
export type GraceOutcome = string;

/** How often, and how far apart, a DELETE refused as "in progress" is tried again. */
const DELETE_TRIES = 3;
const DELETE_PAUSE_MS = 2000;
export const RETRY_LATER_MS = 60_000;
const LEASE_MS = 5 * 60_000;

/** One item of the dashboard's live participants (Business plans); the rest is ignored. */
const text = z.union([z.string(), z.number()]).transform((v) => (v === '' ? null : String(v))).nullish().transform((v) => v ?? null);
const dashboardItem = z.object({
  id: text,
  user_id: text,
  participant_uuid: text,
  participant_user_id: text,
  user_name: text,
  email: text,
  status: text,
  leave_time: text,
});

/**
 * The check of one class at start + grace. Evidence is gathered first and the verdict taken on it
 * before anything is written, so a poll cannot erase what the webhooks saw; afterwards the poll and
 * the dashboard may only correct the stored state upwards (more students, a start). Ending is the
 * one destructive step: it happens only while this replica still holds the class's lease and the
 * class has not moved, and the decision is stored first, so an end cut off after Zoom acted on it is
 * finished by the next check.
 */
export async function checkAttendance(deps: GraceCheckDeps, w: GraceWork, webhookSeen: boolean): Promise<GraceOutcome> {
  const { db, clock, config, client, logger, owner } = deps;
  const cfg = config.current();
  let creds: ZoomCredentials | null = null;
  let credsProblem: string | null = null;
  if (w.accountId === null) credsProblem = 'the meeting has no host account on record';
  else {
    try {
      creds = await readZoomCredentials(db, deps.box, w.accountId);
    } catch (error) {
      credsProblem = `the host account's credentials could not be read: ${(error as Error).message}`;
    }
  }

  let polled: 'waiting' | 'started' | 'missing' | null = null;
  let pollFailed = false;
  let meetingUuid = w.meetingId;
  let hostId: string | null = null;
  let dashboard: Dashboard | null = null;
  // An end in progress asks Zoom whatever monitor.reconcile says: only Zoom knows if it went through.
  if (creds && (cfg.monitor.reconcile || w.ending)) {
    try {
      const meeting = await client.getMeeting(creds, w.meetingId);
      polled = meeting.status === 'started' ? 'started' : 'waiting';
      meetingUuid = meeting.uuid ?? w.meetingId;
      hostId = meeting.host_id ?? null;
    } catch (error) {
      if (isMeetingGone(error)) polled = 'missing';
      else {
        pollFailed = true;
        logger.warn({ schedule: w.externalId, err: error }, 'meeting status poll failed; judging by webhooks alone');
      }
    }
    if (polled === 'started' && cfg.monitor.dashboardParticipants) dashboard = await dashboardOrUnknown(deps, creds, w, hostId);
  }

  // An end cut off after Zoom deleted the meeting (a crash, a failed write): finish it.
  if (w.ending && polled === 'missing') return finishEnd(deps, w, `${w.reason ?? 'no student present'}; meeting gone at Zoom when checked again: ended and deleted`);

  const now = clock.now();
  // Before the applied state: an event applied in between is then counted in one or the other.
  const unapplied = await unappliedParticipantEvents(db, w.meetingId);
  const facts = await db.selectFrom('schedules').select(['attendance', 'attendance_peak', 'live_status']).where('id', '=', w.id).executeTakeFirst();
  const booked = (await bookedCounts(db, [w.id])).get(w.id) ?? 0;
  const verdict = graceVerdict({
    minimum: w.minimum,
    booked,
    attendance: facts?.attendance ?? 0,
    peak: facts?.attendance_peak ?? 0,
    studentsSeen: await studentsSeen(db, w.id, w.meetingId),
    othersPresent: await presentOthers(db, w.id),
    webhookSeen,
    webhookLive: facts?.live_status ?? null,
    polled,
    dashboard: dashboard?.count ?? null,
    unappliedParticipantEvents: unapplied,
    graceMinutes: cfg.monitor.graceMinutes,
    endEmpty: cfg.monitor.endEmpty,
  });

  // Corrections, upwards only: a start Zoom reports, students only the dashboard saw.
  if (polled === 'started' || (polled === 'waiting' && verdict.end)) await applyLiveStatus(db, now, w.id, polled);
  if (dashboard && dashboard.count > (facts?.attendance ?? 0)) {
    await applyLiveSnapshot(db, now, { scheduleId: w.id, meetingId: w.meetingId, meetingUuid, hostId, participants: dashboard.participants });
  }

  const log = { schedule: w.externalId, booked, present: verdict.present, minimum: w.minimum };
  const retryLater = async (why: string): Promise<GraceOutcome> => {
    logger.warn(log, `attendance check: ${why}`);
    await retryGraceWork(db, { id: w.id, owner, version: w.version, now: clock.now(), reason: why, retryAt: new Date(clock.now().getTime() + RETRY_LATER_MS) });
    return 'retry';
  };
  // The meeting may be gone at Zoom already: no verdict on it until Zoom says whether it is.
  if (w.ending && !creds) return retryLater(`${verdict.reason}; the meeting was being ended and Zoom cannot be asked whether it still exists (${credsProblem ?? 'no credentials'}), trying again`);
  if (w.ending && pollFailed && !verdict.end) return retryLater(`${verdict.reason}; the meeting was being ended and Zoom could not be asked whether it still exists, trying again`);
  // Stored events are applied within seconds, or retried for up to ~35 minutes: judge again soon
  // while a next check still falls before the class ends (never claimed after it, so never left pending).
  if (verdict.recheck && clock.now().getTime() + RETRY_LATER_MS + cfg.monitor.interval.ms < w.endsAt.getTime()) return retryLater(`${verdict.reason}; checking again`);

  let reason = verdict.reason;
  if (verdict.end && !creds) {
    reason = `${reason}; not ended: ${credsProblem ?? 'no credentials'}`;
  } else if (verdict.end && creds) {
    // Still ours, and the same occasion? A stalled check must not end a class another replica has
    // judged since, nor one the platform moved.
    if (!(await startEnding(db, { id: w.id, owner, version: w.version, now: clock.now(), until: new Date(clock.now().getTime() + LEASE_MS), reason }))) return 'lost';
    const note = await endEmpty(deps, creds, w, polled);
    if (note === null) return retryLater(`${reason}; Zoom still reports it in progress, trying again`);
    return finishEnd(deps, w, `${reason}; ${note}`, log);
  }
  const state = verdict.state === 'ended_empty' ? 'below_minimum' : verdict.state;
  if (!(await settleGraceWork(db, { id: w.id, owner, version: w.version, now: clock.now(), state, reason }))) return 'lost';
  if (state !== 'ok') logger.warn(log, `attendance check: ${reason}`);
  return state;
}

/**
 * Records a class ended as empty and cancels its pending links, together or not at all. When the
 * platform moved the class meanwhile, the meeting Zoom just ended cannot serve the new time: the
 * class is left without one (the provisioner makes a new one) and its re-timed links stand.
 */
async function finishEnd(deps: GraceCheckDeps, w: GraceWork, reason: string, log: Record<string, unknown> = { schedule: w.externalId }): Promise<GraceOutcome> {
  const { db, clock, owner, logger } = deps;
  const now = clock.now();
  const cancelled = await inTransaction(db, async (trx) => {
    if (!(await settleGraceWork(trx, { id: w.id, owner, version: w.version, now, state: 'ended_empty', reason, endedEmpty: true }))) return null;
    return cancelLinksOfEndedClass(trx, { now, scheduleId: w.id, version: w.version, reason });
  });
  if (cancelled === null) {
    if (!(await forgetEndedMeeting(db, { id: w.id, meetingId: w.meetingId, version: w.version, now }))) return 'lost';
    logger.warn(log, `class moved while its empty meeting was being ended: a new meeting will be made (${reason})`);
    return 'moved';
  }
  if (cancelled.length) deps.onDeliveriesChanged?.(cancelled);
  logger.warn(log, `class ended early: ${reason}`);
  return 'ended_empty';
}

/** The dashboard's students, or null (unknown) when it fails: it lags the meeting (404/3001) and is rate limited. */
async function dashboardOrUnknown(deps: GraceCheckDeps, creds: ZoomCredentials, w: GraceWork, hostId: string | null): Promise<Dashboard | null> {
  try {
    return await dashboardStudents(deps, creds, w.meetingId, hostId);
  } catch (error) {
    deps.logger.warn({ schedule: w.externalId, err: error }, 'dashboard participants unavailable; judging without them');
    return null;
  }
}

type Dashboard = { count: number; participants: Parameters<typeof applyLiveSnapshot>[2]['participants'] };

/** The students the dashboard lists as in the meeting now, keyed as the webhooks key them. */
async function dashboardStudents(deps: GraceCheckDeps, creds: ZoomCredentials, meetingId: string, hostId: string | null): Promise<Dashboard> {
  const hosts = await poolHosts(deps.db);
  const participants = (await deps.client.liveParticipants(creds, meetingId)).flatMap((raw) => {
    const p = dashboardItem.safeParse(raw);
    // The live list keeps people who left (with a leave_time) and those still in the waiting room.
    if (!p.success || p.data.status === 'in_waiting_room' || p.data.leave_time !== null) return [];
    const key = participantKey(p.data);
    if (!key) return [];
    const userIds = [p.data.id, p.data.participant_user_id].filter((v): v is string => v !== null);
    return [{ key, name: p.data.user_name, email: p.data.email, role: participantRole({ userIds, email: p.data.email }, hostId, hosts) }];
  });
  return { count: new Set(participants.filter((p) => p.role === 'student').map((p) => p.key)).size, participants };
}

/** Ends a meeting nobody attends, then deletes it; returns a note, or null to try again later. */
async function endEmpty(deps: GraceCheckDeps, creds: ZoomCredentials, w: GraceWork, polled: string | null): Promise<string | null> {
  const { client, clock } = deps;
  if (polled !== 'waiting') {
    try {
      await client.endMeeting(creds, w.meetingId);
    } catch (error) {
      if (!isMeetingGone(error)) throw error;
    }
  }
  for (let attempt = 1; attempt <= DELETE_TRIES; attempt++) {
    let step;
    try {
      await client.deleteMeeting(creds, w.meetingId);
      step = deleteStep({ ok: true });
    } catch (error) {
      if (!(error instanceof ZoomError)) throw error;
      step = deleteStep({ status: error.status, code: error.code });
      if (step === 'fail') throw error;
    }
    if (step === 'done') return 'meeting ended and deleted';
    if (step === 'lock-out') {
      // A PATCH is a meeting update: it counts against the host's 100 a day like any other.
      if (w.accountId !== null) await spendHostWrite(deps.db, w.accountId, hostWriteDay(clock.now()), Number.MAX_SAFE_INTEGER);
      await client.updateMeeting(creds, w.meetingId, { settings: { join_before_host: false } });
      return 'meeting ended; Zoom refused to delete it (3007), so join before host was turned off';
    }
    if (attempt < DELETE_TRIES) await clock.sleep(DELETE_PAUSE_MS);
  }
  return null;
}
