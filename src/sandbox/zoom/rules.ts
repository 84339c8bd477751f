/**
 * What Zoom accepts but the service must avoid: two meetings of one host whose windows overlap (Zoom only
 * fails at join time, "host has another meeting in progress"), and Basic-host misuse. Recorded, never refused.
 */
import type { MeetingRecord, OverlapRecord, Violation, ViolationKind } from './types.ts';

const MINUTE = 60_000;

export interface MeetingWindow {
  start: number;
  end: number;
  /** When participants may first join (earlier than `start` with join-before-host). */
  openFrom: number;
}

/** `jbh_time: 0` means "any time before"; `anyTimeLeadMinutes` is the lead assumed for it. */
export function meetingWindow(m: Pick<MeetingRecord, 'startTime' | 'duration' | 'settings'>, anyTimeLeadMinutes: number): MeetingWindow {
  const start = m.startTime.getTime();
  const end = start + m.duration * MINUTE;
  const jbh = m.settings.join_before_host && !m.settings.waiting_room;
  const lead = jbh ? (m.settings.jbh_time === 0 ? anyTimeLeadMinutes : m.settings.jbh_time) : 0;
  return { start, end, openFrom: start - lead * MINUTE };
}

/** Back-to-back windows (one ends when the next starts) do not overlap. */
export function overlapKind(a: MeetingWindow, b: MeetingWindow): OverlapRecord['kind'] | null {
  if (a.start < b.end && b.start < a.end) return 'scheduled';
  if (a.openFrom < b.end && b.openFrom < a.end) return 'join-before-host';
  return null;
}

export interface Findings {
  /** Re-evaluates `m` against the host's other live (not deleted) meetings. */
  check(m: MeetingRecord, hostMeetings: ReadonlyArray<MeetingRecord>, at: Date): void;
  /** A deleted meeting no longer overlaps anything. */
  resolveFor(meetingId: number, at: Date): void;
  violate(kind: ViolationKind, m: MeetingRecord, detail: string, at: Date): void;
  overlaps(): OverlapRecord[];
  violations(): Violation[];
  reset(): void;
}

export function createFindings(anyTimeLeadMinutes: number): Findings {
  let overlaps: OverlapRecord[] = [];
  let violations: Violation[] = [];

  const activeFor = (a: number, b: number): OverlapRecord | undefined =>
    overlaps.find((o) => o.active && o.meetingIds[0] === Math.min(a, b) && o.meetingIds[1] === Math.max(a, b));

  return {
    check(m, hostMeetings, at) {
      const mine = meetingWindow(m, anyTimeLeadMinutes);
      for (const other of hostMeetings) {
        if (other.id === m.id || other.deletedAt) continue;
        const kind = overlapKind(mine, meetingWindow(other, anyTimeLeadMinutes));
        const existing = activeFor(m.id, other.id);
        if (existing && existing.kind !== kind) {
          existing.active = false;
          existing.resolvedAt = at.toISOString();
        }
        if (kind && existing?.kind !== kind) {
          overlaps.push({
            hostId: m.hostId,
            meetingIds: [Math.min(m.id, other.id), Math.max(m.id, other.id)],
            kind,
            detectedAt: at.toISOString(),
            active: true,
            resolvedAt: null,
          });
        }
      }
    },
    resolveFor(meetingId, at) {
      for (const o of overlaps) {
        if (o.active && o.meetingIds.includes(meetingId)) {
          o.active = false;
          o.resolvedAt = at.toISOString();
        }
      }
    },
    violate(kind, m, detail, at) {
      violations.push({ kind, meetingId: m.id, hostId: m.hostId, at: at.toISOString(), detail });
    },
    overlaps: () => overlaps.map((o) => ({ ...o, meetingIds: [o.meetingIds[0], o.meetingIds[1]] })),
    violations: () => violations.map((v) => ({ ...v })),
    reset() {
      overlaps = [];
      violations = [];
    },
  };
}
