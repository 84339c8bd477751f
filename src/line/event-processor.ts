import { z } from 'zod';
import { inTransaction } from '../db/transaction.ts';
import { createBatchLoop, type BatchLoop } from '../batch-loop.ts';
import { coerceError } from '../errors.ts';
import { fullJitterDelay, type BackoffPolicy } from '../retry.ts';
import { markLineEventsProcessed, noteLineEventError, pendingLineEvents, setLineEventAside } from './events.ts';
import { planEvents, type StoredEvent } from './follow-rules.ts';
import { applyFollowChanges, memberKey, setMemberDisplayName } from './members.ts';
import { callAndRecord, type SendDeps } from './send.ts';

/** The part of LINE's profile answer we keep. */
const profileBody = z.looseObject({ displayName: z.string() });

/**
 * Applies stored webhook events after the webhook was acknowledged. Woken by each intake, by a
 * sweep every `line.eventSweep` (events another replica stored and did not finish, or left by a
 * crash, and retries that came due), and once at start. Every write is idempotent and ordered by
 * event time, so two replicas working the same events, or the same event twice, end in the same state.
 *
 * Failures: an event that cannot be applied (a lock timeout, a serialization failure, a dropped
 * connection) stays unprocessed and is tried again after a backoff; it is set aside as failed only
 * after MAX_ATTEMPTS, since a lost unfollow would keep messages going to a student who blocked us.
 * The tries and the backoff are kept in the event's row, so a restart or another replica goes on
 * from there.
 */
export type EventProcessor = BatchLoop;

const BATCH = 500;
const GATHER_MS = 20;
const NAME_FETCH_CONCURRENCY = 4;
/** Between tries of an event whose application failed, as for Zoom webhook events. */
const RETRY: BackoffPolicy = { baseDelayMs: 5_000, maxDelayMs: 5 * 60_000 };
/** Tries before an event is set aside as failed: with the backoff above, well over half an hour. */
export const MAX_ATTEMPTS = 20;

interface Followed {
  memberId: number;
  channelId: number;
  lineUserId: string;
}

export function createEventProcessor(deps: SendDeps): EventProcessor {
  const { db, clock, config, logger } = deps;

  /** A failed try: back off, or set the event aside after MAX_ATTEMPTS. */
  const failedTry = async (event: StoredEvent, err: Error): Promise<void> => {
    const attempts = (event.attempts ?? 0) + 1;
    if (attempts >= MAX_ATTEMPTS) {
      await setLineEventAside(db, clock, event.id, `gave up after ${attempts} attempts: ${err.message}`);
      logger.error({ eventId: event.id, attempts, err }, 'LINE event could not be applied; gave up');
      return;
    }
    const retryAt = new Date(clock.now().getTime() + fullJitterDelay(RETRY, attempts, deps.random));
    await noteLineEventError(db, event.id, { error: err.message, attempts, retryAt });
    logger.warn({ eventId: event.id, attempts, retryAt: retryAt.toISOString(), err }, 'LINE event could not be applied; will retry');
  };

  /** Unprocessed events whose backoff (if any) is over, oldest first (those still waiting are not read). */
  const dueEvents = (): Promise<StoredEvent[]> => pendingLineEvents(db, clock.now(), BATCH);

  /** Applies one batch in one transaction; returns the members who now follow. */
  const apply = async (events: readonly StoredEvent[]): Promise<Followed[]> => {
    const plan = planEvents(events);
    const followed: Followed[] = [];
    await inTransaction(db, async (trx) => {
      const applied = await applyFollowChanges(trx, clock, plan.changes.map((c) => c.change));
      const outcomes = [...plan.settled];
      for (const { eventId, change } of plan.changes) {
        const memberId = applied.get(memberKey(change.channelId, change.lineUserId));
        outcomes.push({ id: eventId, outcome: memberId === undefined ? 'stale' : 'applied' });
        if (memberId !== undefined && change.following === 'following') followed.push({ memberId, channelId: change.channelId, lineUserId: change.lineUserId });
      }
      await markLineEventsProcessed(trx, clock, outcomes);
    });
    for (const s of plan.settled) {
      if (s.outcome.startsWith('skipped')) logger.info({ eventId: s.id, outcome: s.outcome }, 'LINE webhook event skipped');
    }
    return followed;
  };

  const processBatch = async (): Promise<boolean> => {
    const events = await dueEvents();
    if (events.length === 0) return false;
    let followed: Followed[];
    try {
      followed = await apply(events);
    } catch (error) {
      // One bad event must not block the rest: retry one by one; a failing one backs off.
      logger.warn({ err: coerceError(error) }, 'LINE event batch failed; retrying event by event');
      followed = [];
      for (const event of events) {
        try {
          followed.push(...(await apply([event])));
        } catch (inner) {
          await failedTry(event, coerceError(inner));
        }
      }
    }
    if (config.current().line.fetchDisplayName) await fetchNames(followed);
    return events.length === BATCH;
  };

  const fetchNames = async (followed: Followed[]): Promise<void> => {
    const queue = [...followed];
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next; next = queue.shift()) await fetchName(next);
    };
    await Promise.all(Array.from({ length: Math.min(NAME_FETCH_CONCURRENCY, queue.length) }, worker));
  };

  /** Best effort: LINE answers 404 when the user's profile may not be read; the name then stays empty. */
  const fetchName = async (member: Followed): Promise<void> => {
    try {
      const channel = await deps.pool.byId(member.channelId);
      if (!channel) return;
      const { outcome, result } = await callAndRecord(deps, channel, 'profile', 1, { method: 'GET', path: `/v2/bot/profile/${encodeURIComponent(member.lineUserId)}` });
      const profile = result?.kind === 'response' ? profileBody.safeParse(result.body) : undefined;
      if (outcome.kind === 'sent' && profile?.success) await setMemberDisplayName(db, clock, member.memberId, profile.data.displayName);
    } catch (error) {
      logger.warn({ err: coerceError(error), memberId: member.memberId }, 'could not fetch a LINE display name');
    }
  };

  return createBatchLoop({ clock, logger, what: 'LINE event processing', gatherMs: GATHER_MS, sweepMs: () => config.current().line.eventSweep.ms, onConfigChange: (l) => config.onChange(l), batch: processBatch });
}
