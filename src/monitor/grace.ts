import type { MonitorState } from '../db/tables.ts';

/**
 * The grace-time verdict on a started class (pure): `graceMinutes` after the start, is any student
 * there, and are there as many as the class minimum? Evidence comes from three places of different
 * strength: the participant webhooks (can be lost), the meeting status poll (certain about
 * "nobody started it", since a join-before-host meeting starts with its first participant), and the
 * dashboard's live participants (exact, Business plans only).
 */
export interface GraceFacts {
  minimum: number;
  booked: number;
  /** Students present by the webhooks. */
  attendance: number;
  /** The host or our own accounts present by the webhooks (they explain a live meeting without students). */
  othersPresent: number;
  /** Whether any webhook event was received for this meeting (webhooks are working for it). */
  webhookSeen: boolean;
  /** What GET /meetings/{id} said just now; null when not asked (reconcile off) or it failed. */
  polled: 'waiting' | 'started' | 'missing' | null;
  /** Students present by the dashboard API; null when not asked. */
  dashboard: number | null;
  graceMinutes: number;
  endEmpty: boolean;
}

export interface GraceVerdict {
  state: Exclude<MonitorState, 'pending'>;
  /** End the meeting, then delete it so a late join cannot reopen it. */
  end: boolean;
  reason: string;
  /** The best count of students present. */
  present: number | null;
}

export function graceVerdict(f: GraceFacts): GraceVerdict {
  const at = `${f.graceMinutes} minutes after the start`;
  if (f.polled === 'missing') return { state: 'skipped', end: false, reason: `the meeting no longer exists at Zoom (${at})`, present: null };
  const present = f.dashboard ?? (f.polled === 'waiting' ? 0 : f.webhookSeen || f.polled === 'started' ? f.attendance : null);
  if (present === null) {
    return { state: 'skipped', end: false, reason: `attendance unknown ${at}: no webhook event received and the status poll is off or failed`, present: null };
  }
  if (present === 0) {
    // Live, yet no student join seen and no dashboard to ask: unless the webhooks show the host or
    // our staff in it (which explains the start), a lost join is the likelier story, so it is
    // reported, never ended on that evidence.
    if (f.polled === 'started' && f.dashboard === null && !(f.webhookSeen && f.othersPresent > 0)) {
      return { state: 'below_minimum', end: false, reason: `Zoom reports the meeting live but no student join was received ${at} (lost webhook?); not ended`, present: null };
    }
    const reason = `no student present ${at} (${f.booked} booked)`;
    if (f.polled === 'waiting') return { state: f.endEmpty ? 'ended_empty' : 'not_started', end: f.endEmpty, reason: `${reason}: nobody started the meeting`, present: 0 };
    return { state: f.endEmpty ? 'ended_empty' : 'below_minimum', end: f.endEmpty, reason, present: 0 };
  }
  if (f.minimum > 0 && present < f.minimum) {
    return { state: 'below_minimum', end: false, reason: `${present} student${present === 1 ? '' : 's'} present ${at}, below the minimum of ${f.minimum} (${f.booked} booked)`, present };
  }
  return { state: 'ok', end: false, reason: `${present} student${present === 1 ? '' : 's'} present ${at}`, present };
}

/** What to do with Zoom's answers while ending an empty meeting (codes from zoom-api.md §6). */
export type EndStep = 'done' | 'retry' | 'lock-out' | 'fail';

/**
 * After `PUT status end`, DELETE stops a late student from reopening the meeting for 30 days.
 * 3002 "in progress": the end has not taken effect yet, try again shortly. 3007 "has ended": Zoom
 * will not delete it, so turn join-before-host off instead (students then wait for a host who
 * never comes). 404/3001: already gone.
 */
export function deleteStep(outcome: { ok: true } | { status?: number | undefined; code?: number | undefined }): EndStep {
  if ('ok' in outcome) return 'done';
  if (outcome.status === 404 || outcome.code === 3001) return 'done';
  if (outcome.code === 3002) return 'retry';
  if (outcome.code === 3007) return 'lock-out';
  return 'fail';
}
