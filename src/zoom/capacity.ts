import type { Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import { fitsBasic, planMeeting, type ClassTime, type MeetingSettings } from './allocation.ts';

/**
 * The capacity view: for the coming days, how many classes run at once against how many hosts can
 * take them, and how many meeting writes (creates, then closes) each UTC day needs against the hosts'
 * daily budget, so
 * an operator learns on Monday that Thursday 20:00 needs two more licensed hosts.
 */
export interface Shortfall {
  from: string;
  to: string;
  classes: number;
  hosts: number;
  /** Hosts missing at that time (licensed, unless basic hosts could take the short trials). */
  missing: number;
}

export interface DayCapacity {
  day: string;
  classes: number;
  peakConcurrent: number;
  peakAt: string | null;
  /** Meeting creates this UTC day (meetings are made about `horizon` before the class). */
  creates: number;
  /** Meeting closes this UTC day (join before host turned off once a class and its buffer are over). */
  closes: number;
  /** Creates and closes: both spend a host's daily meeting writes (moves too, not forecast). */
  writes: number;
  /** The enabled hosts' meeting writes per UTC day. */
  createBudget: number;
  shortfalls: Shortfall[];
}

export interface CapacityReport {
  from: string;
  to: string;
  hosts: { licensed: number; basic: number };
  days: DayCapacity[];
}

export function computeCapacity(
  classes: readonly ClassTime[],
  hosts: { licensed: number; basic: number },
  s: MeetingSettings,
  o: { from: Date; to: Date; horizonMs: number; hostWriteCap: number },
): CapacityReport {
  // Sweep over window edges: +1 at a window's start, −1 at its end (ends sort first: back-to-back is fine).
  const edges: { at: number; delta: number; basic: boolean }[] = [];
  const closes: number[] = [];
  for (const c of classes) {
    const basic = c.trial && fitsBasic(c, s);
    const plan = planMeeting(c, basic && hosts.basic > 0 ? 'basic' : 'licensed', s);
    edges.push({ at: plan.windowStart.getTime(), delta: 1, basic }, { at: plan.windowEnd.getTime(), delta: -1, basic });
    closes.push(plan.windowEnd.getTime());
  }
  edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
  const days = new Map<string, DayCapacity>();
  const dayOf = (ms: number): DayCapacity => {
    const day = new Date(ms).toISOString().slice(0, 10);
    let d = days.get(day);
    if (!d) {
      d = { day, classes: 0, peakConcurrent: 0, peakAt: null, creates: 0, closes: 0, writes: 0, createBudget: (hosts.licensed + hosts.basic) * o.hostWriteCap, shortfalls: [] };
      days.set(day, d);
    }
    return d;
  };
  for (let t = Date.UTC(o.from.getUTCFullYear(), o.from.getUTCMonth(), o.from.getUTCDate()); t < o.to.getTime(); t += 86_400_000) dayOf(t);
  for (const c of classes) {
    dayOf(c.startsAt.getTime()).classes++;
    dayOf(Math.max(o.from.getTime(), c.startsAt.getTime() - o.horizonMs)).creates++;
  }
  // Each meeting is closed once its host window is over.
  for (const at of closes) dayOf(at).closes++;
  for (const d of days.values()) d.writes = d.creates + d.closes;
  let total = 0;
  let basicOnes = 0;
  for (let i = 0; i < edges.length; i++) {
    const edge = edges[i];
    if (!edge) continue;
    total += edge.delta;
    if (edge.basic) basicOnes += edge.delta;
    const next = edges[i + 1];
    if (!next || next.at === edge.at) continue;
    const day = dayOf(edge.at);
    if (total > day.peakConcurrent) {
      day.peakConcurrent = total;
      day.peakAt = new Date(edge.at).toISOString();
    }
    const capacity = hosts.licensed + Math.min(hosts.basic, basicOnes);
    if (total > capacity) {
      const last = day.shortfalls.at(-1);
      const from = new Date(edge.at).toISOString();
      if (last && last.to === from && last.classes === total) last.to = new Date(next.at).toISOString();
      else day.shortfalls.push({ from, to: new Date(next.at).toISOString(), classes: total, hosts: capacity, missing: total - capacity });
    }
  }
  return {
    from: o.from.toISOString(),
    to: o.to.toISOString(),
    hosts,
    days: [...days.values()].filter((d) => d.day >= o.from.toISOString().slice(0, 10) && d.day < o.to.toISOString().slice(0, 10)).sort((a, b) => a.day.localeCompare(b.day)),
  };
}

/** An enabled host Zoom refuses for good: not counted as capacity, listed with why and since when. */
export interface RefusedHost {
  id: number;
  label: string;
  plan: 'licensed' | 'basic';
  reason: string;
  since: string | null;
}

/** Loads the classes and the enabled pool and computes the view. */
export async function capacityReport(db: Db, s: MeetingSettings, o: { from: Date; days: number; horizonMs: number; hostWriteCap: number }): Promise<CapacityReport & { refused: RefusedHost[] }> {
  const to = new Date(o.from.getTime() + o.days * 86_400_000);
  const rows = await db
    .selectFrom('schedules')
    .select(['starts_at', 'ends_at', 'trial'])
    .where('cancelled', '=', false)
    .where('ends_at', '>', o.from)
    .where('starts_at', '<', to)
    .execute();
  const pool = await db.selectFrom('zoom_accounts').select(['id', 'label', 'plan', 'enabled', 'refused_reason', 'refused_at']).orderBy('id').execute();
  // A host Zoom refuses takes no class until it works again: an operator must see it is out, and why.
  const enabled = pool.filter((h) => toBool(h.enabled));
  const usable = enabled.filter((h) => h.refused_reason === null);
  const refused = enabled.flatMap((h) => (h.refused_reason === null ? [] : [{ id: h.id, label: h.label, plan: h.plan, reason: h.refused_reason, since: toOptionalDate(h.refused_at)?.toISOString() ?? null }]));
  const report = computeCapacity(
    rows.map((r) => ({ startsAt: toDate(r.starts_at), endsAt: toDate(r.ends_at), trial: toBool(r.trial) })),
    { licensed: usable.filter((h) => h.plan === 'licensed').length, basic: usable.filter((h) => h.plan === 'basic').length },
    s,
    { from: o.from, to, horizonMs: o.horizonMs, hostWriteCap: o.hostWriteCap },
  );
  return { ...report, refused };
}
