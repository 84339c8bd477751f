import type { Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import { chunked } from '../db/transaction.ts';
import type { ClaimedDelivery } from './claim.ts';
import type { SendContext } from './recheck.ts';

/** Reads the current booking of each claimed delivery in one joined query per chunk. */
export async function loadSendContexts(db: Db, claimed: readonly ClaimedDelivery[]): Promise<Map<number, SendContext>> {
  const byAppointment = new Map<number, ClaimedDelivery[]>();
  for (const d of claimed) byAppointment.set(d.appointmentId, [...(byAppointment.get(d.appointmentId) ?? []), d]);
  const out = new Map<number, SendContext>();
  for (const chunk of chunked([...byAppointment.keys()])) {
    const rows = await db
      .selectFrom('appointments')
      .innerJoin('schedules', 'schedules.id', 'appointments.schedule_id')
      .innerJoin('members', 'members.id', 'appointments.member_id')
      .innerJoin('line_channels', 'line_channels.id', 'members.channel_id')
      .select([
        'appointments.id as appointment_id',
        'appointments.cancelled as appointment_cancelled',
        'schedules.id as schedule_id',
        'schedules.external_id',
        'schedules.title',
        'schedules.starts_at',
        'schedules.ends_at',
        'schedules.cancelled as schedule_cancelled',
        'schedules.version',
        'schedules.join_url',
        'schedules.feedback_url',
        'members.id as member_id',
        'members.line_user_id',
        'members.following',
        'line_channels.id as channel_id',
        'line_channels.enabled',
        'line_channels.paused_until',
      ])
      .where('appointments.id', 'in', chunk)
      .execute();
    for (const r of rows) {
      for (const d of byAppointment.get(r.appointment_id) ?? []) {
        out.set(d.id, {
          deliveryId: d.id,
          kind: d.kind,
          dueAt: d.dueAt,
          notAfter: d.notAfter,
          scheduleVersion: d.scheduleVersion,
          schedule: {
            id: r.schedule_id,
            externalId: r.external_id,
            title: r.title,
            startsAt: toDate(r.starts_at),
            endsAt: toDate(r.ends_at),
            cancelled: toBool(r.schedule_cancelled),
            version: r.version,
            joinUrl: r.join_url,
            feedbackUrl: r.feedback_url,
          },
          appointmentCancelled: toBool(r.appointment_cancelled),
          member: { id: r.member_id, lineUserId: r.line_user_id, following: r.following },
          channel: { id: r.channel_id, enabled: toBool(r.enabled), pausedUntil: toOptionalDate(r.paused_until) },
        });
      }
    }
  }
  return out;
}
