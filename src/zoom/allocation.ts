/**
 * Pure host assignment: which pool hosts may take a class, in which order. The DB transaction in
 * `hosts.ts` re-checks the choice under a lock; this module only decides.
 */
import type { ZoomPlan } from './accounts.ts';

export interface MeetingSettings {
  earlyJoinMinutes: 5 | 10;
  afterClassMinutes: number;
  autoRecording: 'none' | 'local' | 'cloud';
  basic: { maxMinutes: number; earlyJoinMinutes: 5 | 10; afterClassMinutes: number };
}

export interface ClassTime {
  startsAt: Date;
  endsAt: Date;
  trial: boolean;
}

/** What a meeting on a host of `plan` looks like for a class: Zoom duration, jbh_time, host window. */
export interface MeetingPlan {
  plan: ZoomPlan;
  durationMinutes: number;
  jbhTime: 5 | 10;
  autoRecording: 'none' | 'local' | 'cloud';
  windowStart: Date;
  windowEnd: Date;
}

const MINUTE = 60_000;

export function classMinutes(c: ClassTime): number {
  return Math.ceil((c.endsAt.getTime() - c.startsAt.getTime()) / MINUTE);
}

export function planMeeting(c: ClassTime, plan: ZoomPlan, s: MeetingSettings): MeetingPlan {
  const early = plan === 'basic' ? s.basic.earlyJoinMinutes : s.earlyJoinMinutes;
  const after = plan === 'basic' ? s.basic.afterClassMinutes : s.afterClassMinutes;
  return {
    plan,
    durationMinutes: classMinutes(c) + after,
    jbhTime: early,
    // Basic hosts cannot record to the cloud.
    autoRecording: plan === 'basic' && s.autoRecording === 'cloud' ? 'none' : s.autoRecording,
    windowStart: new Date(c.startsAt.getTime() - early * MINUTE),
    windowEnd: plan === 'basic' ? basicHoldEnd(c, s) : new Date(c.endsAt.getTime() + after * MINUTE),
  };
}

/**
 * Until when a basic host is held by a class. Zoom stops a basic meeting `maxMinutes` after its
 * first join, not at the class end, and nothing of ours ends it sooner (a join-before-host meeting
 * has no host to end it): a meeting started early and still joined runs to that cap, and so does
 * one first joined at the class start (no one early, the usual case), which is later. So the host
 * is held until the later of the class end + after-class and the class start + `maxMinutes`.
 * Covered too: a first join at the earliest (start − early join) ends by then. Not covered: a first
 * join after the class start (everyone late), which would hold every trial's host until its end + 40.
 */
export function basicHoldEnd(c: ClassTime, s: MeetingSettings): Date {
  return new Date(Math.max(c.endsAt.getTime() + s.basic.afterClassMinutes * MINUTE, c.startsAt.getTime() + s.basic.maxMinutes * MINUTE));
}

/**
 * Zoom ends a basic host's meeting `maxMinutes` after it starts, and with join-before-host it starts
 * when the first student joins early: the whole live span must fit.
 */
export function fitsBasic(c: ClassTime, s: MeetingSettings): boolean {
  return s.basic.earlyJoinMinutes + classMinutes(c) + s.basic.afterClassMinutes <= s.basic.maxMinutes;
}

export interface HostState {
  id: number;
  plan: ZoomPlan;
  accountId: string;
  /** Set after Zoom's per-host daily 429, until the next reset. */
  exhaustedUntil: Date | null;
  lastAssignedAt: Date | null;
  /** Meeting creates/updates already spent today. */
  writesToday: number;
  /** Basic (Free) accounts have daily request caps; false when today's medium budget is spent. */
  accountBudgetLeft: boolean;
  /** Host windows already reserved on this host. */
  busy: readonly { start: Date; end: Date }[];
}

export interface Ranking {
  /** Eligible hosts, best first. */
  hosts: HostState[];
  /** Why the others were left out (for the no-capacity reason). */
  excluded: Record<'busy' | 'exhausted' | 'too_long_for_basic' | 'recording_needs_licensed' | 'write_budget' | 'account_budget', number>;
}

export const overlaps = (a: { start: Date; end: Date }, b: { start: Date; end: Date }): boolean =>
  a.start.getTime() < b.end.getTime() && b.start.getTime() < a.end.getTime();

/**
 * Eligible hosts for a class, in round-robin order (least recently assigned first). Trial classes
 * that fit a basic host try basic hosts first, keeping licensed hosts free; other classes use
 * licensed hosts first and basic ones only as a fallback (never when cloud recording is wanted).
 */
export function rankHosts(c: ClassTime, hosts: readonly HostState[], s: MeetingSettings, now: Date, hostWriteCap: number): Ranking {
  const excluded: Ranking['excluded'] = { busy: 0, exhausted: 0, too_long_for_basic: 0, recording_needs_licensed: 0, write_budget: 0, account_budget: 0 };
  const basicOk = fitsBasic(c, s);
  const eligible: HostState[] = [];
  for (const host of hosts) {
    if (host.plan === 'basic' && !basicOk) {
      excluded.too_long_for_basic++;
      continue;
    }
    if (host.plan === 'basic' && !c.trial && s.autoRecording === 'cloud') {
      excluded.recording_needs_licensed++;
      continue;
    }
    if (host.exhaustedUntil && host.exhaustedUntil.getTime() > now.getTime()) {
      excluded.exhausted++;
      continue;
    }
    if (host.writesToday >= hostWriteCap) {
      excluded.write_budget++;
      continue;
    }
    if (!host.accountBudgetLeft) {
      excluded.account_budget++;
      continue;
    }
    const plan = planMeeting(c, host.plan, s);
    if (host.busy.some((w) => overlaps(w, { start: plan.windowStart, end: plan.windowEnd }))) {
      excluded.busy++;
      continue;
    }
    eligible.push(host);
  }
  const preferBasic = c.trial;
  const stamp = (h: HostState): number => h.lastAssignedAt?.getTime() ?? -Infinity;
  eligible.sort((a, b) => {
    if (a.plan !== b.plan) return (a.plan === 'basic') === preferBasic ? -1 : 1;
    return stamp(a) - stamp(b) || a.id - b.id;
  });
  return { hosts: eligible, excluded };
}

/** Why no host took a class; `unusable`: enabled hosts left out of the pass (unreadable, refused by Zoom), with why. */
export function describeNoCapacity(r: Ranking, poolSize: number, unusable: readonly { label: string; reason: string }[] = []): string {
  const parts = Object.entries(r.excluded)
    .filter(([, n]) => n > 0)
    .map(([why, n]) => `${n} ${why.replaceAll('_', ' ')}`);
  const left = unusable.map((h) => `${h.label}: ${h.reason}`).join('; ');
  if (poolSize === 0) return unusable.length ? `no usable Zoom host in the pool (${left})` : 'no enabled Zoom host in the pool';
  return `no eligible host among ${poolSize}: ${parts.join(', ') || 'none eligible'}${left ? `; left out: ${left}` : ''}`;
}

/** Next 00:00 UTC after `now`: when Zoom resets its per-host daily limit. */
export function nextUtcMidnight(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
}

/**
 * The day (YYYY-MM-DD) a meeting create/update counts against a host's 100 a day: Zoom resets that
 * limit at 00:00 UTC, whatever `zoom.quota.timezone` says, so the host budget must follow UTC days.
 */
export function hostWriteDay(instant: Date): string {
  return instant.toISOString().slice(0, 10);
}

/** The counters' day (YYYY-MM-DD) of `instant` in `timeZone`. */
export function quotaDay(instant: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(instant);
  const get = (type: string): string => parts.find((p) => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')}`;
}

export function meetingMarker(externalId: string): string {
  return `[scheduler:${externalId}]`;
}
