import { describe, expect, it } from 'vitest';
import { interleaveByRate, planDispatch } from '../../src/deliveries/dispatch.ts';
import { recheck, type SendContext } from '../../src/deliveries/recheck.ts';
import { DEFAULT_RULES, LEFT_CLASS_VERSION, plannedDeliveries, reconcileDeliveries } from '../../src/deliveries/rules.ts';

const start = new Date('2026-12-01T12:00:00Z');
const end = new Date('2026-12-01T12:50:00Z');
const before = new Date('2026-12-01T09:00:00Z');
const after = new Date('2026-12-01T13:00:00Z');

describe('due times', () => {
  it('owes the meeting link 10 minutes before the start and the feedback link 10 minutes before the end', () => {
    expect(plannedDeliveries({ startsAt: start, endsAt: end, hasFeedbackUrl: true }, DEFAULT_RULES)).toEqual([
      { kind: 'meeting_url', dueAt: new Date('2026-12-01T11:50:00Z'), notAfter: end, occasion: { startsAt: start, endsAt: end } },
      { kind: 'feedback_url', dueAt: new Date('2026-12-01T12:40:00Z'), notAfter: new Date('2026-12-02T12:50:00Z'), occasion: { startsAt: start, endsAt: end } },
    ]);
    expect(plannedDeliveries({ startsAt: start, endsAt: end, hasFeedbackUrl: false }, DEFAULT_RULES)).toHaveLength(1);
    // A 5-minute class: the feedback link is never due before the class starts.
    const short = plannedDeliveries({ startsAt: start, endsAt: new Date(start.getTime() + 300_000), hasFeedbackUrl: true }, DEFAULT_RULES);
    expect(short[1]?.dueAt).toEqual(start);
  });

  it('re-times pending rows (a new key when the class moved), cancels and revives', () => {
    const wanted = plannedDeliveries({ startsAt: start, endsAt: end, hasFeedbackUrl: true }, DEFAULT_RULES);
    const earlier = { startsAt: new Date('2026-12-01T11:00:00Z'), endsAt: new Date('2026-12-01T11:50:00Z') };
    const meeting = { id: 1, kind: 'meeting_url' as const, state: 'pending', dueAt: new Date('2026-12-01T10:50:00Z'), notAfter: end, scheduleVersion: 1, attempts: 0, occasion: earlier };
    const feedback = { id: 2, kind: 'feedback_url' as const, state: 'sent', dueAt: new Date('2026-12-01T11:40:00Z'), notAfter: end, scheduleVersion: 1, attempts: 0, occasion: earlier };
    // A change after the fact (the class over at its new times too) re-sends nothing: the students
    // were sent the feedback link already, and times corrected afterwards must not send it again.
    expect(reconcileDeliveries([meeting, feedback], wanted, { live: true, reason: '' }, 2, after)).toEqual([{ action: 'retime', id: 1, planned: wanted[0], newKey: false }]);
    // A booking moved into that class, though, is owed its feedback link while it is useful.
    expect(reconcileDeliveries([meeting, feedback], wanted, { live: true, reason: '', moved: true }, 2, after)).toEqual([
      { action: 'retime', id: 1, planned: wanted[0], newKey: false },
      { action: 'rearm', id: 2, planned: wanted[1] },
    ]);
    expect(reconcileDeliveries([{ ...meeting, state: 'sent' }, feedback], wanted, { live: true, reason: '', moved: true }, 2, new Date('2026-12-03T00:00:00Z'))).toEqual([]);
    // Tried already (or in flight): the old key was for the old occasion.
    expect(reconcileDeliveries([{ ...meeting, attempts: 1 }], wanted.slice(0, 1), { live: true, reason: '' }, 2, after)).toEqual([{ action: 'retime', id: 1, planned: wanted[0], newKey: true }]);
    expect(reconcileDeliveries([{ ...meeting, state: 'sending', attempts: 0 }], wanted.slice(0, 1), { live: true, reason: '' }, 2, after)).toEqual([{ action: 'retime', id: 1, planned: wanted[0], newKey: true }]);
    expect(reconcileDeliveries([meeting, feedback], wanted, { live: false, reason: 'class cancelled' }, 2, before)).toEqual([{ action: 'cancel', id: 1, reason: 'class cancelled' }]);
    expect(reconcileDeliveries([{ ...meeting, state: 'cancelled' }], wanted, { live: true, reason: '' }, 2, before)).toEqual([
      { action: 'revive', id: 1, planned: wanted[0], newKey: false },
      { action: 'create', planned: wanted[1] },
    ]);
    // Revived after a try: a multicast chunk member gets a new key (the chunk may have gone out
    // without it); a push keeps its own (LINE may have taken it: the resend is then a 409).
    const tried = { ...meeting, state: 'cancelled', attempts: 1 };
    expect(reconcileDeliveries([{ ...tried, inChunk: true }], wanted.slice(0, 1), { live: true, reason: '' }, 2, before)).toEqual([{ action: 'revive', id: 1, planned: wanted[0], newKey: true }]);
    expect(reconcileDeliveries([tried], wanted.slice(0, 1), { live: true, reason: '' }, 2, before)).toEqual([{ action: 'revive', id: 1, planned: wanted[0], newKey: true }]);
    expect(reconcileDeliveries([{ ...tried, inChunk: false }], wanted.slice(0, 1), { live: true, reason: '' }, 2, before)).toEqual([{ action: 'revive', id: 1, planned: wanted[0], newKey: false }]);
    // A waiting row made before class times were stored: re-timed in place to record them, key kept.
    const planned = wanted[0] ?? { dueAt: start, notAfter: end };
    expect(reconcileDeliveries([{ ...meeting, dueAt: planned.dueAt, notAfter: planned.notAfter, scheduleVersion: 2, occasion: null }], wanted.slice(0, 1), { live: true, reason: '' }, 2, before)).toEqual([{ action: 'retime', id: 1, planned: wanted[0], newKey: false }]);
    // Lead times changed, same class (same version): the same message, its key kept.
    expect(reconcileDeliveries([meeting, { ...feedback, state: 'pending' }], wanted.slice(0, 1), { live: true, reason: '' }, 1, before)).toEqual([
      { action: 'retime', id: 1, planned: wanted[0], newKey: false },
      { action: 'cancel', id: 2, reason: 'no longer wanted (feedback link removed)' },
    ]);
  });

  it('owes a settled message again when the class moves ahead of it, or the booking moves', () => {
    const wanted = plannedDeliveries({ startsAt: start, endsAt: end, hasFeedbackUrl: false }, DEFAULT_RULES);
    const due = wanted[0]?.dueAt ?? start;
    const sentEarlier = { id: 1, kind: 'meeting_url' as const, state: 'sent', dueAt: new Date('2026-12-01T08:50:00Z'), notAfter: end, scheduleVersion: 1, attempts: 0, occasion: { startsAt: new Date('2026-12-01T09:00:00Z'), endsAt: new Date('2026-12-01T09:50:00Z') } };
    const sameClass = { startsAt: start, endsAt: end };
    // Moved from 09:00 to 12:00 after its link went out: owed again at the new time.
    expect(reconcileDeliveries([sentEarlier], wanted, { live: true, reason: '' }, 2, before)).toEqual([{ action: 'rearm', id: 1, planned: wanted[0] }]);
    for (const state of ['expired', 'failed', 'skipped']) expect(reconcileDeliveries([{ ...sentEarlier, state }], wanted, { live: true, reason: '' }, 2, before)).toHaveLength(1);
    // The same class, only edited (same version): nothing.
    expect(reconcileDeliveries([{ ...sentEarlier, dueAt: due, scheduleVersion: 2, occasion: sameClass }], wanted, { live: true, reason: '' }, 2, before)).toEqual([]);
    // Lead time shortened in the settings after the link went out (the rule now wants it at 11:55),
    // then the class edited without moving (a new version, e.g. the trial flag): nothing is owed,
    // the class did not move. Rows made before the class times were stored fall back to versions.
    const sentAt1150 = { ...sentEarlier, dueAt: due, occasion: sameClass };
    const shorterLead = plannedDeliveries({ startsAt: start, endsAt: end, hasFeedbackUrl: false }, { ...DEFAULT_RULES, meetingLeadMs: 5 * 60_000 });
    const at1152 = new Date('2026-12-01T11:52:00Z');
    expect(reconcileDeliveries([sentAt1150], shorterLead, { live: true, reason: '' }, 2, at1152)).toEqual([]);
    expect(reconcileDeliveries([{ ...sentAt1150, occasion: null }], shorterLead, { live: true, reason: '' }, 2, at1152)).toEqual([{ action: 'rearm', id: 1, planned: shorterLead[0] }]);
    // The class really moved (to 12:30) with the shorter lead: owed again at 12:25.
    const later = plannedDeliveries({ startsAt: new Date('2026-12-01T12:30:00Z'), endsAt: new Date('2026-12-01T13:20:00Z'), hasFeedbackUrl: false }, { ...DEFAULT_RULES, meetingLeadMs: 5 * 60_000 });
    expect(reconcileDeliveries([sentAt1150], later, { live: true, reason: '' }, 2, at1152)).toEqual([{ action: 'rearm', id: 1, planned: later[0] }]);
    // Moved, but the new time is past already: nothing.
    expect(reconcileDeliveries([sentEarlier], wanted, { live: true, reason: '' }, 2, after)).toEqual([]);
    // The booking moved to another class at the same time (same due, even the same version number): owed again.
    expect(reconcileDeliveries([{ ...sentEarlier, dueAt: due, scheduleVersion: 2, occasion: sameClass }], wanted, { live: true, reason: '', moved: true }, 2, before)).toEqual([{ action: 'rearm', id: 1, planned: wanted[0] }]);
    // A tried, pending message of a moved booking keeps its time but gets a new key.
    expect(reconcileDeliveries([{ ...sentEarlier, state: 'pending', attempts: 2, dueAt: due, scheduleVersion: 2 }], wanted, { live: true, reason: '', moved: true }, 2, before)).toEqual([{ action: 'retime', id: 1, planned: wanted[0], newKey: true }]);
  });
});

describe('a message owed again while it is still useful', () => {
  const c1 = { startsAt: new Date('2026-12-01T12:00:00Z'), endsAt: new Date('2026-12-01T12:50:00Z') };
  const c2 = plannedDeliveries({ startsAt: new Date('2026-12-01T12:05:00Z'), endsAt: new Date('2026-12-01T12:55:00Z'), hasFeedbackUrl: false }, DEFAULT_RULES);
  const sent = { id: 1, kind: 'meeting_url' as const, state: 'sent', dueAt: new Date('2026-12-01T11:50:00Z'), notAfter: c1.endsAt, scheduleVersion: 1, attempts: 1, occasion: c1 };
  const at1157 = new Date('2026-12-01T11:57:00Z');

  it('a booking moved (or its class moved) after the new link was due: owed at once, until its class ends (a booking) or starts (a class); never for an edit that does not move it', () => {
    // c1's link went out at 11:50; at 11:57 the booking moves to c2 (12:05, link due 11:55).
    expect(reconcileDeliveries([sent], c2, { live: true, reason: '', moved: true, rebooked: true }, 1, at1157)).toEqual([{ action: 'rearm', id: 1, planned: c2[0] }]);
    // The class itself moved from 12:00 to 12:05 at 11:57.
    expect(reconcileDeliveries([sent], c2, { live: true, reason: '' }, 2, at1157)).toEqual([{ action: 'rearm', id: 1, planned: c2[0] }]);
    // Every settled state, not only sent.
    for (const state of ['expired', 'failed', 'skipped']) expect(reconcileDeliveries([{ ...sent, state }], c2, { live: true, reason: '', moved: true }, 1, at1157)).toHaveLength(1);
    // Not once the class is over, nor for an edit that does not move the class.
    expect(reconcileDeliveries([sent], c2, { live: true, reason: '', moved: true }, 1, new Date('2026-12-01T12:55:00Z'))).toEqual([]);
    expect(reconcileDeliveries([sent], c2, { live: true, reason: '' }, 2, new Date('2026-12-01T12:06:00Z'))).toEqual([]);
    // The same class edited (a new version, the same times) at 11:57: its link is not sent again.
    const same = plannedDeliveries({ ...c1, hasFeedbackUrl: false }, DEFAULT_RULES);
    expect(reconcileDeliveries([sent], same, { live: true, reason: '' }, 2, at1157)).toEqual([]);
  });
});

describe('kinds made by events', () => {
  const wanted = plannedDeliveries({ startsAt: start, endsAt: end, hasFeedbackUrl: false }, DEFAULT_RULES);
  const notice = { id: 7, kind: 'class_cancelled' as const, state: 'pending', dueAt: start, notAfter: end, scheduleVersion: 2, attempts: 0, occasion: null };
  const replay = { id: 8, kind: 'replay_url' as const, state: 'pending', dueAt: end, notAfter: end, scheduleVersion: 1, attempts: 0, occasion: null };

  it('are neither re-timed nor cancelled as unwanted by the booking sync', () => {
    const meeting = { id: 1, kind: 'meeting_url' as const, state: 'sent', dueAt: wanted[0]?.dueAt ?? start, notAfter: end, scheduleVersion: 1, attempts: 0, occasion: { startsAt: start, endsAt: end } };
    expect(reconcileDeliveries([meeting, replay, notice], wanted, { live: true, reason: '' }, 1, before)).toEqual([]);
  });

  it('stay behind when the booking moves to another class: cancelled if waiting, and marked as of the class it left', () => {
    const sentReplay = { ...replay, state: 'sent' };
    const moved = { live: true, reason: '', moved: true, rebooked: true };
    expect(reconcileDeliveries([notice, sentReplay], wanted, moved, 1, before)).toEqual([
      { action: 'leave', id: 7, reason: 'the booking moved to another class', cancel: true },
      { action: 'leave', id: 8, reason: 'the booking moved to another class', cancel: false },
      { action: 'create', planned: wanted[0] },
    ]);
    // Into a class that is cancelled too: the old class's notice is not kept as owed.
    expect(reconcileDeliveries([notice], wanted, { ...moved, live: false, reason: 'class cancelled', bookingCancelled: false }, 1, before)).toEqual([
      { action: 'leave', id: 7, reason: 'the booking moved to another class', cancel: true },
    ]);
    // Left already (a second move): nothing more to do.
    expect(reconcileDeliveries([{ ...sentReplay, scheduleVersion: LEFT_CLASS_VERSION }, { ...notice, state: 'cancelled', scheduleVersion: LEFT_CLASS_VERSION }], wanted, moved, 1, before)).toEqual([{ action: 'create', planned: wanted[0] }]);
    // Moved to another student in the same class: the class's notice is still theirs.
    expect(reconcileDeliveries([notice], wanted, { live: true, reason: '', moved: true }, 1, before)).toEqual([{ action: 'create', planned: wanted[0] }]);
  });

  it('a cancelled class keeps its cancellation notice; a cancelled booking loses it', () => {
    expect(reconcileDeliveries([replay, notice], wanted, { live: false, reason: 'class cancelled', bookingCancelled: false }, 2, before)).toEqual([{ action: 'cancel', id: 8, reason: 'class cancelled' }]);
    expect(reconcileDeliveries([replay, notice], wanted, { live: false, reason: 'booking cancelled', bookingCancelled: true }, 2, before)).toEqual([
      { action: 'cancel', id: 8, reason: 'booking cancelled' },
      { action: 'cancel', id: 7, reason: 'booking cancelled' },
    ]);
  });
});

describe('the check before sending', () => {
  const base: SendContext = {
    deliveryId: 1,
    kind: 'meeting_url',
    dueAt: new Date('2026-12-01T11:50:00Z'),
    notAfter: end,
    scheduleVersion: 3,
    schedule: { id: 1, externalId: 'c1', title: 't', startsAt: start, endsAt: end, cancelled: false, version: 3, joinUrl: 'https://zoom.example/j/1', meetingVersion: 3, feedbackUrl: null },
    appointmentCancelled: false,
    member: { id: 1, lineUserId: 'U1', following: 'following' },
    channel: { id: 1, enabled: true, pausedUntil: null },
  };
  const now = new Date('2026-12-01T11:50:00Z');

  it.each([
    ['sends', base, { send: true, link: 'https://zoom.example/j/1' }],
    ['cancelled class', { ...base, schedule: { ...base.schedule, cancelled: true } }, { state: 'cancelled' }],
    ['cancelled booking', { ...base, appointmentCancelled: true }, { state: 'cancelled' }],
    ['moved class (newer version): a pause, never 0 ms (a row missed by the move would be claimed in a loop)', { ...base, schedule: { ...base.schedule, version: 4 } }, { state: 'pending', afterMs: 5_000, countAttempt: false, reason: expect.stringMatching(/version 3 .* at 4/) }],
    ['not due yet', { ...base, dueAt: new Date('2026-12-01T11:55:00Z') }, { state: 'pending', afterMs: 300_000 }],
    ['too late', { ...base, notAfter: new Date('2026-12-01T11:49:00Z') }, { state: 'expired' }],
    ['unfollowed student', { ...base, member: { ...base.member, following: 'unfollowed' as const } }, { state: 'skipped' }],
    ['disabled channel: held (with an alert), not skipped', { ...base, channel: { ...base.channel, enabled: false } }, { state: 'pending', countAttempt: false, reason: expect.stringMatching(/channel of this student is disabled/) }],
    ['paused channel', { ...base, channel: { ...base.channel, pausedUntil: new Date('2026-12-01T12:00:00Z') } }, { state: 'pending', afterMs: 600_000 }],
    ['no meeting link yet', { ...base, schedule: { ...base.schedule, joinUrl: null } }, { state: 'pending', afterMs: 60_000 }],
    ['a meeting not moved to the class time yet', { ...base, schedule: { ...base.schedule, meetingVersion: 2 } }, { state: 'pending', afterMs: 60_000, reason: expect.stringMatching(/not at its new time yet/) }],
    ['a meeting of unknown version', { ...base, schedule: { ...base.schedule, meetingVersion: null } }, { state: 'pending', afterMs: 60_000 }],
    ['no feedback link', { ...base, kind: 'feedback_url' as const }, { state: 'skipped' }],
  ])('%s', (_name, context, expected) => {
    const verdict = recheck(context, now);
    if ('send' in expected) expect(verdict).toEqual(expected);
    else expect(verdict.send ? null : verdict.completion).toMatchObject(expected);
  });

  it.each([
    ['a cancellation notice goes out for a cancelled class', { ...base, kind: 'class_cancelled' as const, schedule: { ...base.schedule, cancelled: true, version: 4 } }, { send: true, link: '' }],
    ['but not to a student whose own booking was cancelled', { ...base, kind: 'class_cancelled' as const, appointmentCancelled: true }, { state: 'cancelled' }],
    ['a replay link with a stored recording', { ...base, kind: 'replay_url' as const, replayLink: 'https://s.example/replay/t' }, { send: true, link: 'https://s.example/replay/t' }],
    ['a replay link without one', { ...base, kind: 'replay_url' as const, replayLink: null }, { state: 'skipped' }],
    ['a meeting link of a class ended early as empty', { ...base, endedEarly: 'class ended early: nobody came' }, { state: 'cancelled' }],
    ['never a cancellation notice for a class that is on (the booking moved to it, or it is back)', { ...base, kind: 'class_cancelled' as const }, { state: 'cancelled', reason: expect.stringMatching(/class c1 is not cancelled/) }],
  ])('%s', (_name, context, expected) => {
    const verdict = recheck(context, now);
    if ('send' in expected) expect(verdict).toEqual(expected);
    else expect(verdict.send ? null : verdict.completion).toMatchObject(expected);
  });

  it('marks a row made for another version of its class stale (the engine re-syncs its booking); a row fired early is only not due', () => {
    expect(recheck({ ...base, schedule: { ...base.schedule, version: 4 } }, now)).toMatchObject({ send: false, stale: true });
    expect(recheck({ ...base, dueAt: new Date('2026-12-01T11:55:00Z') }, now)).not.toHaveProperty('stale');
  });

  it('raises an alert when the meeting link is missing', () => {
    const verdict = recheck({ ...base, schedule: { ...base.schedule, joinUrl: null } }, now);
    expect(verdict.send ? undefined : verdict.alert).toEqual({ reason: 'no_meeting_link', message: expect.stringMatching(/no Zoom meeting link/) });
  });
});

describe('push or multicast', () => {
  const rates = { pushPerSecond: 2000, multicastPerSecond: 200, multicastSize: 500 };
  const group = (n: number) => ({ units: Array.from({ length: n }, (_, i) => i) });

  it('uses both endpoints so a peak drains at their combined rate', () => {
    // 4,000 classes of 5: all-push would take 10 s; all-multicast 20 s; mixed ~6.7 s.
    const plan = planDispatch(Array.from({ length: 4000 }, () => group(5)), rates);
    expect(plan.seconds).toBeGreaterThan(6.6);
    expect(plan.seconds).toBeLessThan(6.8);
    expect(plan.pushes.length + plan.multicasts.flat().length).toBe(20_000);
    expect(plan.multicasts.length).toBeGreaterThan(0);
  });

  it('sends a big class by multicast in chunks of 500 and a lone student by push', () => {
    const plan = planDispatch([group(1200), group(1)], rates);
    expect(plan.multicasts.map((m) => m.length)).toEqual([500, 500, 200]);
    expect(plan.pushes).toHaveLength(1);
  });
});

describe('the order requests start in', () => {
  it('merges lanes by when each item would go at its lane\'s rate', () => {
    const order = interleaveByRate([
      { rate: 1, items: ['m0', 'm1'] },
      { rate: 10, items: Array.from({ length: 12 }, (_, i) => `p${i}`) },
    ]);
    // The slow lane's second item comes after ten of the fast lane's, not after all of them.
    expect(order).toEqual(['m0', 'p0', 'p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', 'p9', 'm1', 'p10', 'p11']);
  });

  it('takes channels of the same rate in turn, never one channel\'s whole queue first', () => {
    const lanes = ['a', 'b', 'c'].map((ch) => ({ rate: 2000, items: Array.from({ length: 1000 }, (_, i) => `${ch}${i}`) }));
    const order = interleaveByRate(lanes);
    expect(order.slice(0, 6)).toEqual(['a0', 'b0', 'c0', 'a1', 'b1', 'c1']);
    expect(order).toHaveLength(3000);
    // In every window of 30 starts, each channel has 10: each bucket is drawn on at once.
    for (let i = 0; i + 30 <= order.length; i += 30) {
      const window = order.slice(i, i + 30);
      for (const ch of ['a', 'b', 'c']) expect(window.filter((x) => x.startsWith(ch))).toHaveLength(10);
    }
  });

  it('keeps every item once, each lane in its own order, and leaves a lane of rate 0 to the end', () => {
    const order = interleaveByRate([
      { rate: 0, items: ['z0', 'z1'] },
      { rate: 3, items: ['x0', 'x1', 'x2'] },
      { rate: 2, items: [] },
    ]);
    expect(order).toEqual(['z0', 'x0', 'x1', 'x2', 'z1']);
  });
});

