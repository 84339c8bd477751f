import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.ts';
import type { DeliveryKind } from '../db/tables.ts';
import { chunked } from '../db/transaction.ts';

/**
 * Deliveries made by an event rather than by the booking's times (a class called off, a recording
 * stored): one per booked student, due at once. At most one per booking and kind, whoever calls
 * and however often (replicas, retries): the (appointment, kind) constraint decides. Returns the
 * ids created.
 */
export async function oweToBookedStudents(
  db: Db,
  now: Date,
  o: { scheduleId: number; kind: Exclude<DeliveryKind, 'meeting_url' | 'feedback_url'>; notAfter: Date; version: number },
): Promise<number[]> {
  const bookings = await db.selectFrom('appointments').select('id').where('schedule_id', '=', o.scheduleId).where('cancelled', '=', false).execute();
  const ids: number[] = [];
  for (const chunk of chunked(bookings, 300)) {
    const rows = await db
      .insertInto('deliveries')
      .values(
        chunk.map((b) => ({
          appointment_id: b.id,
          kind: o.kind,
          due_at: now,
          not_after: o.notAfter,
          available_at: now,
          state: 'pending' as const,
          attempts: 0,
          // Fixed before the first attempt, as for every delivery.
          retry_key: randomUUID(),
          schedule_version: o.version,
          created_at: now,
          updated_at: now,
        })),
      )
      .onConflict((oc) => oc.columns(['appointment_id', 'kind']).doNothing())
      .returning('id')
      .execute();
    ids.push(...rows.map((r) => r.id));
  }
  return ids;
}

/** The replay link of a class whose recording was just stored, when replay links are on. */
export async function oweReplayLinks(db: Db, now: Date, o: { scheduleId: number; lateWindowMs: number }): Promise<number[]> {
  const schedule = await db.selectFrom('schedules').select(['version', 'cancelled']).where('id', '=', o.scheduleId).executeTakeFirst();
  if (!schedule || Boolean(schedule.cancelled)) return [];
  return oweToBookedStudents(db, now, { scheduleId: o.scheduleId, kind: 'replay_url', notAfter: new Date(now.getTime() + o.lateWindowMs), version: schedule.version });
}
