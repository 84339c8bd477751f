import { describe, expect, it } from 'vitest';
import { fitsBasic, planMeeting, rankHosts, type HostState, type MeetingSettings } from '../../src/zoom/allocation.ts';

const MIN = 60_000;
const START = Date.parse('2026-12-01T10:00:00Z');
const settings = (basic: Partial<MeetingSettings['basic']> = {}): MeetingSettings => ({
  earlyJoinMinutes: 10,
  afterClassMinutes: 10,
  autoRecording: 'none',
  basic: { maxMinutes: 40, earlyJoinMinutes: 5, afterClassMinutes: 0, ...basic },
});
const klass = (minutes: number, startOffset = 0) => ({ startsAt: new Date(START + startOffset * MIN), endsAt: new Date(START + (startOffset + minutes) * MIN), trial: true });
const at = (minutes: number): Date => new Date(START + minutes * MIN);

/** Zoom stops a basic meeting maxMinutes after its first join: a basic host is held until that cap. */
describe('basic host window', () => {
  // Every class length a basic host may take, with every early join and after-class buffer Zoom and the config allow.
  for (const early of [5, 10] as const) {
    for (const after of [0, 5]) {
      for (let minutes = 1; minutes <= 40; minutes++) {
        const s = settings({ earlyJoinMinutes: early, afterClassMinutes: after });
        const c = klass(minutes);
        if (!fitsBasic(c, s)) continue;
        it(`holds the host through every Zoom cap of a ${minutes}-minute class (early ${early}, after ${after})`, () => {
          const plan = planMeeting(c, 'basic', s);
          expect(plan.windowStart).toEqual(at(-early));
          // Covers the class and its buffer, a meeting first joined at the earliest, and one first joined at the class start.
          expect(plan.windowEnd.getTime()).toBeGreaterThanOrEqual(at(minutes + after).getTime());
          expect(plan.windowEnd.getTime()).toBeGreaterThanOrEqual(plan.windowStart.getTime() + 40 * MIN);
          expect(plan.windowEnd).toEqual(at(40));
          // The live span from the earliest join still fits the cap.
          expect(early + minutes + after).toBeLessThanOrEqual(40);
          expect(plan.durationMinutes).toBe(minutes + after);
        });
      }
    }
  }

  it('ends at the class end + buffer when that is later than the start + cap (a larger cap)', () => {
    const end = (basic: Partial<MeetingSettings['basic']>) => planMeeting(klass(30), 'basic', settings(basic)).windowEnd;
    expect(end({ maxMinutes: 20 })).toEqual(at(30));
    expect(end({ maxMinutes: 20, afterClassMinutes: 5 })).toEqual(at(35));
    expect(end({})).toEqual(at(40));
  });

  it('leaves licensed windows at early join .. class end + buffer', () => {
    const plan = planMeeting(klass(30), 'licensed', settings());
    expect(plan.windowStart).toEqual(at(-10));
    expect(plan.windowEnd).toEqual(at(40));
    expect(planMeeting(klass(60), 'licensed', settings()).windowEnd).toEqual(at(70));
  });

  it('refuses a class whose early join + class + buffer exceeds the cap', () => {
    expect(fitsBasic(klass(35), settings())).toBe(true);
    expect(fitsBasic(klass(36), settings())).toBe(false);
    expect(fitsBasic(klass(30), settings({ earlyJoinMinutes: 10, afterClassMinutes: 1 }))).toBe(false);
  });

  const basicHost = (busy: { start: Date; end: Date }[]): HostState => ({ id: 1, plan: 'basic', accountId: 'a', exhaustedUntil: null, lastAssignedAt: null, writesToday: 0, accountBudgetLeft: true, busy });

  it('does not put the next trial on a basic host before the previous one could be cut off by Zoom', () => {
    const s = settings();
    const first = planMeeting(klass(30), 'basic', s);
    const busy = [{ start: first.windowStart, end: first.windowEnd }];
    // 10:00-10:30 trial: first joined at 10:00 it may run to 10:40. A trial at 10:40 (window from 10:35) overlaps.
    expect(rankHosts(klass(30, 40), [basicHost(busy)], s, at(-600), 90).excluded.busy).toBe(1);
    expect(rankHosts(klass(30, 44), [basicHost(busy)], s, at(-600), 90).excluded.busy).toBe(1);
    // From 10:45 (window from 10:40) the host is free again.
    expect(rankHosts(klass(30, 45), [basicHost(busy)], s, at(-600), 90).hosts).toHaveLength(1);
  });
});
