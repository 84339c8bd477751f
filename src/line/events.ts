import { z } from 'zod';
import type { Clock } from '../clock.ts';
import type { Db } from '../db/database.ts';
import { fromJson, toDate } from '../db/row.ts';
import type { StoredEvent } from './follow-rules.ts';
import type { WebhookEvent } from './webhook.ts';

/**
 * Stores verified events, once each: `webhookEventId` is unique, so a redelivery or a duplicate
 * changes nothing. Returns how many were new.
 */
export async function insertLineEvents(db: Db, clock: Clock, channelId: number, events: readonly WebhookEvent[]): Promise<{ stored: number; duplicates: number }> {
  const now = clock.now();
  let stored = 0;
  for (let i = 0; i < events.length; i += 500) {
    const rows = await db
      .insertInto('line_events')
      .values(
        events.slice(i, i + 500).map((event) => ({
          channel_id: channelId,
          webhook_event_id: event.webhookEventId,
          type: event.type,
          line_user_id: event.source?.userId ?? null,
          event_at: new Date(event.timestamp),
          payload: JSON.stringify(event),
          received_at: now,
        })),
      )
      .onConflict((oc) => oc.column('webhook_event_id').doNothing())
      .returning('id')
      .execute();
    stored += rows.length;
  }
  return { stored, duplicates: events.length - stored };
}

const modeOf = z.looseObject({ mode: z.string().optional() });

/** Events not processed yet and not waiting out a backoff at `now`, oldest event first. */
export async function pendingLineEvents(db: Db, now: Date, limit: number): Promise<StoredEvent[]> {
  const rows = await db
    .selectFrom('line_events')
    .select(['id', 'channel_id', 'type', 'line_user_id', 'event_at', 'payload', 'attempts'])
    .where('processed_at', 'is', null)
    .where((eb) => eb.or([eb('available_at', 'is', null), eb('available_at', '<=', now)]))
    .orderBy('event_at')
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((row) => {
    const payload = modeOf.safeParse(fromJson(row.payload));
    return {
      id: row.id,
      channelId: row.channel_id,
      type: row.type,
      mode: payload.success ? payload.data.mode : undefined,
      lineUserId: row.line_user_id,
      at: toDate(row.event_at),
      attempts: row.attempts,
    };
  });
}

export async function markLineEventsProcessed(db: Db, clock: Clock, outcomes: readonly { id: number; outcome: string; error?: string }[]): Promise<void> {
  const now = clock.now();
  const groups = new Map<string, { outcome: string; error: string | null; ids: number[] }>();
  for (const o of outcomes) {
    const key = `${o.outcome}\u0000${o.error ?? ''}`;
    const group = groups.get(key) ?? { outcome: o.outcome, error: o.error ?? null, ids: [] };
    group.ids.push(o.id);
    groups.set(key, group);
  }
  for (const group of groups.values()) {
    for (let i = 0; i < group.ids.length; i += 500) {
      await db
        .updateTable('line_events')
        .set({ processed_at: now, outcome: group.outcome, error: group.error })
        .where('id', 'in', group.ids.slice(i, i + 500))
        .execute();
    }
  }
}

/**
 * Counts a failed try of an unprocessed event and when the next may start; the reason shows while it
 * waits. In the row, so a restart or another replica goes on from here.
 */
export async function noteLineEventError(db: Db, id: number, o: { error: string; attempts: number; retryAt: Date }): Promise<void> {
  await db.updateTable('line_events').set({ error: o.error, attempts: o.attempts, available_at: o.retryAt }).where('id', '=', id).where('processed_at', 'is', null).execute();
}

/** Sets an event aside as failed, unless it was processed meanwhile (another replica applied it). */
export async function setLineEventAside(db: Db, clock: Clock, id: number, error: string): Promise<void> {
  await db.updateTable('line_events').set({ processed_at: clock.now(), outcome: 'failed', error }).where('id', '=', id).where('processed_at', 'is', null).execute();
}
