import { z } from 'zod';

/** Request and response shapes of the admin API, shared by routes and the OpenAPI document. */

/**
 * Control characters (NUL, escapes, C1 codes) in free text: PostgreSQL refuses NUL in text outright
 * (a 500 instead of a 400), and none of them belongs in an id, a title or a link.
 */
const NO_CONTROL = /^\P{Cc}*$/u;
const NO_CONTROL_MESSAGE = 'must not contain control characters';

/** The longest external id; the router's limit on a path parameter is above it (see app.ts). */
export const EXTERNAL_ID_MAX = 200;

export const externalId = z
  .string()
  .regex(new RegExp(`^[^\\s/?#\\p{Cc}]{1,${EXTERNAL_ID_MAX}}$`, 'u'), `must be 1–${EXTERNAL_ID_MAX} characters without spaces, "/", "?", "#" or control characters`);

/** ISO-8601 with an explicit offset (`Z` or `+08:00`): a time without one is ambiguous. */
export const instant = z.iso
  .datetime({ offset: true, message: 'must be an ISO-8601 date-time with an offset, e.g. 2026-12-01T20:00:00+08:00' })
  .transform((s) => new Date(s));

export const lineUserId = z.string().regex(/^U[0-9a-f]{32}$/, 'must be a LINE user id (U followed by 32 hex digits)');

export const httpsUrl = z
  .url({ protocol: /^https$/, message: 'must be an https URL (LINE only opens https links)' })
  .max(1000, 'must be at most 1000 characters (LINE link limit)')
  .regex(NO_CONTROL, NO_CONTROL_MESSAGE);

export const slug = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label: lowercase letters, digits and "-", up to 63 characters');

export const label = z.string().trim().min(1).max(100).regex(NO_CONTROL, NO_CONTROL_MESSAGE);
/** Free text of the API (ids of other systems, titles): without control characters. */
const text = (max: number) => z.string().min(1).max(max).regex(NO_CONTROL, NO_CONTROL_MESSAGE);
const secret = z.string().min(1).max(4096);

export const errorBody = z.object({
  error: z.enum(['invalid', 'not_found', 'conflict', 'unauthorized', 'too_large', 'unavailable', 'internal']),
  message: z.string(),
  field: z.string().optional(),
});

export const idParams = z.strictObject({ id: z.coerce.number().int().positive() });

// Zoom accounts
export const zoomAccountCreate = z.strictObject({
  label,
  plan: z.enum(['licensed', 'basic']),
  accountId: text(100),
  clientId: text(200),
  clientSecret: secret,
  hostUserId: text(200).describe('Zoom user id or email of the host'),
  webhookSecretToken: secret.optional(),
});
export const zoomAccountPatch = z
  .strictObject({
    label: label.optional(),
    enabled: z.boolean().optional(),
    clientSecret: secret.optional(),
    webhookSecretToken: secret.nullable().optional(),
  })
  .refine((p) => Object.keys(p).length > 0, 'give at least one field to change');
export const zoomAccountView = z.object({
  id: z.number(),
  label: z.string(),
  plan: z.enum(['licensed', 'basic']),
  accountId: z.string(),
  clientId: z.string(),
  hostUserId: z.string(),
  hasWebhookSecretToken: z.boolean(),
  enabled: z.boolean(),
  exhaustedUntil: z.string().nullable(),
  refusedReason: z.string().nullable().describe('why Zoom refuses this host for good (user gone, not allowed to host, credentials refused); null once a call on it succeeds again'),
  refusedAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

// LINE channels
export const lineChannelCreate = z.strictObject({
  label,
  slug,
  channelId: z.string().regex(/^\d{1,20}$/, 'must be the numeric LINE channel id'),
  channelSecret: secret,
  channelAccessToken: secret,
  botUserId: lineUserId.optional(),
});
export const lineChannelPatch = z
  .strictObject({
    label: label.optional(),
    enabled: z.boolean().optional(),
    channelSecret: secret.optional(),
    channelAccessToken: secret.optional(),
    botUserId: lineUserId.nullable().optional(),
  })
  .refine((p) => Object.keys(p).length > 0, 'give at least one field to change');
export const lineChannelView = z.object({
  id: z.number(),
  label: z.string(),
  slug: z.string(),
  channelId: z.string(),
  botUserId: z.string().nullable(),
  enabled: z.boolean(),
  pausedUntil: z.string().nullable(),
  pauseReason: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

// Schedules
/** The platform's own revision of an item (a version, or an updated-at in ms): writes not newer that would change it are ignored. */
const revision = z
  .int()
  .min(0)
  .max(Number.MAX_SAFE_INTEGER)
  .optional()
  .describe("optional: the platform's revision of this item, growing with each change (a version, or an updated-at in ms). A write older than the one stored is ignored (outcome stale), so a delayed or retried request cannot undo a newer one; the same revision again changes nothing (a retry), and is stale if it would change the item (changed since by a write without a revision)");
export const scheduleBody = z.strictObject({
  title: z.string().trim().min(1).max(200).regex(NO_CONTROL, NO_CONTROL_MESSAGE),
  startsAt: instant,
  endsAt: instant,
  trial: z.boolean().default(false),
  minParticipants: z.int().min(0).max(10_000).default(0),
  feedbackUrl: httpsUrl.nullable().default(null),
  cancelled: z.boolean().default(false),
  revision: revision,
});
export const scheduleBulk = z.strictObject({
  items: z.array(scheduleBody.extend({ externalId })).min(1).max(5000),
});
const upsertOutcome = z.enum(['created', 'updated', 'unchanged', 'stale']).describe('stale: not newer than the revision stored and would change the item: ignored');
export const upsertResults = z.object({
  results: z.array(z.object({ externalId: z.string(), id: z.number(), outcome: upsertOutcome })),
});

const meetingView = z.object({
  state: z.string(),
  zoomAccountId: z.number().nullable(),
  meetingId: z.string().nullable(),
  joinUrl: z.string().nullable(),
  passcode: z.string().nullable(),
  version: z.number().nullable(),
  error: z.string().nullable(),
});
const monitoringView = z.object({
  liveStatus: z.string().nullable().describe('waiting | started | ended, as Zoom last reported it'),
  startedAt: z.string().nullable(),
  endedAt: z.string().nullable(),
  attendance: z.number().describe('students in the meeting now (host and our own accounts excluded)'),
  attendancePeak: z.number(),
  verdict: z.string().nullable().describe('attendance check at start + monitor.graceMinutes: ok | below_minimum | ending | ended_empty | not_started | skipped | pending'),
  reason: z.string().nullable(),
  headcount: z.object({ state: z.string().nullable().describe('ok | below_minimum | cancelled'), reason: z.string().nullable(), checkedBefore: z.string().nullable() }),
});
export const scheduleView = z.object({
  id: z.number(),
  externalId: z.string(),
  title: z.string(),
  startsAt: z.string(),
  endsAt: z.string(),
  trial: z.boolean(),
  minParticipants: z.number(),
  feedbackUrl: z.string().nullable(),
  cancelled: z.boolean(),
  version: z.number(),
  revision: z.number().nullable().describe("the platform's revision last applied (null: it sends none)"),
  meeting: meetingView,
  monitoring: monitoringView,
  createdAt: z.string(),
  updatedAt: z.string(),
});
export const scheduleSummary = scheduleView.extend({
  appointments: z.object({ booked: z.number(), cancelled: z.number() }),
  deliveries: z.record(z.string(), z.record(z.string(), z.number())),
});
const deliveryView = z.object({
  kind: z.string(),
  state: z.string(),
  dueAt: z.string(),
  attempts: z.number(),
  sentAt: z.string().nullable(),
  latenessMs: z.number().nullable(),
  lastError: z.string().nullable(),
});
const recordingView = z.object({
  id: z.number().describe('for POST /api/recordings/{id}/retry'),
  fileType: z.string(),
  state: z.string(),
  size: z.number().nullable(),
  sha256: z.string().nullable(),
  storedAt: z.string().nullable(),
  attempts: z.number(),
  lastError: z.string().nullable(),
});
export const scheduleDetail = scheduleView.extend({
  recordings: z.array(recordingView),
  appointments: z.array(
    z.object({
      externalId: z.string(),
      cancelled: z.boolean(),
      student: z.object({ channel: z.string(), lineUserId: z.string(), displayName: z.string().nullable(), following: z.string() }),
      deliveries: z.array(deliveryView),
    }),
  ),
});
export const scheduleListQuery = z.strictObject({
  from: instant.optional(),
  to: instant.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().optional().describe('nextCursor of the previous page'),
});

// Appointments
export const appointmentBody = z.strictObject({
  scheduleExternalId: externalId,
  student: z.strictObject({ channel: slug.describe('slug of the LINE channel the student follows'), lineUserId }),
  cancelled: z.boolean().default(false),
  revision: revision,
});
export const appointmentBulk = z.strictObject({
  items: z.array(appointmentBody.extend({ externalId })).min(1).max(5000),
});
