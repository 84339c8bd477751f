import { describe, expect, it } from 'vitest';
import { checkSchedule, planScheduleUpdate, type ScheduleInput } from '../../src/schedules/schedule-rules.ts';

const base: ScheduleInput = {
  externalId: 'c',
  title: 't',
  startsAt: new Date('2026-12-01T12:00:00Z'),
  endsAt: new Date('2026-12-01T12:40:00Z'),
  trial: false,
  minParticipants: 0,
  feedbackUrl: null,
  cancelled: false,
};
const stored = { ...base, version: 4 };

describe('schedule rules', () => {
  it('accepts a normal class and names the field of a bad one', () => {
    expect(checkSchedule(base)).toEqual([]);
    expect(checkSchedule({ ...base, endsAt: base.startsAt }, 'items[3].')[0]?.field).toBe('items[3].endsAt');
    expect(checkSchedule({ ...base, endsAt: new Date('2026-12-02T12:00:01Z') })[0]?.message).toMatch(/24 hours/);
    expect(checkSchedule({ ...base, endsAt: new Date('2026-12-02T12:00:00Z') })).toEqual([]);
  });

  it.each([
    ['nothing', {}, 'unchanged', 4],
    ['the title', { title: 'x' }, 'updated', 4],
    // It decides the host plan (basic or licensed), so the meeting is looked at again.
    ['the trial flag', { trial: true }, 'updated', 5],
    ['the minimum', { minParticipants: 3 }, 'updated', 4],
    ['the feedback link', { feedbackUrl: 'https://f' }, 'updated', 4],
    ['the start', { startsAt: new Date('2026-12-01T11:59:00Z') }, 'updated', 5],
    ['the end', { endsAt: new Date('2026-12-01T12:41:00Z') }, 'updated', 5],
    ['cancellation', { cancelled: true }, 'updated', 5],
  ])('changing %s → %s, version %d', (_name, change, outcome, version) => {
    expect(planScheduleUpdate(stored, { ...base, ...change })).toEqual({ outcome, version });
  });

  it.each([
    ['an older revision', 7, 6, 'stale'],
    ['the same revision that would change it (a late retry after a write without one)', 7, 7, 'stale'],
    ['a newer revision', 7, 8, 'updated'],
    ['no revision stored (the platform sent none before)', null, 1, 'updated'],
    ['no revision sent (last write wins)', 7, undefined, 'updated'],
  ] as const)('a write with %s → %s', (_name, storedRevision, revision, outcome) => {
    const plan = planScheduleUpdate({ ...stored, revision: storedRevision }, { ...base, startsAt: new Date('2026-12-01T13:00:00Z'), revision });
    expect(plan.outcome).toBe(outcome);
    expect(plan.version).toBe(outcome === 'stale' ? 4 : 5);
  });

  it.each([
    ['the same revision again (a retry of what was applied)', 7, 7],
    ['an older revision', 7, 6],
  ] as const)('a write with %s that changes nothing → unchanged', (_name, storedRevision, revision) => {
    expect(planScheduleUpdate({ ...stored, revision: storedRevision }, { ...base, revision }).outcome).toBe('unchanged');
  });
});
