/** Parses request bodies (unknown JSON) into typed inputs, refusing what Zoom refuses (SPEC limits). */
import { z } from 'zod';
import { type Reply, validationFailed } from './http.ts';
import { isValidTimeZone } from './time.ts';

const bool = z.boolean().optional();

/** Known settings are checked; unknown ones pass through and are echoed back, as Zoom stores them. */
const settingsSchema = z.looseObject({
  join_before_host: bool,
  // 15 is offered by the web UI but not by the create schema (doc §2): refused here until proven.
  jbh_time: z.union([z.literal(0), z.literal(5), z.literal(10)]).optional(),
  waiting_room: bool,
  auto_recording: z.enum(['local', 'cloud', 'none']).optional(),
  approval_type: z.union([z.literal(0), z.literal(1), z.literal(2)]).optional(),
  audio: z.enum(['both', 'telephony', 'voip']).optional(),
  host_video: bool,
  participant_video: bool,
  mute_upon_entry: bool,
  meeting_authentication: bool,
  use_pmi: bool,
  email_notification: bool,
  alternative_hosts: z.string().optional(),
});

export type SettingsInput = z.infer<typeof settingsSchema>;

const fields = {
  topic: z.string().max(200).optional(),
  start_time: z.string().optional(),
  duration: z.int().min(0).max(100_000).optional(),
  timezone: z.string().refine(isValidTimeZone).optional(),
  agenda: z.string().max(2000).optional(),
  password: z
    .string()
    .max(10)
    .regex(/^[a-zA-Z0-9@\-_*]*$/)
    .optional(),
  default_password: bool,
  pre_schedule: bool,
  schedule_for: z.string().optional(),
  settings: settingsSchema.optional(),
};

/** One schema for create and PATCH: PATCH takes the same fields, all optional. */
const meetingSchema = z.object({
  ...fields,
  type: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(8)]).optional(),
});

const statusSchema = z.object({ action: z.enum(['end', 'recover']) });

export type MeetingInput = z.infer<typeof meetingSchema>;
export type StatusAction = z.infer<typeof statusSchema>['action'];

export type Parsed<T> = { ok: true; value: T } | { ok: false; reply: Reply };

function parseWith<T>(schema: z.ZodType<T>, body: Record<string, unknown>): Parsed<T> {
  const result = schema.safeParse(body);
  if (result.success) return { ok: true, value: result.data };
  const errors = result.error.issues.map((issue) => ({ field: issue.path.map(String).join('.'), message: 'Invalid field.' }));
  return { ok: false, reply: validationFailed(errors) };
}

export const parseMeeting = (body: Record<string, unknown>): Parsed<MeetingInput> => parseWith(meetingSchema, body);
export const parseStatus = (body: Record<string, unknown>): Parsed<StatusAction> => {
  const parsed = parseWith(statusSchema, body);
  return parsed.ok ? { ok: true, value: parsed.value.action } : parsed;
};

/** Query parameters of `GET /users/{userId}/meetings`. */
export interface ListQuery {
  type: 'scheduled' | 'live' | 'upcoming' | 'upcoming_meetings' | 'previous_meetings';
  pageSize: number;
  nextPageToken: string | null;
}

const LIST_TYPES = ['scheduled', 'live', 'upcoming', 'upcoming_meetings', 'previous_meetings'] as const;

export function parseListQuery(query: URLSearchParams): Parsed<ListQuery> {
  const typeText = query.get('type') ?? 'scheduled';
  const type = LIST_TYPES.find((t) => t === typeText);
  if (!type) return { ok: false, reply: validationFailed([{ field: 'type', message: 'Invalid field.' }]) };
  const sizeText = query.get('page_size');
  const size = sizeText === null ? 30 : Number(sizeText);
  if (!Number.isInteger(size) || size < 1) {
    return { ok: false, reply: validationFailed([{ field: 'page_size', message: 'Invalid field.' }]) };
  }
  // Above the documented maximum, Zoom serves the maximum rather than failing.
  return { ok: true, value: { type, pageSize: Math.min(size, 300), nextPageToken: query.get('next_page_token') || null } };
}
