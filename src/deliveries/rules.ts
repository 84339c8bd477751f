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
  /** A message already settled (sent, expired, failed, skipped) is owed again: the class or booking moved ahead of it. */
  | { action: 'rearm'; id: number; planned: PlannedDelivery }
  | { action: 'cancel'; id: number; reason: string }
  /**
   * A cancelled message owed again (the booking or class is back). Tried before (`newKey`): a new key,
   * since whatever went out under the old one (a multicast chunk resent to the others) left it out.
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
}

const SETTLED = new Set(['sent', 'expired', 'failed', 'skipped']);

/**
 * What the outbox must change for one appointment so its deliveries match the booking: new rows,
 * moved due times, cancellations, and revivals of rows cancelled earlier when the booking comes back.
 * A message is owed once per occasion: when the class moves (its version changes) or the booking
 * moves to another class or student (`moved`), a message not yet settled gets a new retry key (its
 * earlier attempts were for the old occasion), and one already settled is owed again if its class
 * times moved its due time and the new one is still ahead (`now`). A change after the fact (due
 * times in the past) re-sends nothing, nor does a due time moved by the settings (lead times).
 */
export function reconcileDeliveries(
  existing: readonly ExistingDelivery[],
  wanted: readonly PlannedDelivery[],
  active: { live: boolean; reason: string; bookingCancelled?: boolean; moved?: boolean },
  version: number,
  now: Date,
): DeliveryChange[] {
  const changes: DeliveryChange[] = [];
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
    if (d.state === 'cancelled') changes.push({ action: 'revive', id: d.id, planned, newKey: d.attempts > 0 });
    // A waiting row made before class times were stored gets them (without them it counts as drifted).
    else if ((d.state === 'pending' || d.state === 'sending') && (dueMoved || d.notAfter.getTime() !== planned.notAfter.getTime() || moved || (d.state === 'pending' && !d.occasion))) {
      changes.push({ action: 'retime', id: d.id, planned, newKey: moved && (d.attempts > 0 || d.state === 'sending') });
    } else if (SETTLED.has(d.state) && planned.dueAt.getTime() > now.getTime() && (active.moved === true || (dueMoved && occasionMoved(d, planned, version)))) {
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

/** Whether the class times moved since the message was made (by version where they were not stored). */
function occasionMoved(d: ExistingDelivery, planned: PlannedDelivery, version: number): boolean {
  if (!d.occasion) return d.scheduleVersion !== version;
  return d.occasion.startsAt.getTime() !== planned.occasion.startsAt.getTime() || d.occasion.endsAt.getTime() !== planned.occasion.endsAt.getTime();
}
