import { randomUUID } from 'node:crypto';
import { sql, type RawBuilder } from 'kysely';
import type { Clock } from '../clock.ts';
import { dialectOf, type Db } from '../db/database.ts';
import { toBool, toDate, valuesTable } from '../db/row.ts';
import { chunked } from '../db/transaction.ts';
import { LEFT_CLASS_VERSION, plannedDeliveries, reconcileDeliveries, type DeliveryRules } from './rules.ts';

/**
 * The outbox: called inside the transaction that changes schedules or appointments, so the
 * deliveries they imply are created, re-timed or cancelled atomically with the change. A moved class
 * moves its due times; a cancelled class or booking cancels them. Returns the ids touched (for
 * in-process listeners such as the timing wheel).
 */
export async function syncDeliveries(
  trx: Db,
  clock: Clock,
  rules: DeliveryRules,
  scope: { scheduleIds?: readonly number[]; appointmentIds?: readonly number[]; movedAppointmentIds?: readonly number[]; rebookedAppointmentIds?: readonly number[] },
): Promise<number[]> {
  const moved = new Set(scope.movedAppointmentIds ?? []);
  // Moved to another class (not only to another student): the messages of the old class stay behind.
  const rebooked = new Set(scope.rebookedAppointmentIds ?? []);
  const now = clock.now();
  const touched: number[] = [];
  const bookings: {
    appointmentId: number;
    cancelled: boolean;
    scheduleCancelled: boolean;
    startsAt: Date;
    endsAt: Date;
    feedbackUrl: string | null;
    version: number;
  }[] = [];
  const postgres = dialectOf(trx) === 'postgres';
  const load = async (column: 'appointments.schedule_id' | 'appointments.id', ids: readonly number[]) => {
    for (const chunk of chunked([...new Set(ids)])) {
      let query = trx
        .selectFrom('appointments')
        .innerJoin('schedules', 'schedules.id', 'appointments.schedule_id')
        .select(['appointments.id', 'appointments.cancelled', 'schedules.cancelled as schedule_cancelled', 'schedules.starts_at', 'schedules.ends_at', 'schedules.feedback_url', 'schedules.version'])
        .where(column, 'in', chunk);
      // The class as it is when this transaction commits: a booking written while its class moves
      // would otherwise get deliveries for the old version that the move's own sync did not see
      // (it could not see the uncommitted booking). KEY SHARE waits for a schedule upsert holding
      // its row FOR UPDATE, and makes one wait for us; the provisioner's plain updates are not held.
      // In id order, as the schedule upsert takes its locks, so the two do not deadlock on a batch.
      if (postgres) query = query.orderBy('schedules.id').forKeyShare('schedules');
      const rows = await query.execute();
      for (const r of rows) {
        bookings.push({
          appointmentId: r.id,
          cancelled: toBool(r.cancelled),
          scheduleCancelled: toBool(r.schedule_cancelled),
          startsAt: toDate(r.starts_at),
          endsAt: toDate(r.ends_at),
          feedbackUrl: r.feedback_url,
          version: r.version,
        });
      }
    }
  };
  if (scope.scheduleIds?.length) await load('appointments.schedule_id', scope.scheduleIds);
  if (scope.appointmentIds?.length) await load('appointments.id', scope.appointmentIds);
  if (bookings.length === 0) return touched;

  for (const chunk of chunked(bookings)) {
    let existingQuery = trx
      .selectFrom('deliveries')
      .select(['id', 'appointment_id', 'kind', 'state', 'due_at', 'not_after', 'schedule_version', 'attempts', 'sent_at', 'line_request_id', 'last_error', 'class_starts_at', 'class_ends_at'])
      .where('appointment_id', 'in', chunk.map((b) => b.appointmentId));
    // The rows written below are locked here, in id order: the writes go by kind of change (cancels,
    // then re-times), so two syncs of one booking (a booking moved while a schedule batch moves its
    // old class) would otherwise take its rows in opposite orders (a deadlock).
    if (postgres) existingQuery = existingQuery.orderBy('id').forNoKeyUpdate();
    const existingRows = await existingQuery.execute();
    // Cancelled rows tried before: whether they went in a multicast chunk decides their key if revived.
    const tried = existingRows.filter((r) => r.state === 'cancelled' && r.attempts > 0).map((r) => r.id);
    const inChunks = new Set<number>();
    for (const part of chunked(tried)) {
      const rows = await trx.selectFrom('line_multicast_members').select('delivery_id').where('delivery_id', 'in', part).execute();
      for (const r of rows) if (r.delivery_id !== null) inChunks.add(r.delivery_id);
    }
    const byAppointment = new Map<number, typeof existingRows>();
    for (const row of existingRows) byAppointment.set(row.appointment_id, [...(byAppointment.get(row.appointment_id) ?? []), row]);
    const inserts = [];
    const retimes: Retime[] = [];
    const cancels = new Map<string, number[]>();
    const leaves = new Map<string, { reason: string; cancel: boolean; ids: number[] }>();
    for (const b of chunk) {
      const existing = (byAppointment.get(b.appointmentId) ?? []).map((r) => ({
        id: r.id,
        kind: r.kind,
        state: r.state,
        dueAt: toDate(r.due_at),
        notAfter: toDate(r.not_after),
        scheduleVersion: r.schedule_version,
        attempts: r.attempts,
        occasion: r.class_starts_at && r.class_ends_at ? { startsAt: toDate(r.class_starts_at), endsAt: toDate(r.class_ends_at) } : null,
        inChunk: inChunks.has(r.id),
        before: r.state === 'sent' ? `sent at ${toDate(r.sent_at ?? r.due_at).toISOString()}${r.line_request_id ? ` (LINE request ${r.line_request_id})` : ''}` : `${r.state}${r.last_error ? `: ${r.last_error}` : ''}`,
      }));
      const live = !b.cancelled && !b.scheduleCancelled;
      const reason = b.scheduleCancelled ? 'class cancelled' : 'booking cancelled';
      const wanted = plannedDeliveries({ startsAt: b.startsAt, endsAt: b.endsAt, hasFeedbackUrl: b.feedbackUrl !== null }, rules);
      const active = { live, reason, bookingCancelled: b.cancelled, moved: moved.has(b.appointmentId), rebooked: rebooked.has(b.appointmentId) };
      for (const change of reconcileDeliveries(existing, wanted, active, b.version, now)) {
        if (change.action === 'create') {
          inserts.push({
            appointment_id: b.appointmentId,
            kind: change.planned.kind,
            due_at: change.planned.dueAt,
            not_after: change.planned.notAfter,
            available_at: change.planned.dueAt,
            state: 'pending' as const,
            attempts: 0,
            // Fixed once, before any attempt: every retry of this message carries the same key.
            retry_key: randomUUID(),
            schedule_version: b.version,
            class_starts_at: change.planned.occasion.startsAt,
            class_ends_at: change.planned.occasion.endsAt,
            created_at: now,
            updated_at: now,
          });
          continue;
        }
        touched.push(change.id);
        if (change.action === 'cancel') {
          cancels.set(change.reason, [...(cancels.get(change.reason) ?? []), change.id]);
        } else if (change.action === 'leave') {
          const key = `${String(change.cancel)}:${change.reason}`;
          const group = leaves.get(key) ?? { reason: change.reason, cancel: change.cancel, ids: [] };
          group.ids.push(change.id);
          leaves.set(key, group);
        } else {
          // Re-timing also takes back an in-flight claim: the sender re-checks and will not send the old version.
          const fresh = change.action === 'rearm' || ((change.action === 'retime' || change.action === 'revive') && change.newKey);
          const before = existing.find((e) => e.id === change.id)?.before;
          retimes.push({
            id: change.id,
            dueAt: change.planned.dueAt,
            notAfter: change.planned.notAfter,
            version: b.version,
            startsAt: change.planned.occasion.startsAt,
            endsAt: change.planned.occasion.endsAt,
            note: change.action === 'rearm' ? `owed again: the class or booking moved (before: ${before ?? 'settled'})` : null,
            // Another occasion, another message: a new retry key (LINE would answer 409 to the old
            // one and the new message would never go out), attempts from 0, sent fields cleared.
            retryKey: fresh ? randomUUID() : null,
          });
        }
      }
    }
    const lease = { lease_owner: null, lease_token: null, lease_expires_at: null, updated_at: now };
    for (const [reason, ids] of cancels) {
      for (const part of chunked(ids)) await trx.updateTable('deliveries').set({ state: 'cancelled', last_error: reason, ...lease }).where('id', 'in', part).execute();
    }
    for (const { reason, cancel, ids } of leaves.values()) {
      for (const part of chunked(ids)) {
        await trx
          .updateTable('deliveries')
          .set({ schedule_version: LEFT_CLASS_VERSION, ...(cancel ? { state: 'cancelled' as const, last_error: reason, ...lease } : {}) })
          .where('id', 'in', part)
          .execute();
      }
    }
    for (const part of chunked(retimes)) await retimeMany(trx, now, part);
    // Its earlier multicast chunk is not its message any more: a resend of that chunk leaves it out.
    const fresh = retimes.filter((r) => r.retryKey !== null).map((r) => r.id);
    for (const part of chunked(fresh)) await trx.updateTable('line_multicast_members').set({ delivery_id: null }).where('delivery_id', 'in', part).execute();
    for (const part of chunked(inserts, 300)) {
      const rows = await trx.insertInto('deliveries').values(part).returning('id').execute();
      touched.push(...rows.map((r) => r.id));
    }
  }
  return touched;
}

/** A waiting or settled delivery owed (again) at new times; `retryKey` set: a new message (see `fresh`). */
interface Retime {
  id: number;
  dueAt: Date;
  notAfter: Date;
  version: number;
  startsAt: Date;
  endsAt: Date;
  note: string | null;
  retryKey: string | null;
}

/**
 * Re-times many deliveries in one statement (a bulk move touches thousands: one round trip each was
 * most of its time). Each row is pending again from its new due time, its claim taken back; a row
 * with a new retry key also starts its attempts from 0 with its sent fields cleared.
 */
async function retimeMany(trx: Db, now: Date, rows: readonly Retime[]): Promise<void> {
  if (rows.length === 0) return;
  const v = valuesTable(
    trx,
    [['id', 'id'], ['due_at', 'instant'], ['not_after', 'instant'], ['version', 'int'], ['starts_at', 'instant'], ['ends_at', 'instant'], ['note', 'text'], ['retry_key', 'text']],
    rows.map((r) => [r.id, r.dueAt, r.notAfter, r.version, r.startsAt, r.endsAt, r.note, r.retryKey]),
  );
  await sql`
    update deliveries set state = 'pending', due_at = v.due_at, not_after = v.not_after, available_at = v.due_at, schedule_version = v.version,
      class_starts_at = v.starts_at, class_ends_at = v.ends_at, lease_owner = null, lease_token = null, lease_expires_at = null,
      last_error = v.note, updated_at = ${now},
      retry_key = coalesce(v.retry_key, deliveries.retry_key),
      attempts = case when v.retry_key is null then deliveries.attempts else 0 end,
      sent_at = case when v.retry_key is null then deliveries.sent_at else null end,
      line_request_id = case when v.retry_key is null then deliveries.line_request_id else null end
    from ${v}
    where deliveries.id = v.id`.execute(trx);
}

/**
 * Re-applies the rules to the bookings whose waiting deliveries were timed by other lead times than
 * the ones in force (the settings changed, by a reload or across a restart). The database finds them
 * from the class times stored on each row, in one pass over the waiting rows (the pending index),
 * so a start with nothing changed costs one query. A row older than those columns counts as drifted.
 * `rules` is read for each chunk, so a reload during a long pass is followed; `stop` ends it early.
 */
export async function resyncDriftedDeliveries(db: Db, clock: Clock, rules: () => DeliveryRules, o: { stop?: () => boolean } = {}): Promise<number[]> {
  const r = rules();
  const postgres = dialectOf(db) === 'postgres';
  const plus = (column: 'class_starts_at' | 'class_ends_at', ms: number) =>
    postgres ? sql`(${sql.ref(column)} + make_interval(secs => ${ms / 1000}))` : sql`strftime('%Y-%m-%dT%H:%M:%fZ', ${sql.ref(column)}, ${`${ms >= 0 ? '+' : ''}${ms / 1000} seconds`})`;
  const later = (a: RawBuilder<unknown>, b: RawBuilder<unknown>) => (postgres ? sql`greatest(${a}, ${b})` : sql`max(${a}, ${b})`);
  // The same arithmetic as plannedDeliveries, on the stored class times.
  const drifted = await sql<{ appointment_id: number }>`
    select distinct appointment_id from deliveries where state = 'pending' and (
      (kind = 'meeting_url' and (class_starts_at is null or due_at <> ${plus('class_starts_at', -r.meetingLeadMs)} or not_after <> class_ends_at))
      or (kind = 'feedback_url' and (class_starts_at is null
        or due_at <> ${later(sql.ref('class_starts_at'), plus('class_ends_at', -r.feedbackBeforeEndMs))}
        or not_after <> ${plus('class_ends_at', r.feedbackLateWindowMs)})))`.execute(db);
  const touched: number[] = [];
  for (const chunk of chunked(drifted.rows.map((row) => Number(row.appointment_id)), 200)) {
    if (o.stop?.()) break;
    touched.push(...(await db.transaction().execute((trx) => syncDeliveries(trx, clock, rules(), { appointmentIds: chunk }))));
  }
  return touched;
}
