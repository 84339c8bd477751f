import type { Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import { chunked } from '../db/transaction.ts';
import type { ClaimedDelivery } from './claim.ts';
import type { SendContext } from './recheck.ts';

/** Turns a stored recording into the link a student can open (signed, expiring). */
export type ReplayLinker = (recordingId: number) => string;

/** Reads the current booking of each claimed delivery in one joined query per chunk. */
export async function loadSendContexts(db: Db, claimed: readonly ClaimedDelivery[], replayLink?: ReplayLinker): Promise<Map<number, SendContext>> {
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
        'schedules.meeting_state',
        'schedules.monitor_reason',
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
          endedEarly: r.meeting_state === 'ended_empty' ? `class ended early: ${r.monitor_reason ?? 'no student joined'}` : null,
        });
      }
    }
  }
  if (claimed.some((d) => d.kind === 'replay_url')) await addReplayLinks(db, out, replayLink);
  return out;
}

/** The link of each class's playable recording (MP4, else audio), for its replay_url deliveries. */
async function addReplayLinks(db: Db, contexts: Map<number, SendContext>, replayLink: ReplayLinker | undefined): Promise<void> {
  const wanted = [...contexts.values()].filter((c) => c.kind === 'replay_url');
  const best = new Map<number, { id: number; type: string }>();
  for (const chunk of chunked([...new Set(wanted.map((c) => c.schedule.id))])) {
    const rows = await db
      .selectFrom('recordings')
      .select(['id', 'schedule_id', 'file_type'])
      .where('schedule_id', 'in', chunk)
      .where('state', '=', 'stored')
      .where('file_type', 'in', ['MP4', 'M4A'])
      .orderBy('id')
      .execute();
    for (const r of rows) {
      if (r.schedule_id === null) continue;
      const current = best.get(r.schedule_id);
      if (!current || (current.type !== 'MP4' && r.file_type === 'MP4')) best.set(r.schedule_id, { id: r.id, type: r.file_type });
    }
  }
  for (const c of wanted) {
    const recording = best.get(c.schedule.id);
    c.replayLink = recording && replayLink ? replayLink(recording.id) : null;
  }
}
