import { z } from 'zod';
import { inTransaction } from '../db/transaction.ts';
import { createBatchLoop, type BatchLoop } from '../batch-loop.ts';
import { coerceError } from '../errors.ts';
import { markLineEventsProcessed, pendingLineEvents } from './events.ts';
import { planEvents, type StoredEvent } from './follow-rules.ts';
import { applyFollowChanges, memberKey, setMemberDisplayName } from './members.ts';
import { callAndRecord, type SendDeps } from './send.ts';

/** The part of LINE's profile answer we keep. */
const profileBody = z.looseObject({ displayName: z.string() });

/**
 * Applies stored webhook events after the webhook was acknowledged. Woken by each intake, by a
 * sweep every `line.eventSweep` (events another replica stored and did not finish, or left by a
 * crash), and once at start. Every write is idempotent and ordered by event time, so two replicas
 * working the same events, or the same event twice, end in the same state.
 */
export type EventProcessor = BatchLoop;

const BATCH = 500;
const GATHER_MS = 20;
const NAME_FETCH_CONCURRENCY = 4;

interface Followed {
  memberId: number;
  channelId: number;
  lineUserId: string;
}

export function createEventProcessor(deps: SendDeps): EventProcessor {
  const { db, clock, config, logger } = deps;

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
    const events = await pendingLineEvents(db, BATCH);
    if (events.length === 0) return false;
    let followed: Followed[];
    try {
      followed = await apply(events);
    } catch (error) {
      // One bad event must not block the rest: retry one by one and set the failing one aside.
      logger.warn({ err: coerceError(error) }, 'LINE event batch failed; retrying event by event');
      followed = [];
      for (const event of events) {
        try {
          followed.push(...(await apply([event])));
        } catch (inner) {
          await markLineEventsProcessed(db, clock, [{ id: event.id, outcome: 'failed', error: coerceError(inner).message }]);
          logger.error({ eventId: event.id, err: coerceError(inner) }, 'LINE event could not be applied; set aside');
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

  return createBatchLoop({ clock, logger, what: 'LINE event processing', gatherMs: GATHER_MS, sweepMs: () => config.current().line.eventSweep.ms, batch: processBatch });
}
