import { z } from 'zod';
import { ZoomError } from './errors.ts';

/** What we keep of Zoom's meeting objects; everything else Zoom sends is ignored. */
const meetingSchema = z.object({
  id: z.union([z.number(), z.string()]).transform(String),
  uuid: z.string().optional(),
  host_id: z.string().optional(),
  topic: z.string().optional().default(''),
  agenda: z.string().optional().default(''),
  start_time: z.string().optional(),
  duration: z.number().optional(),
  join_url: z.string().optional(),
  start_url: z.string().optional(),
  password: z.string().optional(),
  status: z.string().optional(),
});
export type ZoomMeeting = z.output<typeof meetingSchema>;

const summarySchema = meetingSchema.pick({ id: true, uuid: true, topic: true, agenda: true, start_time: true, duration: true, join_url: true });
export type ZoomMeetingSummary = z.output<typeof summarySchema>;

const listSchema = z.object({
  meetings: z.array(summarySchema).default([]),
  next_page_token: z.string().optional(),
});

export function parseMeeting(body: unknown): ZoomMeeting {
  const parsed = meetingSchema.safeParse(body);
  if (!parsed.success) throw new ZoomError('final', `unexpected Zoom meeting body: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

export function parseMeetingList(body: unknown): { meetings: ZoomMeetingSummary[]; nextPageToken: string | undefined } {
  const parsed = listSchema.safeParse(body);
  if (!parsed.success) throw new ZoomError('final', `unexpected Zoom meeting list body: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return { meetings: parsed.data.meetings, nextPageToken: parsed.data.next_page_token || undefined };
}
