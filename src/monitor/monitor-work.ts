import { dialectOf, type Db } from '../db/database.ts';
import { toDate } from '../db/row.ts';
import type { LiveStatus, MonitorState } from '../db/tables.ts';
import { NO_MEETING } from '../schedules/schedules.ts';

/**
 * Recorded before the meeting is ended at Zoom: a check cut off after Zoom deleted the meeting is
 * finished by the next one instead of being judged anew on a meeting that is gone.
 */
const ENDING = 'ending' satisfies MonitorState;
/** How long after its class an end in progress is still looked at. */
const ENDING_KEPT_MS = 24 * 3_600_000;

/** A started class due its grace-time check, as claimed by one monitor. */
export interface GraceWork {
  id: number;
  externalId: string;
  startsAt: Date;
  endsAt: Date;
  minimum: number;
  accountId: number | null;
  meetingId: string;
  attendance: number;
  liveStatus: LiveStatus | null;
  /** The schedule version claimed: a move bumps it, and every write of this check is fenced on it. */
  version: number;
  /** An earlier check decided to end the meeting and may have been cut off part way (see startEnding). */
  ending: boolean;
  /** The reason stored by the earlier check (the verdict, while ending). */
  reason: string | null;
}

/**
 * Claims classes whose meeting is ready, that started at least `graceMs` ago, with no verdict yet or
 * a retry due (until the class ends), or an end left unfinished (`ending`, up to a day after the
 * class), under a lease so replicas never check one class twice.
 */
export async function claimGraceWork(db: Db, o: { owner: string; now: Date; graceMs: number; leaseMs: number; limit: number }): Promise<GraceWork[]> {
  let pick = db
    .selectFrom('schedules')
    .select('id')
    .where('cancelled', '=', false)
    .where('meeting_state', '=', 'ready')
    .where('meeting_id', 'is not', null)
    .where('starts_at', '<=', new Date(o.now.getTime() - o.graceMs))
    // An end cut off near the class's end is still finished after it (for a day).
    .where((eb) =>
      eb.or([
        eb.and([eb('ends_at', '>', o.now), eb.or([eb('monitor_state', 'is', null), eb('monitor_state', '=', 'pending')])]),
        eb.and([eb('ends_at', '>', new Date(o.now.getTime() - ENDING_KEPT_MS)), eb('monitor_state', '=', ENDING)]),
      ]),
    )
    .where((eb) => eb.or([eb('monitor_lease_expires_at', 'is', null), eb('monitor_lease_expires_at', '<', o.now)]))
    .orderBy('starts_at')
    .limit(o.limit);
  if (dialectOf(db) === 'postgres') pick = pick.forUpdate().skipLocked();
  const rows = await db
    .updateTable('schedules')
    .set({ monitor_lease_owner: o.owner, monitor_lease_expires_at: new Date(o.now.getTime() + o.leaseMs) })
    .where('id', 'in', pick)
    .returning(['id', 'external_id', 'starts_at', 'ends_at', 'min_participants', 'meeting_account_id', 'meeting_id', 'attendance', 'live_status', 'version', 'monitor_state', 'monitor_reason'])
    .execute();
  return rows.map((r) => ({
    id: r.id,
    externalId: r.external_id,
    startsAt: toDate(r.starts_at),
    endsAt: toDate(r.ends_at),
    minimum: r.min_participants,
    accountId: r.meeting_account_id,
    meetingId: r.meeting_id ?? '',
    attendance: r.attendance,
    liveStatus: r.live_status,
    version: r.version,
    ending: r.monitor_state === ENDING,
    reason: r.monitor_reason,
  }));
}

/** Whether any webhook event was stored for these meetings (webhooks work for them). */
export async function meetingsWithEvents(db: Db, meetingIds: readonly string[]): Promise<Set<string>> {
  if (meetingIds.length === 0) return new Set();
  const rows = await db.selectFrom('meeting_events').select('meeting_id').distinct().where('meeting_id', 'in', [...meetingIds]).execute();
  return new Set(rows.flatMap((r) => (r.meeting_id === null ? [] : [r.meeting_id])));
}

/** An update of the class's check, only while this replica's lease and the version it claimed still hold (fencing). */
function fenced(db: Db, o: { id: number; owner: string; version: number }) {
  return db.updateTable('schedules').where('id', '=', o.id).where('monitor_lease_owner', '=', o.owner).where('version', '=', o.version);
}

/** Records the verdict and releases the lease, only while the lease and the schedule version are ours (fencing). */
export async function settleGraceWork(
  db: Db,
  o: { id: number; owner: string; version: number; now: Date; state: MonitorState; reason: string; endedEmpty?: boolean },
): Promise<boolean> {
  const result = await fenced(db, o)
    .set({
      monitor_state: o.state,
      monitor_reason: o.reason,
      monitor_checked_at: o.now,
      monitor_lease_owner: null,
      monitor_lease_expires_at: null,
      updated_at: o.now,
      // An ended class frees its host from now on, and its meeting is gone.
      ...(o.endedEmpty ? { meeting_state: 'ended_empty' as const, live_status: 'ended' as const, live_ended_at: o.now, host_window_end: o.now } : {}),
    })
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Hands the class back to be checked again from `retryAt` (fenced like settleGraceWork). An end in
 * progress stays one, with its verdict as the reason: the meeting may be gone at Zoom already.
 */
export async function retryGraceWork(db: Db, o: { id: number; owner: string; version: number; now: Date; reason: string; retryAt: Date }): Promise<boolean> {
  const result = await fenced(db, o)
    .set((eb) => ({
      monitor_state: eb.case().when('monitor_state', '=', ENDING).then(eb.val<MonitorState>(ENDING)).else(eb.val<MonitorState>('pending')).end(),
      monitor_reason: eb.case().when('monitor_state', '=', ENDING).then(eb.ref('monitor_reason')).else(o.reason).end(),
      monitor_checked_at: o.now,
      monitor_lease_owner: null,
      monitor_lease_expires_at: o.retryAt,
      updated_at: o.now,
    }))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * Records the decision to end the meeting before Zoom is asked (see ENDING) and extends the lease;
 * false when the lease or the schedule version is no longer ours (another replica, or a move).
 */
export async function startEnding(db: Db, o: { id: number; owner: string; version: number; now: Date; until: Date; reason: string }): Promise<boolean> {
  const result = await fenced(db, o).set({ monitor_state: ENDING, monitor_reason: o.reason, monitor_checked_at: o.now, monitor_lease_expires_at: o.until, updated_at: o.now }).executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/**
 * The meeting and feedback links of a class ended as empty are void: cancel what is still waiting.
 * Only links of the version that was judged: a move re-times them for a new occasion.
 */
export async function cancelLinksOfEndedClass(db: Db, o: { now: Date; scheduleId: number; version: number; reason: string }): Promise<number[]> {
  const rows = await db
    .updateTable('deliveries')
    .set({ state: 'cancelled', last_error: `class ended early: ${o.reason}`, lease_owner: null, lease_token: null, lease_expires_at: null, updated_at: o.now })
    .where('state', 'in', ['pending', 'sending'])
    .where('kind', 'in', ['meeting_url', 'feedback_url'])
    .where('schedule_version', '=', o.version)
    .where('appointment_id', 'in', (eb) => eb.selectFrom('appointments').select('id').where('schedule_id', '=', o.scheduleId))
    .returning('id')
    .execute();
  return rows.map((r) => r.id);
}

/**
 * The class moved while its check ended its meeting at Zoom: that meeting cannot serve the new
 * time, so the class has none and the provisioner makes one. Left alone while the provisioner holds
 * the class (it finds the meeting gone and makes a new one itself) or the meeting was replaced.
 */
export async function forgetEndedMeeting(db: Db, o: { id: number; meetingId: string; version: number; now: Date }): Promise<boolean> {
  const result = await db
    .updateTable('schedules')
    .set({ ...NO_MEETING, updated_at: o.now })
    .where('id', '=', o.id)
    .where('meeting_id', '=', o.meetingId)
    .where('meeting_state', '=', 'ready')
    .where('version', '<>', o.version)
    .where((eb) => eb.or([eb('meeting_lease_expires_at', 'is', null), eb('meeting_lease_expires_at', '<', o.now)]))
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** The host or our staff present in the class's meeting by the webhooks. */
export async function presentOthers(db: Db, scheduleId: number): Promise<number> {
  const row = await db
    .selectFrom('meeting_participants')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('schedule_id', '=', scheduleId)
    .where('present', '=', true)
    .where('role', '<>', 'student')
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Students ever seen in the class's meeting, present or not (a leave without its join counts). */
export async function studentsSeen(db: Db, scheduleId: number, meetingId: string): Promise<number> {
  const row = await db
    .selectFrom('meeting_participants')
    .select((eb) => eb.fn.count<number>('participant_key').distinct().as('n'))
    .where('schedule_id', '=', scheduleId)
    .where('meeting_id', '=', meetingId)
    .where('role', '=', 'student')
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** The events that change who is in a meeting (as stored in meeting_events.event). */
const PARTICIPANT_EVENTS = ['meeting.participant_joined', 'meeting.participant_left'];

/**
 * Participant events of a meeting stored and not applied yet: in the backlog, being applied, or
 * waiting out a retry after a failed apply (a claim is only visible once its transaction commits).
 */
export async function unappliedParticipantEvents(db: Db, meetingId: string): Promise<number> {
  const row = await db
    .selectFrom('meeting_events')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('meeting_id', '=', meetingId)
    .where('processed_at', 'is', null)
    .where('event', 'in', PARTICIPANT_EVENTS)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export async function releaseGraceLeases(db: Db, owner: string): Promise<void> {
  await db.updateTable('schedules').set({ monitor_lease_owner: null, monitor_lease_expires_at: null }).where('monitor_lease_owner', '=', owner).execute();
}

/**
 * Classes whose meeting link is due within `horizon` and not yet checked before sending. Never a
 * class already under way: calling off a running class (first deploy, a monitor outage) would
 * delete its meeting with students in it.
 */
export async function dueForSendCheck(db: Db, o: { now: Date; leadMs: number; horizonMs: number; limit: number }): Promise<number[]> {
  const rows = await db
    .selectFrom('schedules')
    .select('id')
    .where('cancelled', '=', false)
    .where('min_participants', '>', 0)
    .where((eb) => eb.or([eb('headcount_stage', 'is', null), eb('headcount_stage', '<>', 'send')]))
    .where('starts_at', '<=', new Date(o.now.getTime() + o.leadMs + o.horizonMs))
    .where('starts_at', '>', o.now)
    .orderBy('starts_at')
    .limit(o.limit)
    .execute();
  return rows.map((r) => r.id);
}

/**
 * Classes Zoom reported started whose meeting.ended never came, well past their meeting's end:
 * the reconciliation poll asks Zoom (recordings and reports wait on the end).
 */
export async function overrunMeetings(db: Db, o: { now: Date; afterMs: number; limit: number }): Promise<Array<{ id: number; accountId: number | null; meetingId: string }>> {
  const rows = await db
    .selectFrom('schedules')
    .select(['id', 'meeting_account_id', 'meeting_id'])
    .where('live_status', '=', 'started')
    .where('meeting_id', 'is not', null)
    .where('ends_at', '<', new Date(o.now.getTime() - o.afterMs))
    .where((eb) => eb.or([eb('attendance_checked_at', 'is', null), eb('attendance_checked_at', '<', new Date(o.now.getTime() - o.afterMs))]))
    .orderBy('ends_at')
    .limit(o.limit)
    .execute();
  return rows.map((r) => ({ id: r.id, accountId: r.meeting_account_id, meetingId: r.meeting_id ?? '' }));
}
