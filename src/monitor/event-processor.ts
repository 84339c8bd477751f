import type { Clock } from '../clock.ts';
import { createBatchLoop, type BatchLoop } from '../batch-loop.ts';
import type { ConfigStore } from '../config/store.ts';
import { dialectOf, type Db } from '../db/database.ts';
import { createLimiter } from '../concurrency.ts';
import { fromJson } from '../db/row.ts';
import { inTransaction } from '../db/transaction.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { fullJitterDelay, type BackoffPolicy } from '../retry.ts';
import { parseZoomEnvelope } from '../zoom/webhook.ts';
import { eventLabel, outcomeLabel } from './attendance.ts';
import { poolHosts } from './live.ts';
import { applyMeetingEvent, deferMeetingEvent, finishMeetingEvent, forgetDownloadToken, pendingMeetingEvents, withoutDownloadToken, type StoredEvent } from './events.ts';

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

/** Woken by the route after it stored new events (see batch-loop.ts). */
export type ZoomWebhookRuntime = BatchLoop;



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

  /** One event, then its download_token dropped once it is done (a retry still needs it). */
  const processOne = async (stored: StoredEvent, hosts: ReadonlySet<string>): Promise<void> => {
    let body: unknown;
    try {
      body = fromJson(stored.payload);
    } catch (cause) {
      return setAside(stored, `not JSON (${coerceError(cause).message})`);
    }
    await applyOne(stored, body, hosts);
    const scrubbed = withoutDownloadToken(body);
    if (scrubbed !== null) await forgetDownloadToken(db, stored.id, scrubbed).catch((error: unknown) => logger.warn({ eventId: stored.id, err: coerceError(error) }, 'could not drop the download_token of a stored Zoom event'));
  };

  /** The stored bytes will not change: trying again would fail the same way. */
  const setAside = async (stored: StoredEvent, problem: string): Promise<void> => {
    logger.error({ eventId: stored.id, event: stored.event, problem }, 'Zoom webhook event payload is invalid; set aside');
    await settle(stored, 'failed', `stored payload: ${problem}`);
  };

  /** One event: claimed, applied and marked in one transaction (recordings: see below). */
  const applyOne = async (stored: StoredEvent, body: unknown, hosts: ReadonlySet<string>): Promise<void> => {
    const parsed = parseZoomEnvelope(body);
    if (!parsed.ok) return setAside(stored, parsed.problem);
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

  return createBatchLoop({ clock, logger, what: 'Zoom webhook event processing', gatherMs: GATHER_MS, sweepMs: () => config.current().monitor.eventSweep.ms, onConfigChange: (l) => config.onChange(l), batch: processBatch });
}
