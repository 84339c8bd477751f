import { sql } from 'kysely';
import type { Clock } from '../clock.ts';
import { dialectOf, type Db } from '../db/database.ts';
import { toBool, toDate } from '../db/row.ts';
import type { HeadcountStage, HeadcountState } from '../db/tables.ts';
import { chunked, inTransaction } from '../db/transaction.ts';
import { oweToBookedStudents } from '../deliveries/owed.ts';
import { syncDeliveries } from '../deliveries/outbox.ts';
import type { DeliveryRules } from '../deliveries/rules.ts';
import type { Logger } from '../logger.ts';
import type { MonitorMetrics } from './metrics.ts';

/**
 * The seed's "does the class reach its minimum headcount" (a check on classes about to start):
 * booked (not cancelled) students against the schedule's minParticipants. The binding check is the
 * one before the meeting link goes out: `notify-only` reports a shortfall, `cancel` calls the class
 * off. The check before provisioning (up to the provisioning horizon ahead, often before any booking
 * has arrived) only reports, under either policy: a cancellation then would be final and premature.
 */
export type MinimumPolicy = 'notify-only' | 'cancel';

export type HeadcountVerdict = { ok: true } | { ok: false; reason: string };

export function headcountVerdict(booked: number, minimum: number): HeadcountVerdict {
  if (minimum <= 0 || booked >= minimum) return { ok: true };
  return { ok: false, reason: `${booked} booked, below the minimum of ${minimum}` };
}

export interface HeadcountResult {
  state: HeadcountState;
  booked: number;
  reason: string | null;
  /** True when this check changed the verdict (log and count only then, not on every pass). */
  changed: boolean;
  /** Deliveries created or cancelled (the timing wheel re-arms them). */
  touched: number[];
}

/**
 * Checks one schedule at one stage, inside one transaction: reads the booked count under the row
 * lock, stores the verdict, and under `cancel` at the `send` stage cancels the class (its pending
 * messages are cancelled by the outbox and each booked student is owed a `class_cancelled` message,
 * due now). The provisioner then deletes its meeting, as for any cancelled class. Returns null when
 * the schedule is gone or already cancelled.
 */
export async function checkHeadcount(
  db: Db,
  clock: Clock,
  o: { scheduleId: number; stage: HeadcountStage; policy: MinimumPolicy; rules: DeliveryRules },
): Promise<HeadcountResult | null> {
  return inTransaction(db, async (trx) => {
    let q = trx.selectFrom('schedules').select(['id', 'min_participants', 'cancelled', 'headcount_state', 'ends_at', 'version']).where('id', '=', o.scheduleId);
    if (dialectOf(trx) === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row || toBool(row.cancelled)) return null;
    const booked = (await bookedCounts(trx, [row.id])).get(row.id) ?? 0;
    const verdict = headcountVerdict(booked, row.min_participants);
    const now = clock.now();
    // Only the check before sending may call the class off (see MinimumPolicy).
    const cancels = o.policy === 'cancel' && o.stage === 'send';
    const state: HeadcountState = verdict.ok ? 'ok' : cancels ? 'cancelled' : 'below_minimum';
    const when = o.stage === 'provision' ? `provisioning the meeting${o.policy === 'cancel' ? '; called off only if still short before the link is sent' : ''}` : 'sending the meeting link';
    const reason = verdict.ok ? null : `${verdict.reason} (checked before ${when})`;
    const touched: number[] = [];
    await trx
      .updateTable('schedules')
      .set({
        headcount_state: state,
        headcount_reason: reason,
        headcount_stage: o.stage,
        headcount_checked_at: now,
        updated_at: now,
        // Called off: its meeting is deleted at once, with no backoff left from earlier failed work.
        ...(state === 'cancelled' ? { cancelled: true, version: row.version + 1, meeting_attempts: 0, meeting_retry_at: null } : {}),
      })
      .where('id', '=', row.id)
      .execute();
    if (state === 'cancelled') {
      touched.push(...(await syncDeliveries(trx, clock, o.rules, { scheduleIds: [row.id] })));
      // Each booked student is told, once, until the class would have ended.
      touched.push(...(await oweToBookedStudents(trx, now, { scheduleId: row.id, kind: 'class_cancelled', notAfter: toDate(row.ends_at), version: row.version + 1 })));
    }
    return { state, booked, reason, changed: row.headcount_state !== state, touched };
  });
}

/**
 * `checkHeadcount`, then what every check point does with the verdict: count it, wake the engine
 * for the deliveries it touched, and log a shortfall when the verdict changed.
 */
export async function checkAndReportHeadcount(
  db: Db,
  clock: Clock,
  o: { scheduleId: number; stage: HeadcountStage; policy: MinimumPolicy; rules: DeliveryRules },
  report: { logger: Logger; label: string | number; metrics?: Pick<MonitorMetrics, 'headcount'> | undefined; onDeliveriesChanged?: ((ids: number[]) => void) | undefined },
): Promise<HeadcountResult | null> {
  const result = await checkHeadcount(db, clock, o);
  if (!result) return null;
  report.metrics?.headcount.inc({ stage: o.stage, state: result.state });
  if (result.touched.length) report.onDeliveriesChanged?.(result.touched);
  if (result.state !== 'ok' && result.changed) {
    report.logger.warn({ schedule: report.label, booked: result.booked, policy: o.policy }, `class below its minimum headcount: ${result.reason ?? ''}`);
  }
  return result;
}

/** Booked (not cancelled) appointments per schedule. */
export async function bookedCounts(db: Db, scheduleIds: readonly number[]): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const chunk of chunked(scheduleIds)) {
    const rows = await db
      .selectFrom('appointments')
      .select(['schedule_id', sql<number>`count(*)`.as('n')])
      .where('schedule_id', 'in', chunk)
      .where('cancelled', '=', false)
      .groupBy('schedule_id')
      .execute();
    for (const r of rows) out.set(r.schedule_id, Number(r.n));
  }
  return out;
}
