import type { Clock, TimerHandle } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { fromJson, toDate } from '../db/row.ts';
import { inTransaction } from '../db/transaction.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { eventKey, parseZoomEnvelope, type ZoomWebhookEvent } from '../zoom/webhook.ts';
import { WEBHOOK_SECRET } from '../zoom/accounts.ts';
import { eventLabel, joinAfterEnd, later, liveStatusOf, outcomeLabel, participantRole } from './attendance.ts';
import { endInstance, lockScheduleByMeeting, poolHosts, recountAttendance, setLiveState, upsertParticipant } from './live.ts';

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
