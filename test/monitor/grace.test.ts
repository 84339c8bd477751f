import { describe, expect, it } from 'vitest';
import { deleteStep, graceVerdict, type GraceFacts } from '../../src/monitor/grace.ts';
import { headcountVerdict } from '../../src/monitor/headcount.ts';

describe('the booked headcount', () => {
  it.each([
    [0, 0, true],
    [5, 0, true],
    [3, 3, true],
    [4, 3, true],
    [2, 3, false],
    [0, 1, false],
  ])('%i booked, minimum %i: ok=%s', (booked, minimum, ok) => {
    const verdict = headcountVerdict(booked, minimum);
    expect(verdict.ok).toBe(ok);
    if (!verdict.ok) expect(verdict.reason).toBe(`${booked} booked, below the minimum of ${minimum}`);
  });
});

describe('the grace-time verdict', () => {
  const base: GraceFacts = { minimum: 3, booked: 5, attendance: 0, peak: 0, studentsSeen: 0, othersPresent: 0, webhookSeen: true, webhookLive: null, polled: null, dashboard: null, unappliedParticipantEvents: 0, graceMinutes: 10, endEmpty: true };

  it.each<[string, Partial<GraceFacts>, { state: string; end: boolean; present: number | null; recheck?: true }]>([
    ['nobody started the meeting (poll): ended', { polled: 'waiting', webhookSeen: false }, { state: 'ended_empty', end: true, present: 0 }],
    ['nobody started it, ending off: reported', { polled: 'waiting', endEmpty: false }, { state: 'not_started', end: false, present: 0 }],
    ['started and stopped with no student (poll + webhooks): ended', { polled: 'waiting', webhookLive: 'ended' }, { state: 'ended_empty', end: true, present: 0 }],
    ['live with only the host seen by the webhooks: ended', { polled: 'started', othersPresent: 1 }, { state: 'ended_empty', end: true, present: 0 }],
    ['the same with the poll off: ended on the webhooks alone', { polled: null, webhookLive: 'started', othersPresent: 1 }, { state: 'ended_empty', end: true, present: 0 }],
    ['live, dashboard shows only the host: ended', { polled: 'started', dashboard: 0 }, { state: 'ended_empty', end: true, present: 0 }],
    ['live per Zoom, no join seen, no dashboard: never ended on that', { polled: 'started' }, { state: 'below_minimum', end: false, present: null }],
    ['live per the webhooks, poll failed, no join seen: never ended', { polled: null, webhookLive: 'started' }, { state: 'below_minimum', end: false, present: null }],
    ['no events and no poll: unknown', { webhookSeen: false, polled: null }, { state: 'skipped', end: false, present: null }],
    ['webhooks seen but nothing says why it is empty: not ended', { polled: null }, { state: 'below_minimum', end: false, present: null }],
    ['live with only the host, but no webhook seen for it: reported', { polled: 'started', othersPresent: 1, webhookSeen: false }, { state: 'below_minimum', end: false, present: null }],
    ['a poll saying waiting never beats students seen by the webhooks', { polled: 'waiting', attendance: 2 }, { state: 'below_minimum', end: false, present: 2 }],
    ['a dashboard saying 0 never beats students seen by the webhooks', { polled: 'started', dashboard: 0, attendance: 3 }, { state: 'ok', end: false, present: 3 }],
    ['students came and left before the check: not ended (they may rejoin)', { polled: 'waiting', peak: 2 }, { state: 'below_minimum', end: false, present: 0 }],
    ['a lost join corrected by the dashboard', { polled: 'started', attendance: 0, dashboard: 3 }, { state: 'ok', end: false, present: 3 }],
    ['below the minimum: reported', { polled: 'started', attendance: 2 }, { state: 'below_minimum', end: false, present: 2 }],
    ['at the minimum: left alone', { polled: 'started', attendance: 3 }, { state: 'ok', end: false, present: 3 }],
    ['no minimum, one student: ok', { minimum: 0, attendance: 1 }, { state: 'ok', end: false, present: 1 }],
    ['meeting gone at Zoom: skipped', { polled: 'missing' }, { state: 'skipped', end: false, present: null }],
    ['a student seen only leaving (the join lost, or applied after the leave): came and left, not ended', { polled: 'waiting', webhookLive: 'ended', studentsSeen: 1 }, { state: 'below_minimum', end: false, present: 0 }],
    ['live with only the host seen, a participant event not applied yet: not ended, judged again', { polled: 'started', othersPresent: 1, unappliedParticipantEvents: 1 }, { state: 'below_minimum', end: false, present: null, recheck: true }],
    ['started and stopped, its join and leave not applied yet: not ended, judged again', { polled: 'waiting', webhookLive: 'started', unappliedParticipantEvents: 2 }, { state: 'below_minimum', end: false, present: null, recheck: true }],
    ['nobody has it open, ending off, a participant event not applied yet: not called "not started"', { polled: 'waiting', endEmpty: false, unappliedParticipantEvents: 1 }, { state: 'below_minimum', end: false, present: null, recheck: true }],
    ['dashboard lists no student, a participant event not applied yet: not ended, judged again', { polled: 'started', dashboard: 0, unappliedParticipantEvents: 1 }, { state: 'below_minimum', end: false, present: null, recheck: true }],
    ['students present: events not applied yet change nothing', { polled: 'started', attendance: 3, unappliedParticipantEvents: 1 }, { state: 'ok', end: false, present: 3 }],
    ['meeting gone at Zoom, events not applied yet: skipped', { polled: 'missing', unappliedParticipantEvents: 1 }, { state: 'skipped', end: false, present: null }],
  ])('%s', (_name, facts, expected) => {
    expect(graceVerdict({ ...base, ...facts })).toMatchObject(expected);
  });

  it('ends only when every source agrees no student is or was there', () => {
    // Exhaustive over the evidence: an end never happens with a student seen anywhere, nor while a
    // participant event is stored and not applied; a recheck only ever waits on such events.
    for (const attendance of [0, 1])
      {for (const peak of [0, 1])
        {for (const studentsSeen of [0, 1])
          {for (const dashboard of [null, 0, 1])
            {for (const polled of [null, 'waiting', 'started', 'missing'] as const)
              {for (const webhookLive of [null, 'started', 'ended'] as const)
                {for (const othersPresent of [0, 1])
                  {for (const webhookSeen of [false, true])
                    {for (const unappliedParticipantEvents of [0, 1])
                      {for (const endEmpty of [false, true]) {
                        const facts = { ...base, attendance, peak, studentsSeen, dashboard, polled, webhookLive, othersPresent, webhookSeen, unappliedParticipantEvents, endEmpty };
                        const v = graceVerdict(facts);
                        if (v.end) expect({ attendance, peak, studentsSeen, dashboard: dashboard ?? 0, unappliedParticipantEvents, endEmpty }).toEqual({ attendance: 0, peak: 0, studentsSeen: 0, dashboard: 0, unappliedParticipantEvents: 0, endEmpty: true });
                        if (v.end && polled !== 'waiting' && dashboard !== 0) expect(webhookSeen && othersPresent > 0).toBe(true);
                        const noStudent = attendance + peak + studentsSeen + (dashboard ?? 0) === 0;
                        expect({ facts, recheck: v.recheck === true }).toEqual({ facts, recheck: noStudent && polled !== 'missing' && unappliedParticipantEvents > 0 });
                        if (v.recheck) expect(v).toMatchObject({ state: 'below_minimum', end: false, present: null });
                      }}}}}}}}}}
  });

  it('says why in words an operator can act on', () => {
    expect(graceVerdict({ ...base, polled: 'started', attendance: 2 }).reason).toBe('2 students present 10 minutes after the start, below the minimum of 3 (5 booked)');
    expect(graceVerdict({ ...base, polled: 'waiting' }).reason).toBe('no student present 10 minutes after the start (5 booked): nobody started the meeting');
    expect(graceVerdict({ ...base, polled: 'started', othersPresent: 1, unappliedParticipantEvents: 2 }).reason).toBe(
      'no student seen 10 minutes after the start, but 2 participant events of this meeting are stored and not applied yet: a join may be among them; not ended',
    );
    expect(graceVerdict({ ...base, polled: 'waiting', studentsSeen: 1 }).reason).toBe('no student present 10 minutes after the start, though 1 attended earlier; not ended');
  });
});

describe('deleting an ended meeting', () => {
  it.each([
    [{ ok: true } as const, 'done'],
    [{ status: 404, code: 3001 }, 'done'],
    [{ status: 400, code: 3002 }, 'retry'],
    [{ status: 400, code: 3007 }, 'lock-out'],
    [{ status: 400, code: 3003 }, 'fail'],
    [{ status: 500 }, 'fail'],
  ])('%o → %s', (outcome, step) => {
    expect(deleteStep(outcome)).toBe(step);
  });
});
