import type { DeliveryKind } from '../db/tables.ts';

/**
 * Pure rules for what a booking is owed and when. A delivery is due `meetingLeadMs` before the class
 * starts (the meeting link) and `feedbackBeforeEndMs` before it ends (the feedback link). Past
 * `notAfter` it is no longer worth sending: the meeting link until the class ends, the feedback
 * link until `feedbackLateWindowMs` after it ends.
 */
export interface DeliveryRules {
  meetingLeadMs: number;
  feedbackBeforeEndMs: number;
  feedbackLateWindowMs: number;
}

export const DEFAULT_RULES: DeliveryRules = { meetingLeadMs: 10 * 60_000, feedbackBeforeEndMs: 10 * 60_000, feedbackLateWindowMs: 24 * 3_600_000 };

/** The kinds planned from a booking's times; the others are created by events (a stored recording, a cancellation). */
export const TIMED_KINDS: readonly DeliveryKind[] = ['meeting_url', 'feedback_url'];

/** The class times a message is for: a message is owed once per occasion. */
export interface Occasion {
  startsAt: Date;
  endsAt: Date;
}

export interface PlannedDelivery {
  kind: DeliveryKind;
  dueAt: Date;
  notAfter: Date;
  occasion: Occasion;
}

export interface BookingFacts {
  startsAt: Date;
  endsAt: Date;
  hasFeedbackUrl: boolean;
}

export function plannedDeliveries(b: BookingFacts, rules: DeliveryRules): PlannedDelivery[] {
  const start = b.startsAt.getTime();
  const end = b.endsAt.getTime();
  const occasion = { startsAt: b.startsAt, endsAt: b.endsAt };
  const planned: PlannedDelivery[] = [{ kind: 'meeting_url', dueAt: new Date(start - rules.meetingLeadMs), notAfter: new Date(end), occasion }];
  if (b.hasFeedbackUrl) {
    // Never due before the class starts, however short the class.
    const due = Math.max(start, end - rules.feedbackBeforeEndMs);
    planned.push({ kind: 'feedback_url', dueAt: new Date(due), notAfter: new Date(end + rules.feedbackLateWindowMs), occasion });
  }
  return planned;
}

export type DeliveryChange =
  | { action: 'create'; planned: PlannedDelivery }
  /** `newKey`: tried already, and for another occasion now (class moved, booking moved): a new retry key, attempts from 0. */
  | { action: 'retime'; id: number; planned: PlannedDelivery; newKey: boolean }
  /** A message already settled (sent, expired, failed, skipped) is owed again: the class or booking moved, and it is still useful. */
  | { action: 'rearm'; id: number; planned: PlannedDelivery }
  | { action: 'cancel'; id: number; reason: string }
  /**
   * A message made by an event of the class the booking left (its cancellation notice, its replay
   * link): not this booking's any more. Marked as made for no version of its class
   * (`LEFT_CLASS_VERSION`), so a message the new class owes later replaces it; `cancel`: it was
   * still waiting, and is cancelled with `reason`.
   */
  | { action: 'leave'; id: number; reason: string; cancel: boolean }
  /**
   * A cancelled message owed again (the booking or class is back). Tried before in a multicast chunk
   * (`newKey`): a new key, since the chunk may have been resent to the others under its key, without
   * this student. Tried before by push, it keeps its own key: if LINE accepted that push (its answer
   * lost), the resend is a 409 and the student is not sent it twice.
   */
  | { action: 'revive'; id: number; planned: PlannedDelivery; newKey: boolean };

export interface ExistingDelivery {
  id: number;
  kind: DeliveryKind;
  state: string;
  dueAt: Date;
  notAfter: Date;
  scheduleVersion: number;
  /** Attempts made so far (a message never tried keeps its retry key whatever moves). */
  attempts: number;
  /** The class times it was made for; null when unknown (rows from before they were stored). */
  occasion: Occasion | null;
  /**
   * Whether it was sent as part of a multicast chunk (whose key is the chunk's); false: by push,
   * under its own key. Unknown (absent): taken as a chunk member.
   */
  inChunk?: boolean;
}

const SETTLED = new Set(['sent', 'expired', 'failed', 'skipped']);

/**
 * The `schedule_version` of a message made by an event of a class its booking has since left.
 * Versions start at 1, so it is never the version of a class; `oweToBookedStudents` replaces such a
 * row (one per booking and kind) when the booking's new class owes the same kind.
 */
export const LEFT_CLASS_VERSION = 0;

/**
 * What the outbox must change for one appointment so its deliveries match the booking: new rows,
 * moved due times, cancellations, and revivals of rows cancelled earlier when the booking comes back.
 * A message is owed once per occasion: when the class moves (its version changes) or the booking
 * moves to another class or student (`moved`), a message not yet settled gets a new retry key (its
 * earlier attempts were for the old occasion), and one already settled is owed again if the
 * occasion really changed: the booking moved and the new message is still useful (`now` before its
 * `notAfter`: a booking moved at 11:57 into a class starting 12:05 gets that class's link at once,
 * though it was due at 11:55), or its class times moved its due time and the new message is still
 * ahead (see `notYetStarted`). A change after the class started (times corrected after the fact)
 * re-sends nothing, nor does an edit that does not move the class or a due time moved by the
 * settings (lead times). A booking moved to another class (`rebooked`) leaves
 * the messages made by events of its old class behind (see `leave`).
 */
export function reconcileDeliveries(
  existing: readonly ExistingDelivery[],
  wanted: readonly PlannedDelivery[],
  active: { live: boolean; reason: string; bookingCancelled?: boolean; moved?: boolean; rebooked?: boolean },
  version: number,
  now: Date,
): DeliveryChange[] {
  const changes: DeliveryChange[] = [];
  if (active.rebooked) {
    // Its old class's cancellation notice or replay link would tell the student about a class they
    // are no longer in (the notice names the booking's class as it is now: the wrong one).
    const left = existing.filter((d) => !TIMED_KINDS.includes(d.kind) && (isWaiting(d) || d.scheduleVersion !== LEFT_CLASS_VERSION));
    for (const d of left) changes.push({ action: 'leave', id: d.id, reason: 'the booking moved to another class', cancel: isWaiting(d) });
    existing = existing.filter((d) => !left.includes(d));
  }
  if (!active.live) {
    for (const d of existing) {
      // A class called off still owes its students the notice that says so.
      const owed = d.kind === 'class_cancelled' && !active.bookingCancelled;
      if ((d.state === 'pending' || d.state === 'sending') && !owed) changes.push({ action: 'cancel', id: d.id, reason: active.reason });
    }
    return changes;
  }
  // Only the timed kinds follow the booking's times; replay links and notices are made by events.
  existing = existing.filter((d) => TIMED_KINDS.includes(d.kind));
  const byKind = new Map(existing.map((d) => [d.kind, d]));
  for (const planned of wanted) {
    const d = byKind.get(planned.kind);
    if (!d) {
      changes.push({ action: 'create', planned });
      continue;
    }
    const moved = active.moved === true || d.scheduleVersion !== version;
    const dueMoved = d.dueAt.getTime() !== planned.dueAt.getTime();
    if (d.state === 'cancelled') changes.push({ action: 'revive', id: d.id, planned, newKey: d.attempts > 0 && d.inChunk !== false });
    // A waiting row made before class times were stored gets them (without them it counts as drifted).
    else if ((d.state === 'pending' || d.state === 'sending') && (dueMoved || d.notAfter.getTime() !== planned.notAfter.getTime() || moved || (d.state === 'pending' && !d.occasion))) {
      changes.push({ action: 'retime', id: d.id, planned, newKey: moved && (d.attempts > 0 || d.state === 'sending') });
    } else if (SETTLED.has(d.state) && (active.moved === true ? stillUseful(planned, now) : dueMoved && occasionMoved(d, planned, version) && notYetStarted(planned, now))) {
      changes.push({ action: 'rearm', id: d.id, planned });
    }
  }
  // A kind no longer wanted (the feedback link was removed) is cancelled if not sent yet.
  for (const d of existing) {
    if (!wanted.some((p) => p.kind === d.kind) && (d.state === 'pending' || d.state === 'sending')) {
      changes.push({ action: 'cancel', id: d.id, reason: 'no longer wanted (feedback link removed)' });
    }
  }
  return changes;
}

/** A booking moved into a class: what that class's students are owed, it is owed too, while it helps. */
function stillUseful(planned: PlannedDelivery, now: Date): boolean {
  return planned.notAfter.getTime() > now.getTime();
}

/**
 * A class moved: its students hold the message of the old times, so the new one is sent while it is
 * still ahead of them (its due time, or the class's start for a link due already). An edit once the
 * class has started (times corrected after the fact) re-sends nothing.
 */
function notYetStarted(planned: PlannedDelivery, now: Date): boolean {
  return Math.max(planned.dueAt.getTime(), planned.occasion.startsAt.getTime()) > now.getTime();
}

function isWaiting(d: ExistingDelivery): boolean {
  return d.state === 'pending' || d.state === 'sending';
}

/** Whether the class times moved since the message was made (by version where they were not stored). */
function occasionMoved(d: ExistingDelivery, planned: PlannedDelivery, version: number): boolean {
  if (!d.occasion) return d.scheduleVersion !== version;
  return d.occasion.startsAt.getTime() !== planned.occasion.startsAt.getTime() || d.occasion.endsAt.getTime() !== planned.occasion.endsAt.getTime();
}
