import type { Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import { chunked } from '../db/transaction.ts';
import { PLAYABLE_TYPES } from '../recordings/parse.ts';
import type { ClaimedDelivery } from './claim.ts';
import type { SendContext } from './recheck.ts';

/** Turns a stored recording into the link a student can open (signed, expiring). */
export type ReplayLinker = (recordingId: number) => string;

/**
 * Reads the current booking of each claimed delivery: its appointment, member (with channel) and
 * schedule, each by primary key. Three plain look-ups instead of one join: at the peak a join of
 * 500 appointments was planned as hash joins over whole tables (30 ms a page on PostgreSQL), while
 * key look-ups stay index scans whatever the statistics say.
 */
export async function loadSendContexts(db: Db, claimed: readonly ClaimedDelivery[], replayLink?: ReplayLinker): Promise<Map<number, SendContext>> {
  const appointments = new Map<number, { cancelled: boolean; scheduleId: number; memberId: number }>();
  for (const chunk of chunked([...new Set(claimed.map((d) => d.appointmentId))])) {
    const rows = await db.selectFrom('appointments').select(['id', 'cancelled', 'schedule_id', 'member_id']).where('id', 'in', chunk).execute();
    for (const r of rows) appointments.set(r.id, { cancelled: toBool(r.cancelled), scheduleId: r.schedule_id, memberId: r.member_id });
  }
  const members = new Map<number, { member: SendContext['member']; channel: SendContext['channel'] }>();
  for (const chunk of chunked([...new Set([...appointments.values()].map((a) => a.memberId))])) {
    const rows = await db
      .selectFrom('members')
      .innerJoin('line_channels', 'line_channels.id', 'members.channel_id')
      .select(['members.id', 'members.line_user_id', 'members.following', 'line_channels.id as channel_id', 'line_channels.enabled', 'line_channels.paused_until'])
      .where('members.id', 'in', chunk)
      .execute();
    for (const r of rows) {
      members.set(r.id, {
        member: { id: r.id, lineUserId: r.line_user_id, following: r.following },
        channel: { id: r.channel_id, enabled: toBool(r.enabled), pausedUntil: toOptionalDate(r.paused_until) },
      });
    }
  }
  const schedules = new Map<number, { schedule: SendContext['schedule']; endedEarly: string | null }>();
  for (const chunk of chunked([...new Set([...appointments.values()].map((a) => a.scheduleId))])) {
    const rows = await db
      .selectFrom('schedules')
      .select(['id', 'external_id', 'title', 'starts_at', 'ends_at', 'cancelled', 'version', 'join_url', 'meeting_version', 'feedback_url', 'meeting_state', 'monitor_reason'])
      .where('id', 'in', chunk)
      .execute();
    for (const r of rows) {
      schedules.set(r.id, {
        schedule: {
          id: r.id,
          externalId: r.external_id,
          title: r.title,
          startsAt: toDate(r.starts_at),
          endsAt: toDate(r.ends_at),
          cancelled: toBool(r.cancelled),
          version: r.version,
          joinUrl: r.join_url,
          meetingVersion: r.meeting_version,
          feedbackUrl: r.feedback_url,
        },
        endedEarly: r.meeting_state === 'ended_empty' ? `class ended early: ${r.monitor_reason ?? 'no student joined'}` : null,
      });
    }
  }
  const out = new Map<number, SendContext>();
  for (const d of claimed) {
    const appointment = appointments.get(d.appointmentId);
    const member = appointment && members.get(appointment.memberId);
    const schedule = appointment && schedules.get(appointment.scheduleId);
    if (!appointment || !member || !schedule) continue;
    out.set(d.id, {
      deliveryId: d.id,
      kind: d.kind,
      dueAt: d.dueAt,
      notAfter: d.notAfter,
      scheduleVersion: d.scheduleVersion,
      schedule: schedule.schedule,
      appointmentCancelled: appointment.cancelled,
      member: member.member,
      channel: member.channel,
      endedEarly: schedule.endedEarly,
    });
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
      .where('file_type', 'in', PLAYABLE_TYPES)
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
