import { sql } from 'kysely';
import { dialectOf, type Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import type { LiveStatus } from '../db/tables.ts';
import { inTransaction } from '../db/transaction.ts';
import { polledLiveChange, poolHostSet, presenceChangeApplies, type ParticipantRole } from './attendance.ts';

/**
 * The live state of classes in the database: who is present per meeting instance, the recount of
 * students, and the status Zoom reported. Used by webhook processing and by the monitor's
 * reconciliation poll; every write takes the schedule row lock first (PostgreSQL).
 */
interface LockedSchedule {
  id: number;
  liveStatus: LiveStatus | null;
  liveStartedAt: Date | null;
  liveEndedAt: Date | null;
}

/** The schedule of a Zoom meeting id, locked for this transaction (PostgreSQL). */
export async function lockScheduleByMeeting(db: Db, meetingId: string): Promise<LockedSchedule | null> {
  let q = db.selectFrom('schedules').select(['id', 'live_status', 'live_started_at', 'live_ended_at']).where('meeting_id', '=', meetingId).orderBy('id', 'desc').limit(1);
  if (dialectOf(db) === 'postgres') q = q.forUpdate();
  const row = await q.executeTakeFirst();
  return row ? { id: row.id, liveStatus: row.live_status, liveStartedAt: toOptionalDate(row.live_started_at), liveEndedAt: toOptionalDate(row.live_ended_at) } : null;
}

async function lockScheduleById(db: Db, scheduleId: number): Promise<LockedSchedule | null> {
  let q = db.selectFrom('schedules').select(['id', 'live_status', 'live_started_at', 'live_ended_at']).where('id', '=', scheduleId);
  if (dialectOf(db) === 'postgres') q = q.forUpdate();
  const row = await q.executeTakeFirst();
  return row ? { id: row.id, liveStatus: row.live_status, liveStartedAt: toOptionalDate(row.live_started_at), liveEndedAt: toOptionalDate(row.live_ended_at) } : null;
}

export async function setLiveState(db: Db, now: Date, scheduleId: number, state: { status: LiveStatus | null; startedAt: Date | null; endedAt: Date | null }): Promise<void> {
  await db.updateTable('schedules').set({ live_status: state.status, live_started_at: state.startedAt, live_ended_at: state.endedAt, updated_at: now }).where('id', '=', scheduleId).execute();
}

/** Zoom user ids and emails of every pool host (any of them in a meeting is staff, not a student). */
export async function poolHosts(db: Db): Promise<Set<string>> {
  const rows = await db.selectFrom('zoom_accounts').select('host_user_id').execute();
  return poolHostSet(rows.map((r) => r.host_user_id));
}

export interface PresenceChange {
  scheduleId: number;
  meetingId: string;
  meetingUuid: string;
  key: string;
  name: string | null;
  email: string | null;
  role: ParticipantRole;
  present: boolean;
  /** The event's time: decides against the stored `changed_at`. */
  at: Date;
  joinedAt?: Date | null;
  leftAt?: Date | null;
}

/** Applies a presence change if it is newer than the stored one (see `presenceChangeApplies`). Caller holds the schedule lock. */
export async function upsertParticipant(db: Db, change: PresenceChange): Promise<boolean> {
  const stored = await db
    .selectFrom('meeting_participants')
    .select(['present', 'changed_at'])
    .where('meeting_uuid', '=', change.meetingUuid)
    .where('participant_key', '=', change.key)
    .executeTakeFirst();
  const current = stored ? { present: toBool(stored.present), changedAt: toDate(stored.changed_at) } : undefined;
  if (!presenceChangeApplies(current, { present: change.present, at: change.at })) return false;
  const fields = {
    schedule_id: change.scheduleId,
    meeting_id: change.meetingId,
    user_name: change.name,
    email: change.email,
    role: change.role,
    present: change.present,
    changed_at: change.at,
    ...(change.joinedAt !== undefined ? { joined_at: change.joinedAt } : {}),
    ...(change.leftAt !== undefined ? { left_at: change.leftAt } : {}),
  };
  if (stored) {
    await db.updateTable('meeting_participants').set(fields).where('meeting_uuid', '=', change.meetingUuid).where('participant_key', '=', change.key).execute();
  } else {
    await db.insertInto('meeting_participants').values({ ...fields, meeting_uuid: change.meetingUuid, participant_key: change.key }).execute();
  }
  return true;
}

/** Everyone still present in a meeting instance leaves at its end. */
export async function endInstance(db: Db, meetingUuid: string, at: Date): Promise<number> {
  const result = await db
    .updateTable('meeting_participants')
    .set({ present: false, left_at: at, changed_at: at })
    .where('meeting_uuid', '=', meetingUuid)
    .where('present', '=', true)
    .where('changed_at', '<=', at)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** attendance = distinct students present now; attendance_peak = the most seen; attendance_checked_at = now. */
export async function recountAttendance(db: Db, now: Date, scheduleId: number): Promise<number> {
  const row = await db
    .selectFrom('meeting_participants')
    .select((eb) => eb.fn.count<number>('participant_key').distinct().as('n'))
    .where('schedule_id', '=', scheduleId)
    .where('present', '=', true)
    .where('role', '=', 'student')
    .executeTakeFirst();
  const n = Number(row?.n ?? 0);
  await db
    .updateTable('schedules')
    .set({ attendance: n, attendance_peak: sql<number>`case when attendance_peak < ${n} then ${n} else attendance_peak end`, attendance_checked_at: now })
    .where('id', '=', scheduleId)
    .execute();
  return n;
}

/**
 * The reconciliation poll's view of a meeting's status (GET /meetings/{id}). `waiting` after
 * `started` means the end was missed: it ends, and everyone present leaves. Returns the status now stored.
 */
export async function applyLiveStatus(db: Db, now: Date, scheduleId: number, status: LiveStatus): Promise<LiveStatus | null> {
  return inTransaction(db, async (trx) => {
    const schedule = await lockScheduleById(trx, scheduleId);
    if (!schedule) return null;
    const change = polledLiveChange(schedule.liveStatus, status);
    if (!change) return schedule.liveStatus;
    await setLiveState(trx, now, scheduleId, {
      status: change.status,
      startedAt: change.setStarted ? now : schedule.liveStartedAt,
      endedAt: change.setEnded ? now : schedule.liveEndedAt,
    });
    if (change.status === 'ended') {
      await trx.updateTable('meeting_participants').set({ present: false, left_at: now, changed_at: now }).where('schedule_id', '=', scheduleId).where('present', '=', true).execute();
      await recountAttendance(trx, now, scheduleId);
    }
    return change.status;
  });
}

export interface LiveSnapshot {
  scheduleId: number;
  meetingId: string;
  meetingUuid: string;
  hostId: string | null;
  participants: Array<{ key: string; name: string | null; email: string | null; role: ParticipantRole }>;
}

/**
 * The live participants as the API lists them now: exactly those are present (as of `now`), every
 * other participant of the schedule has left; then the recount. Returns the attendance.
 */
export async function applyLiveSnapshot(db: Db, now: Date, snapshot: LiveSnapshot): Promise<number> {
  return inTransaction(db, async (trx) => {
    if (!(await lockScheduleById(trx, snapshot.scheduleId))) return 0;
    const keys = new Set(snapshot.participants.map((p) => p.key));
    const present = await trx.selectFrom('meeting_participants').select(['meeting_uuid', 'participant_key']).where('schedule_id', '=', snapshot.scheduleId).where('present', '=', true).execute();
    for (const p of present) {
      if (p.meeting_uuid === snapshot.meetingUuid && keys.has(p.participant_key)) continue;
      await upsertParticipantLeft(trx, p.meeting_uuid, p.participant_key, now);
    }
    for (const p of snapshot.participants) {
      await upsertParticipant(trx, { scheduleId: snapshot.scheduleId, meetingId: snapshot.meetingId, meetingUuid: snapshot.meetingUuid, ...p, present: true, at: now });
    }
    return recountAttendance(trx, now, snapshot.scheduleId);
  });
}

async function upsertParticipantLeft(db: Db, meetingUuid: string, key: string, at: Date): Promise<void> {
  await db.updateTable('meeting_participants').set({ present: false, left_at: at, changed_at: at }).where('meeting_uuid', '=', meetingUuid).where('participant_key', '=', key).where('changed_at', '<=', at).execute();
}
