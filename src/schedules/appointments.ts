import type { Clock } from '../clock.ts';
import { dialectOf, type Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import type { DeliveryKind, DeliveryState, FollowingStatus } from '../db/tables.ts';
import { chunked, inTransaction } from '../db/transaction.ts';
import { invalid, notFound } from '../errors.ts';
import { findLineChannelsBySlug } from '../line/channels.ts';
import { ensureMembers, memberKey } from '../line/members.ts';
import { isStale, type UpsertOutcome } from './schedule-rules.ts';
import { syncDeliveries } from '../deliveries/outbox.ts';
import { DEFAULT_RULES } from '../deliveries/rules.ts';
import type { OutboxOptions } from './schedules.ts';

export interface AppointmentInput {
  externalId: string;
  scheduleExternalId: string;
  student: { channel: string; lineUserId: string };
  cancelled: boolean;
  /** The platform's revision of the booking, if it sends one (grows with each change there). */
  revision?: number | null | undefined;
}

export interface AppointmentUpsertResult {
  externalId: string;
  id: number;
  outcome: UpsertOutcome;
}

/**
 * Creates or replaces appointments by external id, all or nothing. The schedule and the channel
 * must exist (404 naming the field otherwise); the student becomes a member of that channel with an
 * unknown following status if we have not seen them follow yet.
 */
export async function upsertAppointments(db: Db, clock: Clock, inputs: readonly AppointmentInput[], options: OutboxOptions = {}): Promise<AppointmentUpsertResult[]> {
  const rules = options.rules ?? DEFAULT_RULES;
  const touched: number[] = [];
  const field = (i: number, name: string) => (inputs.length === 1 ? name : `items[${i}].${name}`);
  const seen = new Map<string, number>();
  for (const [i, input] of inputs.entries()) {
    const dup = seen.get(input.externalId);
    if (dup !== undefined) throw invalid(field(i, 'externalId'), `"${input.externalId}" appears twice (also at index ${dup})`);
    seen.set(input.externalId, i);
  }

  const results = await inTransaction(db, async (trx) => {
    const now = clock.now();
    const schedules = new Map<string, number>();
    for (const chunk of chunked([...new Set(inputs.map((i) => i.scheduleExternalId))])) {
      const rows = await trx.selectFrom('schedules').select(['id', 'external_id']).where('external_id', 'in', chunk).execute();
      for (const row of rows) schedules.set(row.external_id, row.id);
    }
    const channels = await findLineChannelsBySlug(trx, inputs.map((i) => i.student.channel));
    for (const [i, input] of inputs.entries()) {
      if (!schedules.has(input.scheduleExternalId)) throw notFound(`schedule "${input.scheduleExternalId}" not found`, field(i, 'scheduleExternalId'));
      if (!channels.has(input.student.channel)) throw notFound(`LINE channel "${input.student.channel}" not found`, field(i, 'student.channel'));
    }
    const channelOf = (input: AppointmentInput): number => channels.get(input.student.channel)?.id ?? 0;
    const members = await ensureMembers(
      trx,
      clock,
      inputs.map((input) => ({ channelId: channelOf(input), lineUserId: input.student.lineUserId })),
    );

    const existing = new Map<string, { id: number; schedule_id: number; member_id: number; cancelled: boolean | number; source_revision: number | null }>();
    const postgres = dialectOf(trx) === 'postgres';
    for (const chunk of chunked(inputs.map((i) => i.externalId))) {
      let query = trx.selectFrom('appointments').select(['id', 'external_id', 'schedule_id', 'member_id', 'cancelled', 'source_revision']).where('external_id', 'in', chunk);
      // NO KEY UPDATE still serialises two writes of one booking, but not a delivery insert's foreign
      // key check (KEY SHARE) by a schedule upsert holding the class, which this one then waits for.
      if (postgres) query = query.forNoKeyUpdate();
      for (const row of await query.execute()) existing.set(row.external_id, row);
    }

    const results: AppointmentUpsertResult[] = [];
    const fresh: { input: AppointmentInput; scheduleId: number; memberId: number }[] = [];
    // Bookings moved to another class or another student: what they were sent was for another occasion.
    const moved: number[] = [];
    for (const input of inputs) {
      const scheduleId = schedules.get(input.scheduleExternalId) ?? 0;
      const memberId = members.get(memberKey(channelOf(input), input.student.lineUserId)) ?? 0;
      const row = existing.get(input.externalId);
      if (!row) {
        fresh.push({ input, scheduleId, memberId });
        continue;
      }
      if (isStale(row.source_revision, input.revision)) {
        results.push({ externalId: input.externalId, id: row.id, outcome: 'stale' });
        continue;
      }
      const same = row.schedule_id === scheduleId && row.member_id === memberId && toBool(row.cancelled) === input.cancelled;
      if (row.schedule_id !== scheduleId || row.member_id !== memberId) moved.push(row.id);
      if (!same || (input.revision != null && input.revision !== row.source_revision)) {
        // Unchanged but newer still records the revision: a write between the two is older now.
        await trx
          .updateTable('appointments')
          .set({ schedule_id: scheduleId, member_id: memberId, cancelled: input.cancelled, source_revision: input.revision ?? row.source_revision, ...(same ? {} : { updated_at: now }) })
          .where('id', '=', row.id)
          .execute();
      }
      results.push({ externalId: input.externalId, id: row.id, outcome: same ? 'unchanged' : 'updated' });
    }
    for (const chunk of chunked(fresh)) {
      const rows = await trx
        .insertInto('appointments')
        .values(
          chunk.map(({ input, scheduleId, memberId }) => ({
            external_id: input.externalId,
            schedule_id: scheduleId,
            member_id: memberId,
            cancelled: input.cancelled,
            source_revision: input.revision ?? null,
            created_at: now,
            updated_at: now,
          })),
        )
        .returning(['id', 'external_id'])
        .execute();
      for (const row of rows) results.push({ externalId: row.external_id, id: row.id, outcome: 'created' });
    }
    // Outbox: each new or changed booking gets its deliveries in this same transaction.
    const changed = results.filter((r) => r.outcome === 'created' || r.outcome === 'updated').map((r) => r.id);
    if (changed.length) touched.push(...(await syncDeliveries(trx, clock, rules, { appointmentIds: changed, movedAppointmentIds: moved })));
    const order = new Map(inputs.map((input, i) => [input.externalId, i]));
    return results.sort((a, b) => (order.get(a.externalId) ?? 0) - (order.get(b.externalId) ?? 0));
  });
  if (touched.length) options.onDeliveriesChanged?.(touched);
  return results;
}

export interface DeliveryView {
  kind: DeliveryKind;
  state: DeliveryState;
  dueAt: Date;
  attempts: number;
  sentAt: Date | null;
  /** sent_at − due_at in ms, once sent. */
  latenessMs: number | null;
  lastError: string | null;
}

/** What an operator sees of a delivery row, lateness included. */
export function deliveryView(d: { kind: DeliveryKind; state: DeliveryState; due_at: Date | string; attempts: number; sent_at: Date | string | null; last_error: string | null }): DeliveryView {
  const dueAt = toDate(d.due_at);
  const sentAt = toOptionalDate(d.sent_at);
  return { kind: d.kind, state: d.state, dueAt, attempts: d.attempts, sentAt, latenessMs: sentAt ? sentAt.getTime() - dueAt.getTime() : null, lastError: d.last_error };
}

export interface AppointmentView {
  id: number;
  externalId: string;
  cancelled: boolean;
  student: { channel: string; lineUserId: string; displayName: string | null; following: FollowingStatus };
  deliveries: DeliveryView[];
  createdAt: Date;
  updatedAt: Date;
}

/** A schedule's appointments with their members and deliveries, for the detail view. */
export async function listAppointmentsOfSchedule(db: Db, scheduleId: number): Promise<AppointmentView[]> {
  const rows = await db
    .selectFrom('appointments')
    .innerJoin('members', 'members.id', 'appointments.member_id')
    .innerJoin('line_channels', 'line_channels.id', 'members.channel_id')
    .select([
      'appointments.id',
      'appointments.external_id',
      'appointments.cancelled',
      'appointments.created_at',
      'appointments.updated_at',
      'members.line_user_id',
      'members.display_name',
      'members.following',
      'line_channels.slug',
    ])
    .where('appointments.schedule_id', '=', scheduleId)
    .orderBy('appointments.id')
    .execute();
  const deliveries = new Map<number, DeliveryView[]>();
  for (const chunk of chunked(rows.map((r) => r.id))) {
    const found = await db.selectFrom('deliveries').selectAll().where('appointment_id', 'in', chunk).orderBy('due_at').execute();
    for (const d of found) deliveries.set(d.appointment_id, [...(deliveries.get(d.appointment_id) ?? []), deliveryView(d)]);
  }
  return rows.map((row) => ({
    id: row.id,
    externalId: row.external_id,
    cancelled: toBool(row.cancelled),
    student: { channel: row.slug, lineUserId: row.line_user_id, displayName: row.display_name, following: row.following },
    deliveries: deliveries.get(row.id) ?? [],
    createdAt: toDate(row.created_at),
    updatedAt: toDate(row.updated_at),
  }));
}
