import type { Db } from '../db/database.ts';
import { toDate } from '../db/row.ts';
import type { SweepCandidate } from './rows.ts';

/**
 * The meeting instances each class ran as, from the Zoom events stored for its meeting. Zoom gives
 * every start of a meeting id a new instance UUID, and each instance its own recordings: a meeting
 * tried out by its host before the class, or moved and started again, has the class's recordings
 * under a later UUID than the one it was created with. A class's instances are those with an event
 * (start, end, someone joining or leaving) in its host window, in the order they were first seen.
 * A class with none known gets no entry.
 */
export async function classInstances(db: Db, classes: readonly SweepCandidate[]): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  if (classes.length === 0) return out;
  const from = Math.min(...classes.map((c) => c.from.getTime()));
  const to = Math.max(...classes.map((c) => c.to.getTime()));
  // Each instance once per meeting with when it was first seen in the span: a class's joins and
  // leaves are many rows, its instances a few. The per-class window is applied below.
  const rows = await db
    .selectFrom('meeting_events')
    .select((eb) => ['meeting_id', 'meeting_uuid', eb.fn.min('event_at').as('first_at'), eb.fn.max('event_at').as('last_at')])
    .where('meeting_id', 'in', [...new Set(classes.map((c) => c.meetingId))])
    .where('meeting_uuid', 'is not', null)
    .where('event_at', '>=', new Date(from))
    .where('event_at', '<=', new Date(to))
    .groupBy(['meeting_id', 'meeting_uuid'])
    .execute();
  const byMeeting = new Map<string, { uuid: string; first: number; last: number }[]>();
  for (const r of rows) {
    if (r.meeting_id === null || r.meeting_uuid === null) continue;
    let list = byMeeting.get(r.meeting_id);
    if (!list) byMeeting.set(r.meeting_id, (list = []));
    list.push({ uuid: r.meeting_uuid, first: toDate(r.first_at).getTime(), last: toDate(r.last_at).getTime() });
  }
  for (const c of classes) {
    // An instance seen in the class's window: its events' span overlaps it (a meeting id is one class's).
    const seen = (byMeeting.get(c.meetingId) ?? []).filter((e) => e.first <= c.to.getTime() && e.last >= c.from.getTime()).sort((a, b) => a.first - b.first);
    if (seen.length) out.set(c.scheduleId, seen.map((e) => e.uuid));
  }
  return out;
}
