import { describe, expect, it } from 'vitest';
import { computeCapacity } from '../../src/zoom/capacity.ts';
import type { MeetingSettings } from '../../src/zoom/allocation.ts';

const settings: MeetingSettings = { earlyJoinMinutes: 10, afterClassMinutes: 10, autoRecording: 'none', basic: { maxMinutes: 40, earlyJoinMinutes: 5, afterClassMinutes: 0 } };
const at = (iso: string, minutes: number, trial = false) => ({ startsAt: new Date(iso), endsAt: new Date(Date.parse(iso) + minutes * 60_000), trial });

describe('capacity view', () => {
  it('finds the hours that need more hosts, and how many', () => {
    const classes = [
      ...Array.from({ length: 4 }, () => at('2026-12-03T12:00:00Z', 50)), // Thursday 20:00 in Taipei
      at('2026-12-03T14:00:00Z', 50),
      at('2026-12-01T12:00:00Z', 50),
    ];
    const report = computeCapacity(classes, { licensed: 2, basic: 0 }, settings, {
      from: new Date('2026-12-01T00:00:00Z'),
      to: new Date('2026-12-08T00:00:00Z'),
      horizonMs: 48 * 3_600_000,
      hostWriteCap: 90,
    });
    expect(report.days).toHaveLength(7);
    const thursday = report.days.find((d) => d.day === '2026-12-03');
    expect(thursday).toMatchObject({ classes: 5, peakConcurrent: 4, peakAt: '2026-12-03T11:50:00.000Z' });
    expect(thursday?.shortfalls).toEqual([{ from: '2026-12-03T11:50:00.000Z', to: '2026-12-03T13:00:00.000Z', classes: 4, hosts: 2, missing: 2 }]);
    expect(report.days.find((d) => d.day === '2026-12-01')?.shortfalls).toEqual([]);
    // Creates happen about 48 h ahead: Thursday's classes are created on Tuesday. Each meeting is
    // closed after its class, a host write too: Tuesday closes its own class's meeting.
    expect(report.days.find((d) => d.day === '2026-12-01')).toMatchObject({ creates: 6, closes: 1, writes: 7, createBudget: 180 });
    expect(report.days.find((d) => d.day === '2026-12-03')).toMatchObject({ creates: 0, closes: 5, writes: 5 });
  });

  it('counts basic hosts only for the short trial classes they can take', () => {
    const classes = [at('2026-12-03T12:00:00Z', 30, true), at('2026-12-03T12:00:00Z', 30, true), at('2026-12-03T12:00:00Z', 50)];
    const base = { from: new Date('2026-12-03T00:00:00Z'), to: new Date('2026-12-04T00:00:00Z'), horizonMs: 0, hostWriteCap: 90 };
    expect(computeCapacity(classes, { licensed: 1, basic: 2 }, settings, base).days[0]?.shortfalls).toEqual([]);
    const tooFew = computeCapacity(classes, { licensed: 1, basic: 1 }, settings, base).days[0]?.shortfalls;
    expect(tooFew?.[0]).toMatchObject({ classes: 3, hosts: 2, missing: 1 });
  });
});
