import type { LiveStatus } from '../db/tables.ts';
import type { Participant } from '../zoom/webhook.ts';

/**
 * Pure attendance rules. Webhooks arrive late (Zoom retries after 5, 20, 60 minutes) and out of
 * order, so every rule compares event times instead of trusting arrival order: whatever order the
 * events come in, the state ends the same.
 */

export type ParticipantRole = 'student' | 'host' | 'staff';

/**
 * 'host' for the meeting's host (its Zoom user id is the meeting's host_id), 'staff' for any host
 * user of our pool (matched by Zoom user id or email, as `host_user_id` may hold either), else
 * 'student'. Only students count toward attendance.
 */
export function participantRole(participant: Pick<Participant, 'userIds' | 'email'>, hostId: string | null, poolHosts: ReadonlySet<string>): ParticipantRole {
  if (hostId !== null && participant.userIds.includes(hostId)) return 'host';
  const email = participant.email?.toLowerCase();
  if (participant.userIds.some((id) => poolHosts.has(id.toLowerCase())) || (email !== undefined && poolHosts.has(email))) return 'staff';
  return 'student';
}

/** Lower-cased pool host ids and emails, as `participantRole` looks them up. */
export function poolHostSet(hostUserIds: Iterable<string>): Set<string> {
  return new Set([...hostUserIds].map((id) => id.toLowerCase()));
}

/**
 * Whether a presence change at `at` replaces what is stored: only a newer one does. At the same
 * instant leaving wins, so a join and a leave stamped alike end as "left" in either order.
 */
export function presenceChangeApplies(stored: { present: boolean; changedAt: Date } | undefined, change: { present: boolean; at: Date }): boolean {
  if (!stored) return true;
  const a = change.at.getTime();
  const b = stored.changedAt.getTime();
  return a > b || (a === b && stored.present && !change.present);
}

/**
 * A join stamped before the instance's end that arrives after the end was applied must not make
 * the person present in a meeting that is over: it becomes a join followed by the end's leave.
 */
export function joinAfterEnd(joinAt: Date, instanceEndedAt: Date | null): Date | null {
  return instanceEndedAt !== null && instanceEndedAt.getTime() >= joinAt.getTime() ? instanceEndedAt : null;
}

/**
 * The live status from the latest start and end seen: a meeting is started when its latest start
 * is after its latest end (a type-2 meeting can start again after ending), ended when it ended at
 * or after its latest start. Both times only ever move forward, so the order of events is moot.
 */
export function liveStatusOf(startedAt: Date | null, endedAt: Date | null): LiveStatus | null {
  if (startedAt !== null && (endedAt === null || startedAt.getTime() > endedAt.getTime())) return 'started';
  if (endedAt !== null) return 'ended';
  return null;
}

/** The later of two instants (null counts as never). */
export function later(a: Date | null, b: Date | null): Date | null {
  if (a === null) return b;
  if (b === null) return a;
  return a.getTime() >= b.getTime() ? a : b;
}

/**
 * What a reconciliation poll's status does to the stored live state. The API reports an ended
 * meeting as `waiting` again, so `waiting` after `started` means the end was missed (→ ended), and
 * `waiting` never replaces `ended`. Null: nothing changes.
 */
export function polledLiveChange(current: LiveStatus | null, polled: LiveStatus): { status: LiveStatus; setStarted: boolean; setEnded: boolean } | null {
  if (polled === 'started') return current === 'started' ? null : { status: 'started', setStarted: true, setEnded: false };
  if (polled === 'ended') return current === 'ended' ? null : { status: 'ended', setStarted: false, setEnded: true };
  if (current === 'started') return { status: 'ended', setStarted: false, setEnded: true };
  if (current === 'ended' || current === 'waiting') return null;
  return { status: 'waiting', setStarted: false, setEnded: false };
}

/** The metric label of an outcome: its first word (`ignored: no schedule` → `ignored`). */
export function outcomeLabel(outcome: string): string {
  const word = /^[a-z_]+/.exec(outcome)?.[0] ?? 'other';
  return word.slice(0, 32);
}

const KNOWN_EVENTS = new Set(['meeting.started', 'meeting.ended', 'meeting.participant_joined', 'meeting.participant_left', 'recording.completed', 'endpoint.url_validation']);

/** The metric label of an event name: unknown names share one label (bounded cardinality). */
export function eventLabel(event: string): string {
  return KNOWN_EVENTS.has(event) ? event : 'other';
}
