/**
 * `payload.object` of the webhook events (zoom-api.md §6, §8; Rivet's typings). Meeting events carry the id as a
 * string, recording.completed as a number, as Zoom does: receivers must parse both.
 */
import { zoomTime } from './time.ts';
import type { MeetingRecord } from './types.ts';
import { recordingsBody } from './views.ts';

/** The latest instance's fields every meeting event shares. */
function baseObject(m: MeetingRecord): Record<string, unknown> {
  const instance = m.instances.at(-1);
  return {
    id: String(m.id),
    uuid: instance?.uuid ?? m.uuid,
    host_id: m.hostId,
    topic: m.topic,
    type: m.type,
    start_time: zoomTime(instance?.startedAt ?? m.startTime),
    duration: m.duration,
    timezone: m.timezone,
  };
}

/** meeting.started / meeting.ended (with end_time once the instance has ended). */
export function meetingObject(m: MeetingRecord): Record<string, unknown> {
  const endedAt = m.instances.at(-1)?.endedAt;
  return { ...baseObject(m), ...(endedAt ? { end_time: zoomTime(endedAt) } : {}) };
}

export interface ParticipantFacts {
  uuid: string;
  /** Zoom's per-meeting participant id (`user_id`). */
  memberId: string;
  name: string;
  email: string;
  /** The Zoom user id; '' for guests. */
  userId: string;
}

/** meeting.participant_joined / _left. */
export function participantObject(
  m: MeetingRecord,
  p: ParticipantFacts,
  at: Date,
  left?: { reason: string },
): Record<string, unknown> {
  return {
    ...baseObject(m),
    participant: {
      user_id: p.memberId,
      user_name: p.name,
      id: p.userId,
      participant_uuid: p.uuid,
      ...(p.userId ? { participant_user_id: p.userId } : {}),
      email: p.email,
      ...(left ? { leave_time: zoomTime(at), leave_reason: left.reason } : { join_time: zoomTime(at) }),
    },
  };
}

/** recording.completed: the recordings API's body, with the numeric meeting id. */
export function recordingObject(baseUrl: string, m: MeetingRecord): Record<string, unknown> {
  const body = recordingsBody(baseUrl, m);
  return { ...body, id: m.id, host_email: m.hostEmail };
}
