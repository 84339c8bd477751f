import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/database.ts';
import type { DeliveryKind } from '../db/tables.ts';
import { toDate } from '../db/row.ts';
import { PLAYABLE_TYPES } from '../recordings/parse.ts';
import { chunked } from '../db/transaction.ts';
import { LEFT_CLASS_VERSION } from './rules.ts';

/**
 * Deliveries made by an event rather than by the booking's times (a class called off, a recording
 * stored): one per booked student, due at once. At most one per booking and kind, whoever calls
 * and however often (replicas, retries): the (appointment, kind) constraint decides. The one
 * exception is a row of a class the booking has since left (`LEFT_CLASS_VERSION`, set by the outbox
 * when the booking moved): that message was about another class, so this one replaces it, re-armed
 * as a new message (a new retry key, attempts from 0, sent fields cleared). Returns the ids created
 * or re-armed.
 */
export async function oweToBookedStudents(
  db: Db,
  now: Date,
  o: { scheduleId: number; kind: Exclude<DeliveryKind, 'meeting_url' | 'feedback_url'>; notAfter: Date; version: number },
): Promise<number[]> {
  const bookings = await db.selectFrom('appointments').select('id').where('schedule_id', '=', o.scheduleId).where('cancelled', '=', false).execute();
  const ids: number[] = [];
  for (const chunk of chunked(bookings, 300)) {
    const left = db
      .selectFrom('deliveries')
      .select('id')
      .where('appointment_id', 'in', chunk.map((b) => b.id))
      .where('kind', '=', o.kind)
      .where('schedule_version', '=', LEFT_CLASS_VERSION);
    // A row re-armed below is a new message: an earlier multicast chunk resent leaves it out.
    await db.updateTable('line_multicast_members').set({ delivery_id: null }).where('delivery_id', 'in', left).execute();
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
      .onConflict((oc) =>
        oc
          .columns(['appointment_id', 'kind'])
          .doUpdateSet((eb) => ({
            state: 'pending' as const,
            due_at: eb.ref('excluded.due_at'),
            not_after: eb.ref('excluded.not_after'),
            available_at: eb.ref('excluded.available_at'),
            attempts: 0,
            retry_key: eb.ref('excluded.retry_key'),
            schedule_version: eb.ref('excluded.schedule_version'),
            lease_owner: null,
            lease_token: null,
            lease_expires_at: null,
            sent_at: null,
            line_request_id: null,
            last_error: sql<string>`case when deliveries.schedule_version = ${LEFT_CLASS_VERSION}
              then 'owed again, for the class the booking moved to (before: ' || deliveries.state || ', for the class it left)'
              else 'owed again, for the class called off again after it was rescheduled (before: ' || deliveries.state || ')' end`,
            updated_at: eb.ref('excluded.updated_at'),
          }))
          .where((eb) =>
            eb.or([
              eb('deliveries.schedule_version', '=', LEFT_CLASS_VERSION),
              // A class called off, rescheduled (a new version), then called off again: its students
              // are told again. Each call-off is one version, so repeating it (replicas) changes nothing.
              ...(o.kind === 'class_cancelled' ? [eb('deliveries.schedule_version', '<', eb.ref('excluded.schedule_version'))] : []),
            ]),
          ),
      )
      .returning('id')
      .execute();
    ids.push(...rows.map((r) => r.id));
  }
  return ids;
}

/** The replay link of a class whose recording was just stored, when replay links are on. */
export async function oweReplayLinks(db: Db, now: Date, o: { scheduleId: number; lateWindowMs: number }): Promise<number[]> {
  const schedule = await db.selectFrom('schedules').select(['version', 'cancelled', 'meeting_state']).where('id', '=', o.scheduleId).executeTakeFirst();
  // A class ended early as empty has nothing worth replaying.
  if (!schedule || Boolean(schedule.cancelled) || schedule.meeting_state === 'ended_empty') return [];
  // lateWindow runs from when the recording was stored, not from when the links are owed: the
  // monitor's catch-up may owe them nearly a lateWindow later. Capped at now: a stored_at ahead of
  // this process's clock (another replica's) must not stretch the window either.
  const stored = await db
    .selectFrom('recordings')
    .select((eb) => eb.fn.max('stored_at').as('at'))
    .where('schedule_id', '=', o.scheduleId)
    .where('state', '=', 'stored')
    .where('file_type', 'in', PLAYABLE_TYPES)
    .executeTakeFirst();
  const from = Math.min(stored?.at ? toDate(stored.at).getTime() : now.getTime(), now.getTime());
  return oweToBookedStudents(db, now, { scheduleId: o.scheduleId, kind: 'replay_url', notAfter: new Date(from + o.lateWindowMs), version: schedule.version });
}

/**
 * Classes whose playable recording was stored within `lateWindowMs` but whose booked students are
 * not all owed a replay link yet: the catch-up for a crash (or a failed write) between storing the
 * file and owing the links. A class still downloading its MP4 waits for it.
 */
export async function classesMissingReplayLinks(db: Db, now: Date, lateWindowMs: number, limit = 200): Promise<number[]> {
  const rows = await db
    .selectFrom('recordings')
    .innerJoin('schedules', 'schedules.id', 'recordings.schedule_id')
    .select('schedules.id')
    .distinct()
    .where('recordings.state', '=', 'stored')
    .where('recordings.file_type', 'in', PLAYABLE_TYPES)
    .where('recordings.stored_at', '>=', new Date(now.getTime() - lateWindowMs))
    .where('schedules.cancelled', '=', false)
    .where('schedules.meeting_state', '<>', 'ended_empty')
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('recordings as mp4').select('mp4.id').whereRef('mp4.schedule_id', '=', 'schedules.id').where('mp4.file_type', '=', 'MP4').where('mp4.state', 'in', ['pending', 'downloading']))),
    )
    .where(({ exists, selectFrom }) =>
      exists(
        selectFrom('appointments')
          .select('appointments.id')
          .whereRef('appointments.schedule_id', '=', 'schedules.id')
          .where('appointments.cancelled', '=', false)
          .where((eb) => eb('appointments.id', 'not in', eb.selectFrom('deliveries').select('deliveries.appointment_id').where('deliveries.kind', '=', 'replay_url'))),
      ),
    )
    .limit(limit)
    .execute();
  return rows.map((r) => r.id);
}
