import type { Clock } from '../clock.ts';
import { type Db } from '../db/database.ts';
import { toDate } from '../db/row.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { eventKey, type ZoomWebhookEvent } from '../zoom/webhook.ts';
import { WEBHOOK_SECRET } from '../zoom/accounts.ts';
import { joinAfterEnd, later, liveStatusOf, participantRole } from './attendance.ts';
import { endInstance, lockScheduleByMeeting, recountAttendance, setLiveState, upsertParticipant } from './live.ts';

/**
 * Zoom webhook events in the database: stored once per event key at intake, read back for
 * processing, and applied one at a time to the schedule's live state and attendance (the processor
 * is in event-processor.ts).
 */
// ---- intake ------------------------------------------------------------------------------------


/** The decrypted webhook tokens of a Zoom account's pool rows; null when no row has that account id. */
export async function webhookSecretTokens(db: Db, box: SecretBox, accountId: string): Promise<string[] | null> {
  const rows = await db.selectFrom('zoom_accounts').select('webhook_secret_token').where('account_id', '=', accountId).execute();
  if (rows.length === 0) return null;
  const tokens = rows.flatMap((r) => (r.webhook_secret_token === null ? [] : [decryptToken(box, r.webhook_secret_token)]));
  return [...new Set(tokens)];
}

/**
 * Decryptions remembered per ciphertext: the rows are read on every request (a rotated or removed
 * token takes effect at once), but at peak rates decrypting each one every time is measurable.
 */
const decrypted = new WeakMap<SecretBox, Map<string, string>>();
function decryptToken(box: SecretBox, sealed: string): string {
  let memo = decrypted.get(box);
  if (!memo) decrypted.set(box, (memo = new Map()));
  let plain = memo.get(sealed);
  if (plain === undefined) {
    plain = box.decrypt(sealed, WEBHOOK_SECRET);
    if (memo.size > 1000) memo.clear();
    memo.set(sealed, plain);
  }
  return plain;
}

/** Stores a verified event unless one with its key is stored already (a Zoom retry). True when new. */
export async function insertMeetingEvent(db: Db, clock: Clock, accountId: string, parsed: { event: ZoomWebhookEvent; body: Record<string, unknown> }): Promise<boolean> {
  const { event } = parsed;
  const meeting = 'meeting' in event ? event.meeting : null;
  const rows = await db
    .insertInto('meeting_events')
    .values({
      account_id: accountId,
      event_key: eventKey(accountId, parsed),
      event: event.event === 'other' ? event.name : event.event,
      meeting_id: meeting?.meetingId ?? null,
      meeting_uuid: meeting?.meetingUuid ?? null,
      event_at: event.at,
      payload: JSON.stringify(parsed.body),
      received_at: clock.now(),
    })
    .onConflict((oc) => oc.column('event_key').doNothing())
    .returning('id')
    .execute();
  return rows.length > 0;
}

// ---- stored events -----------------------------------------------------------------------------

export interface StoredEvent {
  id: number;
  accountId: string;
  event: string;
  meetingId: string | null;
  /** As stored (JSON text on SQLite): parsed per event, so one bad row cannot stall the batch. */
  payload: unknown;
  attempts: number;
}

/** Events not processed yet and not waiting out a retry backoff, oldest event first. */
export async function pendingMeetingEvents(db: Db, now: Date, limit: number): Promise<StoredEvent[]> {
  const rows = await db
    .selectFrom('meeting_events')
    .select(['id', 'account_id', 'event', 'meeting_id', 'payload', 'attempts'])
    .where('processed_at', 'is', null)
    .where((eb) => eb.or([eb('retry_at', 'is', null), eb('retry_at', '<=', now)]))
    .orderBy('event_at')
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((r) => ({ id: r.id, accountId: r.account_id, event: r.event, meetingId: r.meeting_id, payload: r.payload, attempts: r.attempts }));
}

/** Marks an unprocessed event done; false when it was done already (another replica). */
export async function finishMeetingEvent(db: Db, now: Date, id: number, outcome: string, error: string | null = null): Promise<boolean> {
  const rows = await db.updateTable('meeting_events').set({ processed_at: now, outcome, error }).where('id', '=', id).where('processed_at', 'is', null).returning('id').execute();
  return rows.length > 0;
}

/**
 * Records a failed try of an unprocessed event: tried again from `retryAt`. Guarded by the attempts
 * read, so when two replicas fail the same try only one counts it. False when it was not recorded.
 */
export async function deferMeetingEvent(db: Db, id: number, seenAttempts: number, retryAt: Date, error: string): Promise<boolean> {
  const rows = await db
    .updateTable('meeting_events')
    .set({ attempts: seenAttempts + 1, retry_at: retryAt, error })
    .where('id', '=', id)
    .where('processed_at', 'is', null)
    .where('attempts', '=', seenAttempts)
    .returning('id')
    .execute();
  return rows.length > 0;
}

/**
 * The stored payload without Zoom's `download_token` (a bearer credential for the recording files),
 * or null when it has none. Processing needs it once; the recordings table keeps it encrypted.
 */
export function withoutDownloadToken(payload: unknown): string | null {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload) || !('download_token' in payload)) return null;
  const { download_token: _token, ...rest } = payload as Record<string, unknown>;
  return JSON.stringify(rest);
}

/** Replaces a processed event's payload with one without its download_token (an unprocessed one still needs it). */
export async function forgetDownloadToken(db: Db, id: number, payload: string): Promise<void> {
  await db.updateTable('meeting_events').set({ payload }).where('id', '=', id).where('processed_at', 'is not', null).execute();
}

/** The latest end stored for a meeting instance (processed or not). */
export async function instanceEndedAt(db: Db, meetingId: string, meetingUuid: string): Promise<Date | null> {
  const row = await db
    .selectFrom('meeting_events')
    .select((eb) => eb.fn.max('event_at').as('at'))
    .where('meeting_id', '=', meetingId)
    .where('meeting_uuid', '=', meetingUuid)
    .where('event', '=', 'meeting.ended')
    .executeTakeFirst();
  return row?.at === null || row?.at === undefined ? null : toDate(row.at);
}

// ---- applying one event ------------------------------------------------------------------------

/** Applies one parsed event inside the caller's transaction; returns the outcome to store. */
export async function applyMeetingEvent(db: Db, now: Date, event: ZoomWebhookEvent, hosts: ReadonlySet<string>): Promise<string> {
  if (event.event === 'other') return `ignored: ${event.name}`;
  if (event.event === 'endpoint.url_validation' || event.event === 'recording.completed') return `ignored: ${event.event}`;
  const schedule = await lockScheduleByMeeting(db, event.meeting.meetingId);
  if (!schedule) return `ignored: no schedule for meeting ${event.meeting.meetingId}`;
  const { meetingId, meetingUuid } = event.meeting;

  if (event.event === 'meeting.started' || event.event === 'meeting.ended') {
    const startedAt = event.event === 'meeting.started' ? later(schedule.liveStartedAt, event.at) : schedule.liveStartedAt;
    const endedAt = event.event === 'meeting.ended' ? later(schedule.liveEndedAt, event.at) : schedule.liveEndedAt;
    const status = liveStatusOf(startedAt, endedAt);
    const changed = status !== schedule.liveStatus || startedAt?.getTime() !== schedule.liveStartedAt?.getTime() || endedAt?.getTime() !== schedule.liveEndedAt?.getTime();
    if (changed) await setLiveState(db, now, schedule.id, { status, startedAt, endedAt });
    if (event.event === 'meeting.ended') {
      await endInstance(db, meetingUuid, event.at);
      await recountAttendance(db, now, schedule.id);
    }
    return changed ? 'applied' : 'stale';
  }

  const { participant } = event;
  const role = participantRole(participant, event.meeting.hostId, hosts);
  const base = { scheduleId: schedule.id, meetingId, meetingUuid, key: participant.key, name: participant.name, email: participant.email, role };
  let applied: boolean;
  if (event.event === 'meeting.participant_joined') {
    const endedAt = joinAfterEnd(event.at, await instanceEndedAt(db, meetingId, meetingUuid));
    const joinedAt = zoomTime(participant.joinTime) ?? event.at;
    applied = endedAt
      ? await upsertParticipant(db, { ...base, present: false, at: endedAt, joinedAt, leftAt: endedAt })
      : await upsertParticipant(db, { ...base, present: true, at: event.at, joinedAt, leftAt: null });
  } else {
    applied = await upsertParticipant(db, { ...base, present: false, at: event.at, leftAt: zoomTime(participant.leaveTime) ?? event.at });
  }
  if (!applied) return 'stale';
  await recountAttendance(db, now, schedule.id);
  return 'applied';
}

function zoomTime(value: string | null): Date | null {
  if (value === null) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}
