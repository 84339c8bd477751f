import { sql, type Selectable } from 'kysely';
import type { Clock } from '../clock.ts';
import { dialectOf, type Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import type { MeetingState, SchedulesTable } from '../db/tables.ts';
import { chunked, inTransaction } from '../db/transaction.ts';
import { invalid, notFound } from '../errors.ts';
import { checkClassTimes, checkSchedule, isNewerRevision, planScheduleUpdate, type ScheduleFields, type ScheduleInput, type UpsertOutcome } from './schedule-rules.ts';
import { syncDeliveries } from '../deliveries/outbox.ts';
import { DEFAULT_RULES, type DeliveryRules } from '../deliveries/rules.ts';

/** How upserts keep the outbox: the rules for due times, and who to tell about changed deliveries. */
export interface OutboxOptions {
  rules?: DeliveryRules;
  /** Called after commit with the deliveries created or changed (the timing wheel re-arms them). */
  onDeliveriesChanged?: (ids: number[]) => void;
  /** A class was created, moved or cancelled: its meeting needs work now (the provisioner wakes up). */
  onMeetingsChanged?: () => void;
}

export interface ScheduleUpsertOptions extends OutboxOptions {
  /** Refuse starts outside the sane range (`checkClassTimes`): the admin API asks for it. */
  boundClassTimes?: boolean;
}

export interface Meeting {
  state: MeetingState;
  zoomAccountId: number | null;
  meetingId: string | null;
  joinUrl: string | null;
  passcode: string | null;
  /** The schedule version the meeting was made for (null: none yet). */
  version: number | null;
  error: string | null;
}

/** What was seen of the class while it ran (webhooks, polls) and the verdicts on it. */
export interface Monitoring {
  liveStatus: string | null;
  startedAt: Date | null;
  endedAt: Date | null;
  /** Students in the meeting now, and the most at once. */
  attendance: number;
  attendancePeak: number;
  /** The grace-time verdict and why. */
  verdict: string | null;
  reason: string | null;
  headcount: { state: string | null; reason: string | null; checkedBefore: string | null };
}

export interface Schedule extends ScheduleFields {
  id: number;
  externalId: string;
  meeting: Meeting;
  monitoring: Monitoring;
  createdAt: Date;
  updatedAt: Date;
}

export interface UpsertResult {
  externalId: string;
  id: number;
  outcome: UpsertOutcome;
  version: number;
}

/**
 * Creates or replaces schedules by external id, all or nothing: every item is checked before
 * anything is written, and the writes share one transaction.
 */
export async function upsertSchedules(db: Db, clock: Clock, inputs: readonly ScheduleInput[], options: ScheduleUpsertOptions = {}): Promise<UpsertResult[]> {
  const prefix = (i: number) => `items[${i}].`;
  const rules = options.rules ?? DEFAULT_RULES;
  const touched: number[] = [];
  const seen = new Map<string, number>();
  const checkedAt = clock.now();
  const problems = inputs.flatMap((input, i) => {
    const p = inputs.length === 1 ? '' : prefix(i);
    const dup = seen.get(input.externalId);
    seen.set(input.externalId, i);
    const times = options.boundClassTimes ? checkClassTimes(input, checkedAt, p) : [];
    return [...times, ...checkSchedule(input, p), ...(dup !== undefined ? [invalid(`${p}externalId`, `"${input.externalId}" appears twice (also at index ${dup})`)] : [])];
  });
  if (problems[0]) throw problems[0];

  let meetingsChanged = false;
  const results = await inTransaction(db, async (trx) => {
    const now = clock.now();
    const existing = await selectForUpdate(trx, inputs.map((i) => i.externalId));
    const results: UpsertResult[] = [];
    const fresh: ScheduleInput[] = [];
    for (const input of inputs) {
      const row = existing.get(input.externalId);
      if (!row) {
        fresh.push(input);
        continue;
      }
      // A class the minimum-headcount policy called off stays off at that time: its students were
      // told so. Sent as on at another start, it is a new occasion the platform rescheduled, checked again.
      const calledOff = row.headcount_state === 'cancelled';
      const rescheduled = calledOff && !input.cancelled && input.startsAt.getTime() !== toDate(row.starts_at).getTime();
      const effective = calledOff && !rescheduled ? { ...input, cancelled: true } : input;
      const plan = planScheduleUpdate(fieldsOf(row), effective);
      if (plan.outcome === 'updated') {
        await trx
          .updateTable('schedules')
          .set({
            ...columnsOf(effective),
            ...revisionOf(input, row.source_revision),
            ...(plan.version !== row.version ? afterMove(row, effective, now) : {}),
            ...(rescheduled ? { headcount_state: null, headcount_reason: null, headcount_checked_at: null } : {}),
            version: plan.version,
            updated_at: now,
          })
          .where('id', '=', row.id)
          .execute();
      } else if (plan.outcome === 'unchanged' && isNewerRevision(row.source_revision, input.revision)) {
        // Nothing changed, but a write between the stored revision and this one is now older.
        await trx.updateTable('schedules').set({ source_revision: input.revision }).where('id', '=', row.id).execute();
      }
      results.push({ externalId: input.externalId, id: row.id, outcome: plan.outcome, version: plan.version });
    }
    for (const chunk of chunked(fresh)) {
      const rows = await trx
        .insertInto('schedules')
        .values(chunk.map((input) => ({ ...columnsOf(input), source_revision: input.revision ?? null, external_id: input.externalId, version: 1, meeting_state: 'none' as const, created_at: now, updated_at: now })))
        .returning(['id', 'external_id'])
        .execute();
      for (const row of rows) results.push({ externalId: row.external_id, id: row.id, outcome: 'created', version: 1 });
    }
    // Outbox: the bookings of every changed class get their deliveries re-timed or cancelled here.
    const changed = results.filter((r) => r.outcome === 'updated').map((r) => r.id);
    meetingsChanged = results.some((r) => r.outcome === 'created' || r.version !== existing.get(r.externalId)?.version);
    if (changed.length) touched.push(...(await syncDeliveries(trx, clock, rules, { scheduleIds: changed })));
    const order = new Map(inputs.map((input, i) => [input.externalId, i]));
    return results.sort((a, b) => (order.get(a.externalId) ?? 0) - (order.get(b.externalId) ?? 0));
  });
  if (touched.length) options.onDeliveriesChanged?.(touched);
  if (meetingsChanged) options.onMeetingsChanged?.();
  return results;
}

async function selectForUpdate(db: Db, externalIds: readonly string[]): Promise<Map<string, Selectable<SchedulesTable>>> {
  const out = new Map<string, Selectable<SchedulesTable>>();
  const unique = [...new Set(externalIds)];
  const postgres = dialectOf(db) === 'postgres';
  // PostgreSQL needs the row locks, so two syncs don't interleave; SQLite serialises writers already.
  // Taken in one statement in id order, as every other writer of classes takes them (a booking batch,
  // its deliveries sync): locked chunk by chunk in the batch's own order, two overlapping batches held
  // rows the other wanted next (a deadlock). A bulk's 5,000 ids fit in one statement.
  for (const chunk of postgres ? [unique] : chunked(unique)) {
    let query = db.selectFrom('schedules').selectAll().where('external_id', 'in', chunk);
    if (postgres) query = query.orderBy('id').forUpdate();
    for (const row of await query.execute()) out.set(row.external_id, row);
  }
  return out;
}

/**
 * A moved (or revived) class is a new occasion: it is checked again at its new time, its meeting
 * work starts afresh (no backoff left from failures at the old time; not closed to late students),
 * and a class whose meeting was deleted at Zoom (ended early as empty, or cancelled and now back)
 * gets a new meeting.
 */
function afterMove(row: Selectable<SchedulesTable>, input: ScheduleInput, now: Date) {
  // A check of the old time still in flight loses its lease: it must not write onto the new occasion.
  const fresh = {
    monitor_state: null,
    monitor_reason: null,
    monitor_checked_at: null,
    monitor_lease_owner: null,
    monitor_lease_expires_at: null,
    headcount_stage: null,
    meeting_attempts: 0,
    meeting_retry_at: null,
    // Closed to late students at the old time: a class moved to a time still ahead needs it open again
    // (the move's PATCH reopens it). An edit once the class is over (times corrected, the trial flag)
    // leaves it closed: reopened, anyone with the link could start it on the host.
    ...(input.endsAt.getTime() > now.getTime() ? { meeting_closed_at: null } : {}),
  };
  const gone = row.meeting_state === 'ended_empty' || (row.meeting_state === 'deleted' && !input.cancelled);
  if (!gone) return fresh;
  return { ...fresh, ...NO_MEETING };
}

/** A class whose meeting is gone at Zoom and cannot serve it: none on record, so the provisioner makes one. */
export const NO_MEETING = {
  meeting_state: 'none',
  meeting_id: null,
  meeting_uuid: null,
  join_url: null,
  start_url: null,
  passcode: null,
  meeting_version: null,
  meeting_account_id: null,
  host_window_start: null,
  host_window_end: null,
  live_status: null,
  live_started_at: null,
  live_ended_at: null,
  attendance: 0,
  attendance_peak: 0,
} as const;

function columnsOf(input: ScheduleInput) {
  return {
    title: input.title,
    starts_at: input.startsAt,
    ends_at: input.endsAt,
    trial: input.trial,
    min_participants: input.minParticipants,
    feedback_url: input.feedbackUrl,
    cancelled: input.cancelled,
  };
}

/** The revision to store: the incoming one if it has one, else the stored one stays. */
function revisionOf(input: { revision?: number | null | undefined }, stored: number | null): { source_revision: number | null } {
  return { source_revision: input.revision ?? stored };
}

function fieldsOf(row: Selectable<SchedulesTable>) {
  return {
    title: row.title,
    startsAt: toDate(row.starts_at),
    endsAt: toDate(row.ends_at),
    trial: toBool(row.trial),
    minParticipants: row.min_participants,
    feedbackUrl: row.feedback_url,
    cancelled: toBool(row.cancelled),
    version: row.version,
    revision: row.source_revision,
  };
}

export function toSchedule(row: Selectable<SchedulesTable>): Schedule {
  return {
    id: row.id,
    externalId: row.external_id,
    ...fieldsOf(row),
    meeting: {
      state: row.meeting_state,
      zoomAccountId: row.meeting_account_id,
      meetingId: row.meeting_id,
      joinUrl: row.join_url,
      passcode: row.passcode,
      version: row.meeting_version,
      error: row.meeting_error,
    },
    monitoring: {
      liveStatus: row.live_status,
      startedAt: toOptionalDate(row.live_started_at),
      endedAt: toOptionalDate(row.live_ended_at),
      attendance: row.attendance,
      attendancePeak: row.attendance_peak,
      verdict: row.monitor_state,
      reason: row.monitor_reason,
      headcount: { state: row.headcount_state, reason: row.headcount_reason, checkedBefore: row.headcount_stage === null ? null : row.headcount_stage === 'send' ? 'sending' : 'provisioning' },
    },
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  };
}

export async function getScheduleByExternalId(db: Db, externalId: string): Promise<Schedule> {
  const row = await db.selectFrom('schedules').selectAll().where('external_id', '=', externalId).executeTakeFirst();
  if (!row) throw notFound(`schedule "${externalId}" not found`, 'externalId');
  return toSchedule(row);
}

export interface ScheduleListQuery {
  from: Date;
  to: Date;
  limit: number;
  /** Keyset cursor: continue after this (startsAt, id). */
  after?: { startsAt: Date; id: number } | undefined;
}

/** Schedules starting in [from, to), in start order, one keyset page at a time. */
export async function listSchedules(db: Db, query: ScheduleListQuery): Promise<Schedule[]> {
  let q = db
    .selectFrom('schedules')
    .selectAll()
    .where('starts_at', '>=', query.from)
    .where('starts_at', '<', query.to);
  if (query.after) {
    const { startsAt, id } = query.after;
    q = q.where((eb) => eb.or([eb('starts_at', '>', startsAt), eb.and([eb('starts_at', '=', startsAt), eb('id', '>', id)])]));
  }
  const rows = await q.orderBy('starts_at').orderBy('id').limit(query.limit).execute();
  return rows.map(toSchedule);
}

export interface BookingCounts {
  booked: number;
  cancelled: number;
  /** deliveries by kind → state → count */
  deliveries: Record<string, Record<string, number>>;
}

/** Appointment and delivery counts for a set of schedules, two grouped queries in all. */
export async function bookingCounts(db: Db, scheduleIds: readonly number[]): Promise<Map<number, BookingCounts>> {
  const out = new Map<number, BookingCounts>(scheduleIds.map((id) => [id, { booked: 0, cancelled: 0, deliveries: {} }]));
  for (const chunk of chunked(scheduleIds)) {
    const appointments = await db
      .selectFrom('appointments')
      .select(['schedule_id', 'cancelled', sql<number>`count(*)`.as('n')])
      .where('schedule_id', 'in', chunk)
      .groupBy(['schedule_id', 'cancelled'])
      .execute();
    for (const row of appointments) {
      const counts = out.get(row.schedule_id);
      if (!counts) continue;
      if (toBool(row.cancelled)) counts.cancelled += Number(row.n);
      else counts.booked += Number(row.n);
    }
    const deliveries = await db
      .selectFrom('deliveries')
      .innerJoin('appointments', 'appointments.id', 'deliveries.appointment_id')
      .select(['appointments.schedule_id', 'deliveries.kind', 'deliveries.state', sql<number>`count(*)`.as('n')])
      .where('appointments.schedule_id', 'in', chunk)
      .groupBy(['appointments.schedule_id', 'deliveries.kind', 'deliveries.state'])
      .execute();
    for (const row of deliveries) {
      const counts = out.get(row.schedule_id);
      if (!counts) continue;
      const byState = (counts.deliveries[row.kind] ??= {});
      byState[row.state] = (byState[row.state] ?? 0) + Number(row.n);
    }
  }
  return out;
}
