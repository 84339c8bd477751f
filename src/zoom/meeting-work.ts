import type { Expression, ExpressionBuilder, Selectable, SqlBool } from 'kysely';
import { dialectOf, type Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import type { MeetingState, SchedulesTable, Tables } from '../db/tables.ts';

/** One schedule's meeting work, as claimed by a provisioner. */
export interface MeetingWork {
  id: number;
  externalId: string;
  title: string;
  startsAt: Date;
  endsAt: Date;
  trial: boolean;
  cancelled: boolean;
  version: number;
  state: MeetingState;
  hostId: number | null;
  meetingId: string | null;
  meetingVersion: number | null;
  /** The class title the meeting's topic was made from (null: not known, left as it is). */
  meetingTitle: string | null;
  attempts: number;
  /** A meeting a re-host replaced, still to delete at Zoom on its host (a side task with its own backoff). */
  replaced: Replaced | null;
  /** The claim picked the row for its meeting work, not only for the replaced meeting's DELETE. */
  due: boolean;
  /** What the create/update intent in flight was recorded for (null: none, or recorded before 0006). */
  intent: Intent | null;
  minParticipants: number;
  /** The last headcount check point passed (null: never checked). */
  headcountStage: 'provision' | 'send' | null;
}

export interface Replaced {
  meetingId: string;
  hostId: number;
  attempts: number;
  retryAt: Date | null;
}

export function toMeetingWork(row: Selectable<SchedulesTable>, due = true): MeetingWork {
  return {
    id: row.id,
    externalId: row.external_id,
    title: row.title,
    startsAt: toDate(row.starts_at),
    endsAt: toDate(row.ends_at),
    trial: toBool(row.trial),
    cancelled: toBool(row.cancelled),
    version: row.version,
    state: row.meeting_state,
    hostId: row.meeting_account_id,
    meetingId: row.meeting_id,
    meetingVersion: row.meeting_version,
    meetingTitle: row.meeting_title,
    attempts: row.meeting_attempts,
    replaced:
      row.replaced_meeting_id === null || row.replaced_meeting_account_id === null
        ? null
        : { meetingId: row.replaced_meeting_id, hostId: row.replaced_meeting_account_id, attempts: row.replaced_attempts, retryAt: toOptionalDate(row.replaced_retry_at) },
    due,
    intent: row.meeting_intent_version === null || row.meeting_intent_at === null ? null : { version: row.meeting_intent_version, at: toDate(row.meeting_intent_at) },
    minParticipants: row.min_participants,
    headcountStage: row.headcount_stage,
  };
}

/** What an intent was recorded for: the schedule version, and when (Zoom's listing may lag a create). */
export interface Intent {
  version: number;
  at: Date;
}

export interface ClaimOptions {
  owner: string;
  now: Date;
  /** Create meetings only for classes starting before this. */
  horizonEnd: Date;
  leaseMs: number;
  limit: number;
}

type Eb = ExpressionBuilder<Tables, 'schedules'>;

/** The rows whose meeting work is due (leases aside). */
function meetingWorkDue(eb: Eb, o: ClaimOptions): Expression<SqlBool> {
  return eb.or([
    // `deleted` and not cancelled: the class was called back on while its DELETE was in flight.
    eb.and([
      eb('cancelled', '=', false),
      eb('meeting_state', 'in', ['none', 'no_capacity', 'failed', 'deleted']),
      eb('starts_at', '<', o.horizonEnd),
      eb('ends_at', '>', o.now),
      eb.or([eb('meeting_retry_at', 'is', null), eb('meeting_retry_at', '<=', o.now)]),
    ]),
    // A null meeting_version (version unknown) needs work too: `null <> version` is never true.
    // A move that failed waits out its backoff: each try spends a write of the host's daily budget.
    // A title change does not bump the version (that re-times deliveries): its topic is stale
    // when the title it was made from differs. The same rows as the move test, so it costs nothing.
    eb.and([
      eb('cancelled', '=', false),
      eb('meeting_state', '=', 'ready'),
      eb.or([eb('meeting_version', 'is', null), eb('meeting_version', '<>', eb.ref('version')), eb('meeting_title', '<>', eb.ref('title'))]),
      eb('ends_at', '>', o.now),
      eb.or([eb('meeting_retry_at', 'is', null), eb('meeting_retry_at', '<=', o.now)]),
    ]),
    // A DELETE that failed waits out its backoff; remove() gives up some days after the class.
    eb.and([
      eb('cancelled', '=', true),
      eb('meeting_state', 'in', ['ready', 'creating', 'updating', 'deleting']),
      eb.or([eb('meeting_retry_at', 'is', null), eb('meeting_retry_at', '<=', o.now)]),
    ]),
    // A finished class (after-class buffer over, not live) whose meeting late students could still start.
    eb.and([
      eb('cancelled', '=', false),
      eb('meeting_state', '=', 'ready'),
      eb('meeting_closed_at', 'is', null),
      eb('host_window_end', '<=', o.now),
      // Zoom lets a scheduled meeting expire 30 days after its date: nothing to close after that.
      eb('host_window_end', '>', new Date(o.now.getTime() - 30 * 86_400_000)),
      eb.or([eb('live_status', 'is', null), eb('live_status', '<>', 'started')]),
      eb.or([eb('meeting_retry_at', 'is', null), eb('meeting_retry_at', '<=', o.now)]),
    ]),
    eb.and([
      eb('meeting_state', 'in', ['creating', 'updating', 'deleting']),
      eb.or([eb('meeting_retry_at', 'is', null), eb('meeting_retry_at', '<=', o.now)]),
    ]),
  ]);
}

/**
 * A replaced meeting whose DELETE is due: once the new meeting is recorded (not while the re-host's
 * create is an intent: if it comes to nothing, the old meeting stays the class's), on its own backoff.
 */
function replacedDeleteDue(eb: Eb, now: Date): Expression<SqlBool> {
  return eb.and([eb('replaced_meeting_id', 'is not', null), eb('meeting_state', '<>', 'creating'), eb.or([eb('replaced_retry_at', 'is', null), eb('replaced_retry_at', '<=', now)])]);
}

/**
 * Claims schedules whose meeting needs work, with a lease, so overlapping runs and replicas never
 * work one schedule at once: no meeting yet (inside the horizon), a meeting made for an older or
 * unknown version (moved), a meeting of a cancelled class, or an intent left behind by a crash (its
 * lease expired); or a replaced meeting to delete, a side task (`due` tells the rest apart). Work
 * that failed waits for meeting_retry_at. PostgreSQL skips rows another replica is claiming (SKIP LOCKED).
 */
export async function claimMeetingWork(db: Db, o: ClaimOptions): Promise<MeetingWork[]> {
  let pick = db
    .selectFrom('schedules')
    .select('id')
    .where((eb) =>
      eb.and([
        eb.or([eb('meeting_lease_expires_at', 'is', null), eb('meeting_lease_expires_at', '<', o.now)]),
        eb.or([meetingWorkDue(eb, o), replacedDeleteDue(eb, o.now)]),
      ]),
    )
    .orderBy('starts_at')
    .limit(o.limit);
  if (dialectOf(db) === 'postgres') pick = pick.forUpdate().skipLocked();
  const rows = await db
    .updateTable('schedules')
    .set({ meeting_lease_owner: o.owner, meeting_lease_expires_at: new Date(o.now.getTime() + o.leaseMs) })
    .where('id', 'in', pick)
    .returningAll()
    // The same test on the row as claimed (the update touches only the lease).
    .returning((eb) => eb.case().when(meetingWorkDue(eb, o)).then(1).else(0).end().as('work_due'))
    .execute();
  return rows.map((r) => toMeetingWork(r, Number(r.work_due) === 1)).sort((a, b) => a.startsAt.getTime() - b.startsAt.getTime());
}

export interface MeetingFields {
  /** Left as it is when absent. */
  meeting_state?: MeetingState;
  meeting_account_id?: number | null;
  meeting_id?: string | null;
  meeting_uuid?: string | null;
  join_url?: string | null;
  start_url?: string | null;
  passcode?: string | null;
  meeting_version?: number | null;
  meeting_error?: string | null;
  meeting_attempts?: number;
  meeting_retry_at?: Date | null;
  host_window_start?: Date | null;
  host_window_end?: Date | null;
  meeting_attempt_id?: string | null;
  meeting_closed_at?: Date | null;
  meeting_title?: string | null;
  replaced_meeting_id?: string | null;
  replaced_meeting_account_id?: number | null;
  replaced_window_start?: Date | null;
  replaced_window_end?: Date | null;
  replaced_attempts?: number;
  replaced_retry_at?: Date | null;
}

/**
 * Records the outcome of a schedule's meeting work and releases the lease, only if the lease is
 * still ours (fencing): a worker that stalled past its lease cannot overwrite a newer outcome.
 */
export async function settleMeetingWork(db: Db, id: number, owner: string, now: Date, fields: MeetingFields, release = true): Promise<boolean> {
  const result = await db
    .updateTable('schedules')
    .set({ ...fields, updated_at: now, ...(release ? { meeting_lease_owner: null, meeting_lease_expires_at: null } : {}) })
    .where('id', '=', id)
    .where('meeting_lease_owner', '=', owner)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Hands unfinished work back (graceful shutdown): another worker may take it at once. */
export async function releaseMeetingLeases(db: Db, owner: string): Promise<void> {
  await db.updateTable('schedules').set({ meeting_lease_owner: null, meeting_lease_expires_at: null }).where('meeting_lease_owner', '=', owner).execute();
}

/** Extends the leases this worker holds (heartbeat while a batch is in flight). */
export async function renewMeetingLeases(db: Db, owner: string, until: Date): Promise<void> {
  await db.updateTable('schedules').set({ meeting_lease_expires_at: until }).where('meeting_lease_owner', '=', owner).execute();
}
