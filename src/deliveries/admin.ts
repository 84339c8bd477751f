import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.ts';
import type { Db } from '../db/database.ts';
import { toDate } from '../db/row.ts';
import type { DeliveryKind, DeliveryState } from '../db/tables.ts';
import { conflict, notFound } from '../errors.ts';
import { deliveryView, type DeliveryView } from '../schedules/appointments.ts';

/** One delivery as an operator looks for it: what, to whom, for which class, and what became of it. */
export interface DeliveryItem extends DeliveryView {
  id: number;
  notAfter: Date;
  appointment: string;
  schedule: string;
  channel: string;
  lineUserId: string;
}

export interface DeliveryListQuery {
  from: Date;
  to: Date;
  state?: DeliveryState | undefined;
  kind?: DeliveryKind | undefined;
  limit: number;
  after?: { dueAt: Date; id: number } | undefined;
}

/** Deliveries due in [from, to), oldest first, optionally of one state and kind; keyset pages by (due_at, id). */
export async function listDeliveries(db: Db, o: DeliveryListQuery): Promise<DeliveryItem[]> {
  const rows = await deliveriesListQuery(db, o).execute();
  return rows.map((r) => ({
    ...deliveryView(r),
    id: r.id,
    notAfter: toDate(r.not_after),
    appointment: r.appointment,
    schedule: r.schedule,
    channel: r.channel,
    lineUserId: r.line_user_id,
  }));
}

/** The list's query (its plan is tested: it walks the (due_at, id) index, never the whole history). */
export function deliveriesListQuery(db: Db, o: DeliveryListQuery) {
  let query = db
    .selectFrom('deliveries')
    .innerJoin('appointments', 'appointments.id', 'deliveries.appointment_id')
    .innerJoin('schedules', 'schedules.id', 'appointments.schedule_id')
    .innerJoin('members', 'members.id', 'appointments.member_id')
    .innerJoin('line_channels', 'line_channels.id', 'members.channel_id')
    .select([
      'deliveries.id',
      'deliveries.kind',
      'deliveries.state',
      'deliveries.due_at',
      'deliveries.not_after',
      'deliveries.attempts',
      'deliveries.sent_at',
      'deliveries.last_error',
      'appointments.external_id as appointment',
      'schedules.external_id as schedule',
      'line_channels.slug as channel',
      'members.line_user_id',
    ])
    .where('deliveries.due_at', '>=', o.from)
    .where('deliveries.due_at', '<', o.to);
  if (o.state) query = query.where('deliveries.state', '=', o.state);
  if (o.kind) query = query.where('deliveries.kind', '=', o.kind);
  const after = o.after;
  if (after) {
    query = query.where((eb) => eb.or([eb('deliveries.due_at', '>', after.dueAt), eb.and([eb('deliveries.due_at', '=', after.dueAt), eb('deliveries.id', '>', after.id)])]));
  }
  return query.orderBy('deliveries.due_at').orderBy('deliveries.id').limit(o.limit);
}

/** The states an operator may send again: the message did not reach the student (expired ones are past their window). */
const RETRYABLE: readonly DeliveryState[] = ['failed', 'skipped'];

/**
 * An operator sends a delivery again that failed or was skipped, while it is still useful: it is
 * owed now, as a new message (a new retry key, attempts from 0, out of its old multicast chunk),
 * with the earlier outcome kept in its reason. A failed delivery that was tried, or a skipped one
 * tried before it was skipped, may have been accepted by LINE (a timeout, a lost answer), and a new
 * key would then deliver it twice: that takes `force`, after reading its reason. What was sent, is on its way, or was cancelled is refused with the
 * reason (409), as is one past its window.
 */
export async function retryDelivery(db: Db, clock: Clock, id: number, o: { force?: boolean } = {}): Promise<void> {
  const now = clock.now();
  await db.transaction().execute(async (trx) => {
    const row = await trx.selectFrom('deliveries').select(['state', 'not_after', 'last_error', 'attempts']).where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(`delivery ${id} not found`);
    if (!RETRYABLE.includes(row.state)) throw conflict(`delivery ${id} is ${row.state}: only a failed or skipped delivery can be sent again`);
    const notAfter = toDate(row.not_after);
    if (notAfter.getTime() <= now.getTime()) throw conflict(`delivery ${id} is past its window (useful until ${notAfter.toISOString()}): sending it now would not help`);
    // A failed one that was claimed may have gone to LINE. A skipped one was stopped before its
    // request (unfollowed, channel disabled), but an earlier attempt of it may have reached LINE.
    const mayHaveReached = row.state === 'failed' ? row.attempts > 0 : row.attempts > 1;
    if (mayHaveReached && !o.force) {
      throw conflict(
        `delivery ${id} was tried ${row.attempts} time(s) and LINE may have accepted one (last: ${row.last_error ?? 'no reason recorded'}): a new message could reach the student twice. If the reason says LINE refused it for good, send it again with force=true`,
      );
    }
    const updated = await trx
      .updateTable('deliveries')
      .set({
        state: 'pending',
        available_at: now,
        attempts: 0,
        retry_key: randomUUID(),
        sent_at: null,
        line_request_id: null,
        last_error: `sent again by an operator (before: ${row.state}${row.last_error ? `: ${row.last_error}` : ''})`,
        updated_at: now,
      })
      .where('id', '=', id)
      .where('state', '=', row.state)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) throw conflict(`delivery ${id} changed meanwhile: look again`);
    await trx.updateTable('line_multicast_members').set({ delivery_id: null }).where('delivery_id', '=', id).execute();
  });
}
