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
  /** Students present now, and the most at once, by the webhooks. */
  attendance: number;
  peak: number;
  /**
   * Students with a participant row in this meeting, present or not. `peak` misses one whose join
   * was lost, or applied after their leave (then stale), yet a leave proves they were there.
   */
  studentsSeen: number;
  /** The host or our own accounts present by the webhooks (they explain a live meeting without students). */
  othersPresent: number;
  /** Whether any webhook event was received for this meeting (webhooks work for it). */
  webhookSeen: boolean;
  /** The live status the webhooks set (meeting.started / meeting.ended). */
  webhookLive: 'waiting' | 'started' | 'ended' | null;
  /** What GET /meetings/{id} said just now; null when not asked (reconcile off) or it failed. */
  polled: 'waiting' | 'started' | 'missing' | null;
  /** Students present by the dashboard API; null when not asked. */
  dashboard: number | null;
  /**
   * Participant events of this meeting stored but not applied yet (a backlog, or a failed apply
   * waiting out its backoff): the facts above do not show them, and any may be a student's join.
   */
  unappliedParticipantEvents: number;
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
  /** Judge again shortly: stored events about to be applied may change the verdict. */
  recheck?: true;
}

/**
 * Ending a class is the one destructive act here, so it needs every source to agree that no
 * student is there and never was, plus positive evidence of why the meeting looks the way it does.
 * Any student seen anywhere wins: sources are only ever combined upwards. Participant events stored
 * but not applied yet are evidence unread, so they hold off an end until they are applied.
 */
export function graceVerdict(f: GraceFacts): GraceVerdict {
  const at = `${f.graceMinutes} minutes after the start`;
  if (f.polled === 'missing') return { state: 'skipped', end: false, reason: `the meeting no longer exists at Zoom (${at})`, present: null };
  const present = Math.max(f.attendance, f.dashboard ?? 0);
  if (present > 0) {
    const counted = `${present} student${present === 1 ? '' : 's'} present ${at}`;
    if (f.minimum > 0 && present < f.minimum) return { state: 'below_minimum', end: false, reason: `${counted}, below the minimum of ${f.minimum} (${f.booked} booked)`, present };
    return { state: 'ok', end: false, reason: counted, present };
  }
  const attended = Math.max(f.peak, f.studentsSeen);
  if (attended > 0) {
    // Students came and went: they may come back (a dropped connection); never lock them out.
    return { state: 'below_minimum', end: false, reason: `no student present ${at}, though ${attended} attended earlier; not ended`, present: 0 };
  }
  if (f.unappliedParticipantEvents > 0) {
    // Whatever explains the empty meeting below, a student's join (and leave) may be waiting here.
    const n = f.unappliedParticipantEvents;
    const events = n === 1 ? '1 participant event of this meeting is' : `${n} participant events of this meeting are`;
    return { state: 'below_minimum', end: false, reason: `no student seen ${at}, but ${events} stored and not applied yet: a join may be among them; not ended`, present: null, recheck: true };
  }
  const empty = `no student present ${at} (${f.booked} booked)`;
  // Why the meeting looks empty, when that is certain: nobody has it open (a join-before-host
  // meeting starts with its first participant), the dashboard counts no student, or the webhooks
  // show the host or our staff in it (which explains the start).
  let evidence: string | null = null;
  if (f.polled === 'waiting') evidence = f.webhookLive === 'started' || f.webhookLive === 'ended' ? 'the meeting is not running' : 'nobody started the meeting';
  else if (f.dashboard === 0) evidence = 'the dashboard lists no student';
  else if (f.webhookSeen && f.othersPresent > 0 && (f.polled === 'started' || f.webhookLive === 'started')) evidence = 'only the host or our staff joined';
  if (evidence === null) {
    if (f.polled === null && !f.webhookSeen) return { state: 'skipped', end: false, reason: `attendance unknown ${at}: no webhook event received and the status poll is off or failed`, present: null };
    return { state: 'below_minimum', end: false, reason: `no student join was received ${at}, but a lost webhook cannot be ruled out; not ended`, present: null };
  }
  if (!f.endEmpty) return { state: f.polled === 'waiting' ? 'not_started' : 'below_minimum', end: false, reason: `${empty}: ${evidence}`, present: 0 };
  return { state: 'ended_empty', end: true, reason: `${empty}: ${evidence}`, present: 0 };
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
