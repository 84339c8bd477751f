import type { SecretBox } from '../secrets/secret-box.ts';
import { meetingMarker, type MeetingPlan } from './allocation.ts';
import type { CreateMeetingBody, ZoomClient } from './client.ts';
import type { PoolHost } from './hosts.ts';
import type { MeetingFields, MeetingWork } from './meeting-work.ts';
import type { ZoomCredentials } from './tokens.ts';
import type { ZoomMeeting } from './types.ts';

/** Runs a Zoom call for a host within that host's account concurrency limit. */
export type HostCall = <T>(host: PoolHost, fn: (client: ZoomClient, creds: ZoomCredentials) => Promise<T>) => Promise<T>;

/** The meeting topic of a class title (Zoom takes up to 200 characters). */
export function meetingTopic(title: string, topicTemplate: string): string {
  return topicTemplate.replaceAll('{title}', title).slice(0, 200);
}

/** The create body for a class on a host: UTC start, class + buffer, join before host, the marker. */
export function meetingBody(w: Pick<MeetingWork, 'title' | 'startsAt' | 'externalId'>, plan: MeetingPlan, topicTemplate: string): CreateMeetingBody {
  return {
    topic: meetingTopic(w.title, topicTemplate),
    type: 2,
    start_time: w.startsAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    duration: plan.durationMinutes,
    timezone: 'UTC',
    agenda: meetingMarker(w.externalId),
    settings: {
      join_before_host: true,
      jbh_time: plan.jbhTime,
      waiting_room: false,
      auto_recording: plan.autoRecording,
      approval_type: 2,
      meeting_authentication: false,
    },
  };
}

/**
 * The schedule columns for a meeting Zoom made (start URL encrypted: it starts the meeting as host),
 * stamped with the schedule version it was made for (null: unknown, so the claim re-checks it) and
 * the class title its topic was made from (another than the class's: the topic is PATCHed).
 */
export function savedMeeting(meeting: ZoomMeeting, hostId: number, version: number | null, title: string, box: SecretBox): MeetingFields {
  return {
    meeting_title: title,
    meeting_state: 'ready',
    meeting_account_id: hostId,
    meeting_id: meeting.id,
    meeting_uuid: meeting.uuid ?? null,
    join_url: meeting.join_url ?? null,
    start_url: meeting.start_url ? box.encrypt(meeting.start_url, 'schedules.start_url') : null,
    passcode: meeting.password ?? null,
    meeting_version: version,
    meeting_error: null,
    meeting_attempts: 0,
    meeting_retry_at: null,
    meeting_closed_at: null,
  };
}

/**
 * Zoom has no idempotency key for creates, so after an ambiguous failure or a crash we list the
 * host's meetings and adopt the one carrying this schedule's marker, if any, stamped with `version`:
 * the version it was created for, which may be older than the schedule's now. Its topic may be of an
 * older title too: then its title is recorded as unknown (''; no class title is empty), so it is PATCHed.
 */
export async function adoptOrNull(call: HostCall, host: PoolHost, w: MeetingWork, version: number | null, box: SecretBox, topicTemplate: string): Promise<MeetingFields | null> {
  const marker = meetingMarker(w.externalId);
  const meetings = await call(host, (c, creds) => c.listMeetings(creds, host.hostUserId, 'scheduled'));
  const found = meetings.find((m) => m.agenda.includes(marker));
  if (!found) return null;
  const full = await call(host, (c, creds) => c.getMeeting(creds, found.id));
  return savedMeeting(full, host.id, version, full.topic === meetingTopic(w.title, topicTemplate) ? w.title : '', box);
}
