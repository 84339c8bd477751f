import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * The pure parts of Zoom webhook intake (zoom-api.md §6–§7): the signature and its timestamp, the
 * URL-validation answer, the envelope and the five events we act on, and the key that makes Zoom's
 * retries of one event collide. Zoom gives events no id, so the key is derived from the event.
 */

// ---- signature ---------------------------------------------------------------------------------

/** `v0=` + hex HMAC-SHA256(secret token, `v0:{timestamp}:{raw body}`), as Zoom signs. */
export function signZoomBody(secretToken: string, timestamp: string | number, rawBody: Buffer | string): string {
  const hmac = createHmac('sha256', secretToken);
  hmac.update(`v0:${timestamp}:`);
  hmac.update(rawBody);
  return `v0=${hmac.digest('hex')}`;
}

export type SignatureCheck = { ok: true; secretToken: string } | { ok: false; reason: 'missing' | 'stale' | 'mismatch' };

export interface SignatureInput {
  rawBody: Buffer;
  /** x-zm-request-timestamp (unix seconds). */
  timestamp: string | string[] | undefined;
  /** x-zm-signature. */
  signature: string | string[] | undefined;
  /** The account's current tokens: any may match (rotation). */
  secretTokens: readonly string[];
  now: Date;
  toleranceMs: number;
}

/**
 * Accepts a request signed with one of the tokens whose timestamp is within `toleranceMs` of now,
 * either way. A stale timestamp is a replay of a captured request (its signature is still valid).
 */
export function checkZoomSignature(input: SignatureInput): SignatureCheck {
  const { timestamp, signature } = input;
  if (typeof timestamp !== 'string' || typeof signature !== 'string' || !/^\d{1,12}$/.test(timestamp) || !signature.startsWith('v0=')) {
    return { ok: false, reason: 'missing' };
  }
  if (Math.abs(input.now.getTime() - Number(timestamp) * 1000) > input.toleranceMs) return { ok: false, reason: 'stale' };
  const given = Buffer.from(signature, 'utf8');
  for (const secretToken of input.secretTokens) {
    const expected = Buffer.from(signZoomBody(secretToken, timestamp, input.rawBody), 'utf8');
    if (expected.length === given.length && timingSafeEqual(expected, given)) return { ok: true, secretToken };
  }
  return { ok: false, reason: 'mismatch' };
}

/** The answer to `endpoint.url_validation`. */
export function urlValidationAnswer(secretToken: string, plainToken: string): { plainToken: string; encryptedToken: string } {
  return { plainToken, encryptedToken: createHmac('sha256', secretToken).update(plainToken).digest('hex') };
}

// ---- envelope and events -----------------------------------------------------------------------

/** Ids come as strings in meeting events and as numbers in recording.completed: both become strings. */
const zoomId = z.union([z.string().min(1), z.number().int().nonnegative()]).transform(String);
/** An optional text field: absent, null and "" all mean "not given". */
const text = z
  .union([z.string(), z.number()])
  .nullish()
  .transform((v) => (v === null || v === undefined || v === '' ? null : String(v)));

const envelope = z.looseObject({
  event: z.string().min(1).max(200),
  event_ts: z.number().int().nonnegative(),
  payload: z.looseObject({}),
  download_token: z.string().nullish(),
});

const meetingObject = z.looseObject({
  id: zoomId,
  uuid: z.string().min(1),
  host_id: text,
  topic: text,
  start_time: text,
  end_time: text,
});

const participantObject = z.looseObject({
  user_id: text,
  user_name: text,
  id: text,
  participant_uuid: text,
  participant_user_id: text,
  email: text,
  join_time: text,
  leave_time: text,
  leave_reason: text,
});

const meetingPayload = z.looseObject({ account_id: text, object: meetingObject });
const participantPayload = z.looseObject({ account_id: text, object: meetingObject.extend({ participant: participantObject }) });
const validationPayload = z.looseObject({ plainToken: z.string().min(1).max(1000) });

export interface MeetingRef {
  meetingId: string;
  meetingUuid: string;
  hostId: string | null;
}

export interface Participant {
  /** The most stable id Zoom gave (see `participantKey`). */
  key: string;
  name: string | null;
  email: string | null;
  /** The Zoom user ids that may identify an account of ours (`id`, `participant_user_id`). */
  userIds: string[];
  joinTime: string | null;
  leaveTime: string | null;
  leaveReason: string | null;
}

interface Base {
  /** event_ts. */
  at: Date;
  accountId: string | null;
}

export type ZoomWebhookEvent =
  | (Base & { event: 'endpoint.url_validation'; plainToken: string })
  | (Base & { event: 'meeting.started'; meeting: MeetingRef })
  | (Base & { event: 'meeting.ended'; meeting: MeetingRef })
  | (Base & { event: 'meeting.participant_joined' | 'meeting.participant_left'; meeting: MeetingRef; participant: Participant })
  | (Base & { event: 'recording.completed'; meeting: MeetingRef; object: unknown; downloadToken: string | null })
  | (Base & { event: 'other'; name: string; meeting: MeetingRef | null });

/** `body`: the whole envelope as decoded (stored verbatim). */
export type ParsedZoomWebhook = { ok: true; event: ZoomWebhookEvent; body: Record<string, unknown> } | { ok: false; problem: string };

/** The body as sent (bytes) → one typed event, or the first problem found (path and message). */
export function parseZoomWebhook(rawBody: Buffer | string): ParsedZoomWebhook {
  let json: unknown;
  try {
    json = JSON.parse(typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8'));
  } catch {
    return { ok: false, problem: 'the body is not valid JSON' };
  }
  return parseZoomEnvelope(json);
}

/** Parses an already decoded body (also used on stored payloads). */
export function parseZoomEnvelope(json: unknown): ParsedZoomWebhook {
  const outer = envelope.safeParse(json);
  if (!outer.success) return problem(outer.error);
  const { event, event_ts, payload } = outer.data;
  const base = { at: new Date(event_ts), accountId: typeof payload.account_id === 'string' && payload.account_id !== '' ? payload.account_id : null };
  const ok = (e: ZoomWebhookEvent): ParsedZoomWebhook => ({ ok: true, event: e, body: outer.data });

  switch (event) {
    case 'endpoint.url_validation': {
      const p = validationPayload.safeParse(payload);
      return p.success ? ok({ ...base, event, plainToken: p.data.plainToken }) : problem(p.error, 'payload');
    }
    case 'meeting.started':
    case 'meeting.ended': {
      const p = meetingPayload.safeParse(payload);
      return p.success ? ok({ ...base, event, meeting: meetingRef(p.data.object) }) : problem(p.error, 'payload');
    }
    case 'meeting.participant_joined':
    case 'meeting.participant_left': {
      const p = participantPayload.safeParse(payload);
      if (!p.success) return problem(p.error, 'payload');
      const participant = toParticipant(p.data.object.participant);
      if (!participant) return { ok: false, problem: 'payload.object.participant: no id, email or name to identify the participant' };
      return ok({ ...base, event, meeting: meetingRef(p.data.object), participant });
    }
    case 'recording.completed': {
      const p = meetingPayload.safeParse(payload);
      if (!p.success) return problem(p.error, 'payload');
      return ok({ ...base, event, meeting: meetingRef(p.data.object), object: payload.object, downloadToken: outer.data.download_token ?? null });
    }
    default: {
      // Kept and acknowledged; the meeting is noted when the object looks like one.
      const p = meetingPayload.safeParse(payload);
      return ok({ ...base, event: 'other', name: event, meeting: p.success ? meetingRef(p.data.object) : null });
    }
  }
}

function meetingRef(object: z.infer<typeof meetingObject>): MeetingRef {
  return { meetingId: object.id, meetingUuid: object.uuid, hostId: object.host_id };
}

function toParticipant(p: z.infer<typeof participantObject>): Participant | null {
  const key = participantKey(p);
  if (key === null) return null;
  return {
    key,
    name: p.user_name,
    email: p.email,
    userIds: [p.id, p.participant_user_id].filter((v): v is string => v !== null),
    joinTime: p.join_time,
    leaveTime: p.leave_time,
    leaveReason: p.leave_reason,
  };
}

/**
 * The most stable id of a participant: participant_user_id (a signed-in Zoom user), participant_uuid,
 * id (the Zoom user id, "" for guests), user_id (per join session), then email, then name.
 */
export function participantKey(p: { participant_user_id: string | null; participant_uuid: string | null; id: string | null; user_id: string | null; email: string | null; user_name: string | null }): string | null {
  if (p.participant_user_id) return `puid:${p.participant_user_id}`;
  if (p.participant_uuid) return `uuid:${p.participant_uuid}`;
  if (p.id) return `id:${p.id}`;
  if (p.user_id) return `uid:${p.user_id}`;
  if (p.email) return `email:${p.email.toLowerCase()}`;
  if (p.user_name) return `name:${p.user_name}`;
  return null;
}

function problem(error: z.ZodError, prefix?: string): { ok: false; problem: string } {
  const issue = error.issues[0];
  const path = [...(prefix ? [prefix] : []), ...(issue?.path ?? []).map(String)].join('.');
  return { ok: false, problem: `${path || 'body'}: ${issue?.message ?? 'invalid'}` };
}

// ---- dedupe ------------------------------------------------------------------------------------

/**
 * The stored event's unique key. Zoom retries an event with the same body (same event_ts), so a key
 * of the event name, event_ts, account and the identifying fields makes retries collide, while two
 * people joining in the same millisecond, or one person joining twice, stay distinct. Unknown events
 * are keyed by a hash of their payload.
 */
export function eventKey(accountId: string, parsed: { event: ZoomWebhookEvent; body: Record<string, unknown> }): string {
  const { event } = parsed;
  const ts = event.at.getTime();
  switch (event.event) {
    case 'meeting.participant_joined':
    case 'meeting.participant_left':
      return bounded(`${event.event}:${ts}:${accountId}:${event.meeting.meetingUuid}:${event.participant.key}:${event.participant.joinTime ?? event.participant.leaveTime ?? ''}`);
    case 'meeting.started':
    case 'meeting.ended':
    case 'recording.completed':
      return bounded(`${event.event}:${ts}:${accountId}:${event.meeting.meetingUuid}`);
    case 'endpoint.url_validation':
      return bounded(`${event.event}:${ts}:${accountId}:${event.plainToken}`);
    case 'other':
      return bounded(`${event.name}:${ts}:${accountId}:${createHash('sha256').update(stableJson(parsed.body.payload)).digest('hex').slice(0, 32)}`);
  }
}

/** Keys stay readable, but an absurdly long field is hashed rather than stored whole. */
function bounded(key: string): string {
  return key.length <= 400 ? key : `${key.slice(0, 200)}#${createHash('sha256').update(key).digest('hex')}`;
}

/** JSON with sorted keys: the same content gives the same text whatever the key order. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
