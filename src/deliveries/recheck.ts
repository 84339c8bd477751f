import type { DeliveryKind, FollowingStatus } from '../db/tables.ts';
import type { Completion } from './claim.ts';

/** What is true now about a claimed delivery's booking, read right after the claim. */
export interface SendContext {
  deliveryId: number;
  kind: DeliveryKind;
  dueAt: Date;
  notAfter: Date;
  scheduleVersion: number;
  schedule: {
    id: number;
    externalId: string;
    title: string;
    startsAt: Date;
    endsAt: Date;
    cancelled: boolean;
    version: number;
    joinUrl: string | null;
    /** The schedule version the meeting was made or moved for: a link for another is not sent. */
    meetingVersion: number | null;
    feedbackUrl: string | null;
  };
  appointmentCancelled: boolean;
  member: { id: number; lineUserId: string; following: FollowingStatus };
  channel: { id: number; enabled: boolean; pausedUntil: Date | null };
  /** replay_url: the signed link to the class recording (null: none stored). */
  replayLink?: string | null;
  /** Set when the class was ended early as empty: its meeting and feedback links are void. */
  endedEarly?: string | null;
}

/** `stale`: the row was made for another version of its class; its booking's deliveries must be re-synced. */
/** Why an operator must act (the alert metric's `reason`), and what to tell them. */
export interface Alert {
  reason: 'no_meeting_link' | 'channel_disabled';
  message: string;
}

export type Verdict = { send: true; link: string } | { send: false; completion: Completion; alert?: Alert; stale?: true };

/** How long a row made for another version of its class waits if re-syncing it did not mend it. */
export const STALE_RETRY_MS = 5_000;

/** How long to wait before looking again for a meeting link that is not there yet. */
export const NO_LINK_RETRY_MS = 60_000;

/** How long a message of a disabled channel waits before it looks again. */
export const DISABLED_CHANNEL_RETRY_MS = 60_000;

/**
 * The last check before a message goes out, against the booking as it is now (the claim may be
 * minutes after the row was written): never for a cancelled class or booking, never to a student
 * who unfollowed, never a cancellation notice for a class that is on, never at a due time that has
 * since moved, never past its usefulness, and never without the link it exists to carry (that is an
 * alert, not a silent skip).
 */
export function recheck(c: SendContext, now: Date): Verdict {
  // The cancellation notice exists because the class is cancelled; everything else stops there.
  if (c.schedule.cancelled && c.kind !== 'class_cancelled') return { send: false, completion: { state: 'cancelled', reason: 'class cancelled' } };
  if (c.appointmentCancelled) return { send: false, completion: { state: 'cancelled', reason: 'booking cancelled' } };
  // The notice names the booking's class as it is now: for a class that is on (the booking moved
  // to another class, or the class is back) it would call off a class that is not called off.
  if (c.kind === 'class_cancelled' && !c.schedule.cancelled) {
    return { send: false, completion: { state: 'cancelled', reason: `class ${c.schedule.externalId} is not cancelled (the booking moved to it, or it is back)` } };
  }
  const timed = c.kind === 'meeting_url' || c.kind === 'feedback_url';
  if (timed && c.scheduleVersion !== c.schedule.version) {
    // Made for another version of the class: the class moved after the claim (the outbox has
    // re-timed the row already), or the row missed a move. The engine re-applies the booking's
    // rules to it; the pause keeps a row that cannot be mended from being claimed in a loop.
    return { send: false, completion: { state: 'pending', afterMs: Math.max(STALE_RETRY_MS, c.dueAt.getTime() - now.getTime()), reason: `made for version ${c.scheduleVersion} of the class, which is at ${c.schedule.version}`, countAttempt: false }, stale: true };
  }
  if (c.dueAt.getTime() > now.getTime()) {
    // Fired early (a wheel or a replica ahead of the database's clock): not yet.
    return { send: false, completion: { state: 'pending', afterMs: c.dueAt.getTime() - now.getTime(), reason: null, countAttempt: false } };
  }
  if (now.getTime() > c.notAfter.getTime()) return { send: false, completion: { state: 'expired', reason: `too late: useful until ${c.notAfter.toISOString()}` } };
  if (c.member.following === 'unfollowed') return { send: false, completion: { state: 'skipped', reason: 'the student unfollowed (blocked) the LINE account' } };
  if (!c.channel.enabled) {
    // Held, not skipped: a channel is disabled for a while (its token being rotated, say), and its
    // students' messages go out when it is enabled again, or expire with this reason if it is not.
    const reason = `the LINE channel of this student is disabled: their messages wait until it is enabled again (useful until ${c.notAfter.toISOString()})`;
    return { send: false, completion: { state: 'pending', afterMs: DISABLED_CHANNEL_RETRY_MS, reason, countAttempt: false }, alert: { reason: 'channel_disabled', message: reason } };
  }
  if (c.channel.pausedUntil && c.channel.pausedUntil.getTime() > now.getTime()) {
    return { send: false, completion: { state: 'pending', afterMs: c.channel.pausedUntil.getTime() - now.getTime(), reason: 'LINE channel paused', countAttempt: false } };
  }
  if (c.kind === 'class_cancelled') return { send: true, link: '' };
  if (c.kind === 'replay_url') {
    if (!c.replayLink) return { send: false, completion: { state: 'skipped', reason: 'the class has no stored recording to replay' } };
    return { send: true, link: c.replayLink };
  }
  if (c.endedEarly) return { send: false, completion: { state: 'cancelled', reason: c.endedEarly } };
  if (c.kind === 'feedback_url') return c.schedule.feedbackUrl ? { send: true, link: c.schedule.feedbackUrl } : { send: false, completion: { state: 'skipped', reason: 'the class has no feedback link' } };
  // A link to a meeting still at the class's old time (the provisioner has not moved it yet, or
  // will re-create it elsewhere) would be dead or wrong: wait for the meeting of this version.
  const link = c.schedule.meetingVersion === c.schedule.version ? c.schedule.joinUrl : null;
  if (!link) {
    const reason = c.schedule.joinUrl
      ? `the Zoom meeting of class ${c.schedule.externalId} is not at its new time yet (made for version ${c.schedule.meetingVersion ?? 'unknown'}, the class is at ${c.schedule.version})`
      : `no Zoom meeting link yet for class ${c.schedule.externalId} (meeting provisioning must have failed)`;
    return { send: false, completion: { state: 'pending', afterMs: NO_LINK_RETRY_MS, reason, countAttempt: false }, alert: { reason: 'no_meeting_link', message: reason } };
  }
  return { send: true, link };
}
