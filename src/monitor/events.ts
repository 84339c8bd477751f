import { sql } from 'kysely';
import type { Clock, TimerHandle } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import { dialectOf, type Db } from '../db/database.ts';
import { fromJson, toBool, toDate, toOptionalDate } from '../db/row.ts';
import type { LiveStatus } from '../db/tables.ts';
import { inTransaction } from '../db/transaction.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { eventKey, parseZoomEnvelope, type ZoomWebhookEvent } from '../zoom/webhook.ts';
import { WEBHOOK_SECRET } from '../zoom/accounts.ts';
import { eventLabel, joinAfterEnd, later, liveStatusOf, outcomeLabel, participantRole, polledLiveChange, poolHostSet, presenceChangeApplies, type ParticipantRole } from './attendance.ts';

/**
 * Zoom webhook events after intake: stored once per event key, acknowledged, then applied here to
 * the schedule's live state and attendance. Each stored event is processed once (its processed_at
 * is claimed in the transaction that applies it; the schedule row is locked, so two replicas never
 * interleave on one class). Woken by each intake, by a sweep every `monitor.eventSweep` (events a
 * crash or another replica left behind) and once at start.
 */

/** REC's hook: saves the recording files; returns the outcome to store. Must be idempotent (at least once). */
export type OnRecording = (accountId: string, object: unknown, downloadToken: string | null) => Promise<string>;

export interface ZoomWebhookDeps {
  db: Db;
  clock: Clock;
  config: ConfigStore;
  logger: Logger;
  metrics?: Metrics | undefined;
  onRecording?: OnRecording | undefined;
}

export interface ZoomWebhookRuntime {
  /** Called by the route after it stored new events. */
  wake(): void;
  /** Resolves once nothing is being processed (tests await this instead of sleeping). */
  idle(): Promise<void>;
  start(): void;
  stop(): Promise<void>;
}

// ---- intake ------------------------------------------------------------------------------------


/** The decrypted webhook tokens of a Zoom account's pool rows; null when no row has that account id. */
export async function webhookSecretTokens(db: Db, box: SecretBox, accountId: string): Promise<string[] | null> {
  const rows = await db.selectFrom('zoom_accounts').select('webhook_secret_token').where('account_id', '=', accountId).execute();
  if (rows.length === 0) return null;
  const tokens = rows.flatMap((r) => (r.webhook_secret_token === null ? [] : [box.decrypt(r.webhook_secret_token, WEBHOOK_SECRET)]));
  return [...new Set(tokens)];
}

/** Stores a verified event unless one with its key is stored already (a Zoom retry). True when new. */
export async function insertMeetingEvent(db: Db, clock: Clock, accountId: string, parsed: { event: ZoomWebhookEvent; body: Record<string, unknown> }): Promise<boolean> {
  const { event } = parsed;
  const meeting = 'meeting' in event ? event.meeting : null;
  const rows = await db
    .insertInto('meeting_events')
    .values({
      account_id: accountId,
      event_key: eventKey(accountId, parsed),
      event: event.event === 'other' ? event.name : event.event,
      meeting_id: meeting?.meetingId ?? null,
      meeting_uuid: meeting?.meetingUuid ?? null,
      event_at: event.at,
      payload: JSON.stringify(parsed.body),
      received_at: clock.now(),
    })
    .onConflict((oc) => oc.column('event_key').doNothing())
    .returning('id')
    .execute();
  return rows.length > 0;
}

// ---- stored events -----------------------------------------------------------------------------

interface StoredEvent {
  id: number;
  accountId: string;
  event: string;
  payload: unknown;
}

/** Events not processed yet, oldest event first. */
export async function pendingMeetingEvents(db: Db, limit: number): Promise<StoredEvent[]> {
  const rows = await db.selectFrom('meeting_events').select(['id', 'account_id', 'event', 'payload']).where('processed_at', 'is', null).orderBy('event_at').orderBy('id').limit(limit).execute();
  return rows.map((r) => ({ id: r.id, accountId: r.account_id, event: r.event, payload: fromJson(r.payload) }));
}

/** Marks an unprocessed event done; false when it was done already (another replica). */
export async function finishMeetingEvent(db: Db, now: Date, id: number, outcome: string, error: string | null = null): Promise<boolean> {
  const rows = await db.updateTable('meeting_events').set({ processed_at: now, outcome, error }).where('id', '=', id).where('processed_at', 'is', null).returning('id').execute();
  return rows.length > 0;
}

/** The latest end stored for a meeting instance (processed or not). */
export async function instanceEndedAt(db: Db, meetingId: string, meetingUuid: string): Promise<Date | null> {
  const row = await db
    .selectFrom('meeting_events')
    .select((eb) => eb.fn.max('event_at').as('at'))
    .where('meeting_id', '=', meetingId)
    .where('meeting_uuid', '=', meetingUuid)
    .where('event', '=', 'meeting.ended')
    .executeTakeFirst();
  return row?.at === null || row?.at === undefined ? null : toDate(row.at);
}

// ---- schedules and participants ----------------------------------------------------------------

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

// ---- applying one event ------------------------------------------------------------------------

/** Applies one parsed event inside the caller's transaction; returns the outcome to store. */
export async function applyMeetingEvent(db: Db, now: Date, event: ZoomWebhookEvent, hosts: ReadonlySet<string>): Promise<string> {
  if (event.event === 'other') return `ignored: ${event.name}`;
  if (event.event === 'endpoint.url_validation' || event.event === 'recording.completed') return `ignored: ${event.event}`;
  const schedule = await lockScheduleByMeeting(db, event.meeting.meetingId);
  if (!schedule) return `ignored: no schedule for meeting ${event.meeting.meetingId}`;
  const { meetingId, meetingUuid } = event.meeting;

  if (event.event === 'meeting.started' || event.event === 'meeting.ended') {
    const startedAt = event.event === 'meeting.started' ? later(schedule.liveStartedAt, event.at) : schedule.liveStartedAt;
    const endedAt = event.event === 'meeting.ended' ? later(schedule.liveEndedAt, event.at) : schedule.liveEndedAt;
    const status = liveStatusOf(startedAt, endedAt);
    const changed = status !== schedule.liveStatus || startedAt?.getTime() !== schedule.liveStartedAt?.getTime() || endedAt?.getTime() !== schedule.liveEndedAt?.getTime();
    if (changed) await setLiveState(db, now, schedule.id, { status, startedAt, endedAt });
    if (event.event === 'meeting.ended') {
      await endInstance(db, meetingUuid, event.at);
      await recountAttendance(db, now, schedule.id);
    }
    return changed ? 'applied' : 'stale';
  }

  const { participant } = event;
  const role = participantRole(participant, event.meeting.hostId, hosts);
  const base = { scheduleId: schedule.id, meetingId, meetingUuid, key: participant.key, name: participant.name, email: participant.email, role };
  let applied: boolean;
  if (event.event === 'meeting.participant_joined') {
    const endedAt = joinAfterEnd(event.at, await instanceEndedAt(db, meetingId, meetingUuid));
    const joinedAt = zoomTime(participant.joinTime) ?? event.at;
    applied = endedAt
      ? await upsertParticipant(db, { ...base, present: false, at: endedAt, joinedAt, leftAt: endedAt })
      : await upsertParticipant(db, { ...base, present: true, at: event.at, joinedAt, leftAt: null });
  } else {
    applied = await upsertParticipant(db, { ...base, present: false, at: event.at, leftAt: zoomTime(participant.leaveTime) ?? event.at });
  }
  if (!applied) return 'stale';
  await recountAttendance(db, now, schedule.id);
  return 'applied';
}

function zoomTime(value: string | null): Date | null {
  if (value === null) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

// ---- the processor -----------------------------------------------------------------------------

const BATCH = 200;
const GATHER_MS = 20;

export function createZoomWebhookRuntime(deps: ZoomWebhookDeps): ZoomWebhookRuntime {
  const { db, clock, config, logger } = deps;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = true;
  let timer: TimerHandle | undefined;
  let gather: TimerHandle | undefined;

  const count = (event: string, outcome: string): void => deps.metrics?.zoomWebhookEvents.inc({ event: eventLabel(event), outcome: outcomeLabel(outcome) });

  /** One event: claimed, applied and marked in one transaction; recordings go to REC first (idempotent there). */
  const processOne = async (stored: StoredEvent, hosts: ReadonlySet<string>): Promise<void> => {
    const parsed = parseZoomEnvelope(stored.payload);
    let outcome: string | undefined;
    let error: string | null = null;
    try {
      if (!parsed.ok) {
        outcome = 'failed';
        error = `stored payload: ${parsed.problem}`;
      } else if (parsed.event.event === 'recording.completed') {
        const e = parsed.event;
        outcome = deps.onRecording ? await deps.onRecording(stored.accountId, e.object, e.downloadToken) : 'ignored: recordings off';
      } else {
        const event = parsed.event;
        const done = await inTransaction(db, async (trx) => {
          const now = clock.now();
          // Claim first: on PostgreSQL a second replica waits on this row, then finds it done.
          if (!(await finishMeetingEvent(trx, now, stored.id, 'processing'))) return undefined;
          const result = await applyMeetingEvent(trx, now, event, hosts);
          await trx.updateTable('meeting_events').set({ outcome: result }).where('id', '=', stored.id).execute();
          return result;
        });
        if (done === undefined) return;
        count(stored.event, done);
        return;
      }
    } catch (cause) {
      outcome = 'failed';
      error = coerceError(cause).message;
      logger.error({ eventId: stored.id, event: stored.event, err: coerceError(cause) }, 'Zoom webhook event could not be applied; set aside');
    }
    if (await finishMeetingEvent(db, clock.now(), stored.id, outcome, error)) count(stored.event, outcome);
  };

  const processBatch = async (): Promise<boolean> => {
    const events = await pendingMeetingEvents(db, BATCH);
    if (events.length === 0) return false;
    // Read outside the per-event transactions (on SQLite a read on `db` inside one would wait for itself).
    const hosts = await poolHosts(db);
    for (const event of events) await processOne(event, hosts);
    return events.length === BATCH;
  };

  const run = async (): Promise<void> => {
    while (again) {
      again = false;
      try {
        while (await processBatch());
      } catch (error) {
        // The database is unreachable or similar: the next wake or sweep tries again.
        logger.error({ err: coerceError(error) }, 'Zoom webhook event processing failed');
      }
    }
  };

  const startRun = (): void => {
    running ??= run().finally(() => {
      running = undefined;
      if (again) wake();
    });
  };

  // Wakes within GATHER_MS make one pass.
  const wake = (): void => {
    again = true;
    if (running || gather) return;
    gather = clock.setTimeout(() => {
      gather = undefined;
      startRun();
    }, GATHER_MS);
  };

  const flush = (): void => {
    if (!gather) return;
    clock.clearTimeout(gather);
    gather = undefined;
    startRun();
  };

  const drain = async (): Promise<void> => {
    flush();
    while (running) {
      await running;
      flush();
    }
  };

  const sweep = (): void => {
    if (stopped) return;
    timer = clock.setTimeout(() => {
      wake();
      sweep();
    }, config.current().monitor.eventSweep.ms);
  };

  return {
    wake,
    idle: drain,
    start() {
      if (!stopped) return;
      stopped = false;
      wake();
      sweep();
    },
    async stop() {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
      timer = undefined;
      await drain();
    },
  };
}
