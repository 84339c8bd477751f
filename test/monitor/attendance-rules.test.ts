import { describe, expect, it } from 'vitest';
import { eventLabel, joinAfterEnd, later, liveStatusOf, outcomeLabel, participantRole, polledLiveChange, poolHostSet, presenceChangeApplies } from '../../src/monitor/attendance.ts';
import type { LiveStatus } from '../../src/db/tables.ts';

const t = (s: number): Date => new Date(Date.UTC(2026, 11, 1, 1, 0, s));

describe('participant roles', () => {
  const pool = poolHostSet(['user-T1', 't2@School.example', 'user-o1']);

  it('the meeting host is host, any pool host is staff, everyone else a student', () => {
    expect(participantRole({ userIds: ['user-h'], email: null }, 'user-h', pool)).toBe('host');
    expect(participantRole({ userIds: ['user-t1'], email: null }, 'user-h', pool)).toBe('staff');
    expect(participantRole({ userIds: [], email: 'T2@school.example' }, 'user-h', pool)).toBe('staff');
    expect(participantRole({ userIds: ['user-o1', 'user-o1'], email: 'x@y' }, null, pool)).toBe('staff');
    expect(participantRole({ userIds: [], email: 'alice@example.com' }, 'user-h', pool)).toBe('student');
    expect(participantRole({ userIds: ['zoom-alice'], email: null }, 'user-h', pool)).toBe('student');
    expect(participantRole({ userIds: [], email: null }, null, poolHostSet([]))).toBe('student');
  });

  it('host wins over staff (the host is one of our accounts too)', () => {
    expect(participantRole({ userIds: ['user-t1'], email: null }, 'user-t1', poolHostSet(['user-t1']))).toBe('host');
  });
});

describe('presence changes (late and out-of-order events converge)', () => {
  const joined = (s: number) => ({ present: true, at: t(s) });
  const left = (s: number) => ({ present: false, at: t(s) });
  const stored = (present: boolean, s: number) => ({ present, changedAt: t(s) });

  it('a new participant is always written', () => {
    expect(presenceChangeApplies(undefined, joined(0))).toBe(true);
    expect(presenceChangeApplies(undefined, left(0))).toBe(true);
  });

  it('only a newer change replaces the stored one', () => {
    expect(presenceChangeApplies(stored(true, 10), left(11))).toBe(true);
    expect(presenceChangeApplies(stored(false, 10), joined(11))).toBe(true);
    expect(presenceChangeApplies(stored(false, 10), joined(9))).toBe(false);
    expect(presenceChangeApplies(stored(true, 10), left(9))).toBe(false);
    expect(presenceChangeApplies(stored(true, 10), joined(9))).toBe(false);
  });

  it('at the same instant leaving wins, and a retry of the stored change is a no-op', () => {
    expect(presenceChangeApplies(stored(true, 10), left(10))).toBe(true);
    expect(presenceChangeApplies(stored(false, 10), joined(10))).toBe(false);
    expect(presenceChangeApplies(stored(true, 10), joined(10))).toBe(false);
    expect(presenceChangeApplies(stored(false, 10), left(10))).toBe(false);
  });

  /** Every order of a join/leave history ends in the state of its newest event. */
  it('every arrival order of a history ends the same', () => {
    const history = [joined(1), left(5), joined(7), left(7), joined(9), left(12)];
    const permutations = (xs: typeof history): (typeof history)[] =>
      xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
    const finals = new Set<string>();
    for (const order of permutations(history)) {
      let state: { present: boolean; changedAt: Date } | undefined;
      for (const change of order) {
        if (presenceChangeApplies(state, change)) state = { present: change.present, changedAt: change.at };
      }
      finals.add(`${state?.present}@${state?.changedAt.toISOString()}`);
    }
    expect([...finals]).toEqual([`false@${t(12).toISOString()}`]);
  });

  it('a join that arrives after its instance ended becomes a leave at the end', () => {
    expect(joinAfterEnd(t(10), null)).toBeNull();
    expect(joinAfterEnd(t(10), t(9))).toBeNull();
    expect(joinAfterEnd(t(10), t(10))).toEqual(t(10));
    expect(joinAfterEnd(t(10), t(20))).toEqual(t(20));
  });
});

describe('live status', () => {
  it('from the latest start and end, whatever order they arrived in', () => {
    expect(liveStatusOf(null, null)).toBeNull();
    expect(liveStatusOf(t(1), null)).toBe('started');
    expect(liveStatusOf(t(1), t(5))).toBe('ended');
    expect(liveStatusOf(t(6), t(5))).toBe('started'); // restarted after ending
    expect(liveStatusOf(t(5), t(5))).toBe('ended');
    expect(liveStatusOf(null, t(5))).toBe('ended');
    expect(later(null, null)).toBeNull();
    expect(later(t(1), null)).toEqual(t(1));
    expect(later(null, t(1))).toEqual(t(1));
    expect(later(t(1), t(2))).toEqual(t(2));
    expect(later(t(3), t(2))).toEqual(t(3));
  });

  it('a poll: waiting after started means the end was missed; waiting never replaces ended', () => {
    const cases: Array<[LiveStatus | null, LiveStatus, ReturnType<typeof polledLiveChange>]> = [
      [null, 'waiting', { status: 'waiting', setStarted: false, setEnded: false }],
      [null, 'started', { status: 'started', setStarted: true, setEnded: false }],
      [null, 'ended', { status: 'ended', setStarted: false, setEnded: true }],
      ['waiting', 'waiting', null],
      ['waiting', 'started', { status: 'started', setStarted: true, setEnded: false }],
      ['waiting', 'ended', { status: 'ended', setStarted: false, setEnded: true }],
      ['started', 'started', null],
      ['started', 'waiting', { status: 'ended', setStarted: false, setEnded: true }],
      ['started', 'ended', { status: 'ended', setStarted: false, setEnded: true }],
      ['ended', 'waiting', null],
      ['ended', 'ended', null],
      ['ended', 'started', { status: 'started', setStarted: true, setEnded: false }],
    ];
    for (const [current, polled, expected] of cases) expect(polledLiveChange(current, polled), `${current} + ${polled}`).toEqual(expected);
  });
});

describe('metric labels', () => {
  it('outcomes by first word, unknown events as other', () => {
    expect(outcomeLabel('applied')).toBe('applied');
    expect(outcomeLabel('ignored: no schedule for meeting 1')).toBe('ignored');
    expect(outcomeLabel('Stored')).toBe('other');
    expect(eventLabel('meeting.started')).toBe('meeting.started');
    expect(eventLabel('user.signed_in')).toBe('other');
  });
});
