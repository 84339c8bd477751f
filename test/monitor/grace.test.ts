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
  const base: GraceFacts = { minimum: 3, booked: 5, attendance: 0, othersPresent: 0, webhookSeen: true, polled: null, dashboard: null, graceMinutes: 10, endEmpty: true };

  it.each<[string, Partial<GraceFacts>, { state: string; end: boolean; present: number | null }]>([
    ['nobody started the meeting (poll): ended', { polled: 'waiting', webhookSeen: false }, { state: 'ended_empty', end: true, present: 0 }],
    ['nobody started it, ending off: reported', { polled: 'waiting', endEmpty: false }, { state: 'not_started', end: false, present: 0 }],
    ['webhooks say nobody is there and no poll: ended', { polled: null }, { state: 'ended_empty', end: true, present: 0 }],
    ['live per Zoom but no join seen, no dashboard: never ended on that', { polled: 'started' }, { state: 'below_minimum', end: false, present: null }],
    ['live with only the host seen by the webhooks: ended', { polled: 'started', othersPresent: 1 }, { state: 'ended_empty', end: true, present: 0 }],
    ['live with only the host, but webhooks not seen for it: reported', { polled: 'started', othersPresent: 1, webhookSeen: false }, { state: 'below_minimum', end: false, present: null }],
    ['live, dashboard shows only the host: ended', { polled: 'started', dashboard: 0 }, { state: 'ended_empty', end: true, present: 0 }],
    ['a lost join corrected by the dashboard', { polled: 'started', attendance: 0, dashboard: 3 }, { state: 'ok', end: false, present: 3 }],
    ['below the minimum: reported', { polled: 'started', attendance: 2 }, { state: 'below_minimum', end: false, present: 2 }],
    ['at the minimum: left alone', { polled: 'started', attendance: 3 }, { state: 'ok', end: false, present: 3 }],
    ['no minimum, one student: ok', { minimum: 0, attendance: 1 }, { state: 'ok', end: false, present: 1 }],
    ['no evidence at all: skipped', { webhookSeen: false, polled: null }, { state: 'skipped', end: false, present: null }],
    ['meeting gone at Zoom: skipped', { polled: 'missing' }, { state: 'skipped', end: false, present: null }],
  ])('%s', (_name, facts, expected) => {
    expect(graceVerdict({ ...base, ...facts })).toMatchObject(expected);
  });

  it('says why in words an operator can act on', () => {
    expect(graceVerdict({ ...base, polled: 'started', attendance: 2 }).reason).toBe('2 students present 10 minutes after the start, below the minimum of 3 (5 booked)');
    expect(graceVerdict({ ...base, polled: 'waiting' }).reason).toBe('no student present 10 minutes after the start (5 booked): nobody started the meeting');
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
