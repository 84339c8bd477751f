import type { Clock, TimerHandle } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import { dialectOf, type Db } from '../db/database.ts';
import { createLimiter } from '../concurrency.ts';
import { fromJson, toDate } from '../db/row.ts';
import { inTransaction } from '../db/transaction.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { fullJitterDelay, type BackoffPolicy } from '../retry.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { eventKey, parseZoomEnvelope, type ParsedZoomWebhook, type ZoomWebhookEvent } from '../zoom/webhook.ts';
import { WEBHOOK_SECRET } from '../zoom/accounts.ts';
import { eventLabel, joinAfterEnd, later, liveStatusOf, outcomeLabel, participantRole } from './attendance.ts';
import { endInstance, lockScheduleByMeeting, poolHosts, recountAttendance, setLiveState, upsertParticipant } from './live.ts';

/**
 * Zoom webhook events after intake: stored once per event key, acknowledged, then applied here to
 * the schedule's live state and attendance. Each stored event is processed once (its processed_at
 * is claimed in the transaction that applies it; the schedule row is locked, so two replicas never
 * interleave on one class). Woken by each intake, by a sweep every `monitor.eventSweep` (events a
 * crash or another replica left behind, and retries that came due) and once at start.
 *
 * Failures: a stored payload that does not parse will never parse, so that event fails at once. Any
 * other error (a dropped connection, a lock timeout, a serialization failure) may pass: the event
 * stays unprocessed and is tried again after a backoff (attempts, retry_at), and is only given up
 * after MAX_ATTEMPTS, because a lost participant_joined would make a class look empty.
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
  /** Backoff jitter (tests pass a fixed one). */
  random?: (() => number) | undefined;
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
  const tokens = rows.flatMap((r) => (r.webhook_secret_token === null ? [] : [decryptToken(box, r.webhook_secret_token)]));
  return [...new Set(tokens)];
}

/**
 * Decryptions remembered per ciphertext: the rows are read on every request (a rotated or removed
 * token takes effect at once), but at peak rates decrypting each one every time is measurable.
 */
const decrypted = new WeakMap<SecretBox, Map<string, string>>();
function decryptToken(box: SecretBox, sealed: string): string {
  let memo = decrypted.get(box);
  if (!memo) decrypted.set(box, (memo = new Map()));
  let plain = memo.get(sealed);
  if (plain === undefined) {
    plain = box.decrypt(sealed, WEBHOOK_SECRET);
    if (memo.size > 1000) memo.clear();
    memo.set(sealed, plain);
  }
  return plain;
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
  meetingId: string | null;
  /** As stored (JSON text on SQLite): parsed per event, so one bad row cannot stall the batch. */
  payload: unknown;
  attempts: number;
}

/** Events not processed yet and not waiting out a retry backoff, oldest event first. */
export async function pendingMeetingEvents(db: Db, now: Date, limit: number): Promise<StoredEvent[]> {
  const rows = await db
    .selectFrom('meeting_events')
    .select(['id', 'account_id', 'event', 'meeting_id', 'payload', 'attempts'])
    .where('processed_at', 'is', null)
    .where((eb) => eb.or([eb('retry_at', 'is', null), eb('retry_at', '<=', now)]))
    .orderBy('event_at')
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: r.id, accountId: r.account_id, event: r.event, meetingId: r.meeting_id, payload: r.payload, attempts: r.attempts }));
}

/** Marks an unprocessed event done; false when it was done already (another replica). */
export async function finishMeetingEvent(db: Db, now: Date, id: number, outcome: string, error: string | null = null): Promise<boolean> {
  const rows = await db.updateTable('meeting_events').set({ processed_at: now, outcome, error }).where('id', '=', id).where('processed_at', 'is', null).returning('id').execute();
  return rows.length > 0;
}

/**
 * Records a failed try of an unprocessed event: tried again from `retryAt`. Guarded by the attempts
 * read, so when two replicas fail the same try only one counts it. False when it was not recorded.
 */
export async function deferMeetingEvent(db: Db, id: number, seenAttempts: number, retryAt: Date, error: string): Promise<boolean> {
  const rows = await db
    .updateTable('meeting_events')
    .set({ attempts: seenAttempts + 1, retry_at: retryAt, error })
    .where('id', '=', id)
    .where('processed_at', 'is', null)
    .where('attempts', '=', seenAttempts)
    .returning('id')
    .execute();
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
/** Meetings applied at once on PostgreSQL (leaves room in the pool for the intake). */
const PG_LANES = 6;
/** Between tries of an event whose application failed for a reason that may pass. */
const RETRY: BackoffPolicy = { baseDelayMs: 5_000, maxDelayMs: 5 * 60_000 };
/** Tries before giving up: with the backoff above (and the sweep), well over half an hour of outage. */
export const MAX_ATTEMPTS = 20;

export function createZoomWebhookRuntime(deps: ZoomWebhookDeps): ZoomWebhookRuntime {
  const { db, clock, config, logger } = deps;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = true;
  let timer: TimerHandle | undefined;
  let gather: TimerHandle | undefined;

  const count = (event: string, outcome: string): void => deps.metrics?.zoomWebhookEvents.inc({ event: eventLabel(event), outcome: outcomeLabel(outcome) });

  /** Marks an event done (unless another replica did) and counts it. */
  const settle = async (stored: StoredEvent, outcome: string, error: string | null): Promise<void> => {
    if (await finishMeetingEvent(db, clock.now(), stored.id, outcome, error)) count(stored.event, outcome);
  };

  /** A failed try that may succeed later: back off, or give up after MAX_ATTEMPTS. */
  const failedTry = async (stored: StoredEvent, err: Error): Promise<void> => {
    const attempt = stored.attempts + 1;
    const log = { eventId: stored.id, event: stored.event, attempt, err };
    if (attempt >= MAX_ATTEMPTS) {
      logger.error(log, 'Zoom webhook event could not be applied; gave up');
      const error = `gave up after ${attempt} attempts: ${err.message}`;
      const rows = await db
        .updateTable('meeting_events')
        .set({ processed_at: clock.now(), outcome: 'failed', error, attempts: attempt, retry_at: null })
        .where('id', '=', stored.id)
        .where('processed_at', 'is', null)
        .returning('id')
        .execute();
      if (rows.length > 0) count(stored.event, 'failed');
      return;
    }
    const retryAt = new Date(clock.now().getTime() + fullJitterDelay(RETRY, attempt, deps.random));
    if (await deferMeetingEvent(db, stored.id, stored.attempts, retryAt, err.message)) {
      logger.warn({ ...log, retryAt }, 'Zoom webhook event could not be applied; will retry');
    }
  };

  /** One event: claimed, applied and marked in one transaction (recordings: see below). */
  const processOne = async (stored: StoredEvent, hosts: ReadonlySet<string>): Promise<void> => {
    let parsed: ParsedZoomWebhook;
    try {
      parsed = parseZoomEnvelope(fromJson(stored.payload));
    } catch (cause) {
      parsed = { ok: false, problem: `not JSON (${coerceError(cause).message})` };
    }
    if (!parsed.ok) {
      // The stored bytes will not change: trying again would fail the same way.
      logger.error({ eventId: stored.id, event: stored.event, problem: parsed.problem }, 'Zoom webhook event payload is invalid; set aside');
      await settle(stored, 'failed', `stored payload: ${parsed.problem}`);
      return;
    }
    const event = parsed.event;
    try {
      if (event.event === 'recording.completed') {
        // At least once, outside any claim: REC writes through its own handle (on SQLite, inside our
        // transaction it would wait on itself). Safe because onRecording is idempotent by file id, so
        // a second call (another replica, or a retry after the finish below failed) only refreshes.
        const outcome = deps.onRecording ? await deps.onRecording(stored.accountId, event.object, event.downloadToken) : 'ignored: recordings off';
        await settle(stored, outcome, null);
        return;
      }
      const done = await inTransaction(db, async (trx) => {
        const now = clock.now();
        // Claim first: on PostgreSQL a second replica waits on this row, then finds it done.
        if (!(await finishMeetingEvent(trx, now, stored.id, 'processing'))) return undefined;
        const result = await applyMeetingEvent(trx, now, event, hosts);
        await trx.updateTable('meeting_events').set({ outcome: result }).where('id', '=', stored.id).execute();
        return result;
      });
      if (done !== undefined) count(stored.event, done);
    } catch (cause) {
      // Rolled back, claim included: the event is still unprocessed.
      await failedTry(stored, coerceError(cause));
    }
  };

  const processBatch = async (): Promise<boolean> => {
    const events = await pendingMeetingEvents(db, clock.now(), BATCH);
    if (events.length === 0) return false;
    // Read outside the per-event transactions (on SQLite a read on `db` inside one would wait for itself).
    const hosts = await poolHosts(db);
    // One meeting's events in order; different meetings side by side on PostgreSQL (each holds its
    // schedule's row lock). SQLite has one connection, so there it stays one at a time.
    const byMeeting = new Map<string, StoredEvent[]>();
    for (const e of events) {
      const key = e.meetingId ?? `event:${e.id}`;
      byMeeting.set(key, [...(byMeeting.get(key) ?? []), e]);
    }
    const lanes = createLimiter(() => (dialectOf(db) === 'postgres' ? PG_LANES : 1));
    await Promise.all(
      [...byMeeting.values()].map((group) =>
        lanes.run(async () => {
          for (const event of group) await processOne(event, hosts);
        }),
      ),
    );
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
