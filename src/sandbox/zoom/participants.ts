/**
 * Who is in each live meeting. A join on a waiting (or ended, restartable) meeting starts it — by a participant
 * (join before host) or by the host — so the store's start rules (host busy, Basic 40-minute cap) still apply;
 * the last leave ends it; an end by the host makes everyone leave first (the store's beforeEnd hook).
 */
import { randomUUID } from 'node:crypto';
import type { Clock, TimerHandle } from '../../clock.ts';
import type { EndReason, MeetingStore } from './meeting-store.ts';
import type { ParticipantFacts } from './webhook-payloads.ts';
import type { MeetingRecord, ParticipantSnapshot, Person, ScriptStep } from './types.ts';

export interface Present extends ParticipantFacts {
  role: 'participant' | 'host';
  joinedAt: Date;
}

export interface Attendance {
  join(meetingId: number, person: Person): string;
  leave(meetingId: number, participantUuid: string): boolean;
  script(meetingId: number, steps: ScriptStep[]): void;
  participants(meetingId: number): ParticipantSnapshot[];
  present(meetingId: number): Present[];
  /** Everyone leaves (called by the store just before the meeting ends). */
  evict(m: MeetingRecord, reason: EndReason): void;
  /** Whether anyone joined this instance (auto recordings need attendance). */
  attended(instanceUuid: string): boolean;
  reset(): void;
}

export interface AttendanceDeps {
  clock: Clock;
  store: MeetingStore;
  joined(m: MeetingRecord, p: Present, at: Date): void;
  left(m: MeetingRecord, p: Present, at: Date, reason: string): void;
}

const REASONS: Record<EndReason | 'left', string> = {
  host: 'Host ended the meeting.',
  'time-limit': 'The meeting reached its time limit.',
  'everyone-left': 'left the meeting.',
  left: 'left the meeting.',
};

const leaveReason = (name: string, why: EndReason | 'left'): string => `${name} left the meeting. Reason : ${REASONS[why]}`;

export function createAttendance(deps: AttendanceDeps): Attendance {
  const { clock, store } = deps;
  const rooms = new Map<number, Present[]>();
  const attendedInstances = new Set<string>();
  const timers = new Set<TimerHandle>();
  // Zoom's per-meeting participant ids look like 16778240; any unique number will do.
  let nextMember = 16_778_240;

  const join = (meetingId: number, person: Person): string => {
    const m = store.find(meetingId);
    if (!m) throw new Error(`Zoom emulator: meeting ${meetingId} does not exist (deleted or expired)`);
    const role = person.role ?? 'participant';
    if (m.state !== 'started') {
      const result = store.start(m.id, role === 'host' ? 'host' : 'participant');
      // Zoom tells the person "the host has another meeting in progress" and lets nobody in.
      if (!result.started) throw new Error(`Zoom emulator: cannot join meeting ${meetingId}: ${result.reason}`);
    }
    const p: Present = {
      uuid: randomUUID().toUpperCase(),
      memberId: String(nextMember++),
      name: person.name,
      email: person.email ?? (role === 'host' ? m.hostEmail : ''),
      userId: person.userId ?? (role === 'host' ? m.hostId : ''),
      role,
      joinedAt: clock.now(),
    };
    const room = rooms.get(m.id) ?? [];
    room.push(p);
    rooms.set(m.id, room);
    attendedInstances.add(m.uuid);
    deps.joined(m, p, p.joinedAt);
    return p.uuid;
  };

  const leave = (meetingId: number, participantUuid: string): boolean => {
    const room = rooms.get(meetingId);
    const p = room?.find((x) => x.uuid === participantUuid);
    const m = store.all().find((x) => x.id === meetingId);
    if (!room || !p || !m) return false;
    room.splice(room.indexOf(p), 1);
    deps.left(m, p, clock.now(), leaveReason(p.name, 'left'));
    if (room.length === 0) {
      rooms.delete(meetingId);
      store.end(meetingId, 'everyone-left');
    }
    return true;
  };

  const runStep = (meetingId: number, step: ScriptStep): void => {
    try {
      if (step.join) join(meetingId, step.join);
      if (step.leave !== undefined) {
        const p = rooms.get(meetingId)?.find((x) => x.name === step.leave);
        if (p) leave(meetingId, p.uuid);
      }
    } catch {
      // A scripted person who cannot get in (meeting deleted, host busy) simply does not attend.
    }
  };

  return {
    join,
    leave,
    script(meetingId, steps) {
      const m = store.find(meetingId);
      if (!m) throw new Error(`Zoom emulator: meeting ${meetingId} does not exist (deleted or expired)`);
      const start = m.startTime.getTime();
      const ordered = steps.map((step, i) => ({ step, i })).sort((a, b) => a.step.atMinute - b.step.atMinute || a.i - b.i);
      for (const { step } of ordered) {
        const delay = start + step.atMinute * 60_000 - clock.now().getTime();
        // Steps already due happen now, in order (a 0 ms virtual timer would wait for the next advance).
        if (delay <= 0) {
          runStep(meetingId, step);
          continue;
        }
        const handle = clock.setTimeout(() => {
          timers.delete(handle);
          runStep(meetingId, step);
        }, delay);
        timers.add(handle);
      }
    },
    participants: (meetingId) =>
      (rooms.get(meetingId) ?? []).map((p) => ({ uuid: p.uuid, name: p.name, email: p.email, userId: p.userId, joinedAt: p.joinedAt.toISOString(), role: p.role })),
    present: (meetingId) => [...(rooms.get(meetingId) ?? [])],
    evict(m, reason) {
      const room = rooms.get(m.id);
      if (!room) return;
      rooms.delete(m.id);
      const at = clock.now();
      for (const p of room) deps.left(m, p, at, leaveReason(p.name, reason));
    },
    attended: (instanceUuid) => attendedInstances.has(instanceUuid),
    reset() {
      for (const t of timers) clock.clearTimeout(t);
      timers.clear();
      rooms.clear();
      attendedInstances.clear();
    },
  };
}
