import { sql } from 'kysely';
import type { Clock } from '../clock.ts';
import { dialectOf, isUniqueViolation, type Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate, valuesTable } from '../db/row.ts';
import type { DeliveryKind, DeliveryState, FollowingStatus } from '../db/tables.ts';
import { chunked, inTransaction } from '../db/transaction.ts';
import { conflict, invalid, notFound, type DomainError } from '../errors.ts';
import { findLineChannelsBySlug } from '../line/channels.ts';
import { ensureMembers, memberKey } from '../line/members.ts';
import { isNewerRevision, isStale, type UpsertOutcome } from './schedule-rules.ts';
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

export interface AppointmentUpsertOptions extends OutboxOptions {
  /**
   * Refuse (409, naming the booking already there) a booking that would make a second live booking
   * of one student in one class: both would be owed every message, and the student would get each
   * twice. The admin API always asks for it. The database refuses such a booking anyway (a partial
   * unique index, migration 0014); off, that refusal is a 409 naming no booking.
   */
  oneLiveBookingPerStudent?: boolean;
}

/**
 * Creates or replaces appointments by external id, all or nothing. The schedule and the channel
 * must exist (404 naming the field otherwise); the student becomes a member of that channel with an
 * unknown following status if we have not seen them follow yet. With `oneLiveBookingPerStudent`, a
 * second live booking of a student in a class is a 409 naming the one already there (see below).
 */
export async function upsertAppointments(db: Db, clock: Clock, inputs: readonly AppointmentInput[], options: AppointmentUpsertOptions = {}): Promise<AppointmentUpsertResult[]> {
  const touched: number[] = [];
  const field = (i: number, name: string) => (inputs.length === 1 ? name : `items[${i}].${name}`);
  const seen = new Map<string, number>();
  for (const [i, input] of inputs.entries()) {
    const dup = seen.get(input.externalId);
    if (dup !== undefined) throw invalid(field(i, 'externalId'), `"${input.externalId}" appears twice (also at index ${dup})`);
    seen.set(input.externalId, i);
  }

  let results: AppointmentUpsertResult[] | undefined;
  for (let attempt = 1; !results; attempt++) {
    touched.length = 0;
    try {
      results = await inTransaction(db, (trx) => writeBatch(trx, clock, inputs, options, touched));
    } catch (error) {
      if (!isOneLiveViolation(error)) throw error;
      // Another request booked one of these students into the same class under another booking id,
      // and committed while this one ran: the index stopped the second live booking. Run again, once:
      // the check then sees that booking and refuses with the 409 naming it. Not inside the caller's
      // transaction (aborted on PostgreSQL), nor without the check, nor twice.
      if (attempt === 1 && options.oneLiveBookingPerStudent && !db.isTransaction) continue;
      const at = inputs.length === 1 ? 'student.lineUserId' : 'items';
      throw conflict(`${at}: a student is already booked into the class by another live booking (one live booking per student and class); nothing was written`, at);
    }
  }
  if (touched.length) options.onDeliveriesChanged?.(touched);
  return results;
}

/** The name of migration 0014's partial unique index over live bookings (schedule_id, member_id). */
const ONE_LIVE_INDEX = 'appointments_one_live';

/** The unique index over live bookings refused a write (PostgreSQL names it; SQLite its columns). */
function isOneLiveViolation(error: unknown): boolean {
  if (!isUniqueViolation(error) || typeof error !== 'object' || error === null) return false;
  const { constraint, message } = error as { constraint?: unknown; message?: unknown };
  return constraint === ONE_LIVE_INDEX || String(message).includes('appointments.schedule_id, appointments.member_id');
}

/** One attempt at the batch, inside `trx`; the deliveries it changed are added to `touched`. */
async function writeBatch(trx: Db, clock: Clock, inputs: readonly AppointmentInput[], options: AppointmentUpsertOptions, touched: number[]): Promise<AppointmentUpsertResult[]> {
  const rules = options.rules ?? DEFAULT_RULES;
  const field = (i: number, name: string) => (inputs.length === 1 ? name : `items[${i}].${name}`);
  const now = clock.now();
  const postgres = dialectOf(trx) === 'postgres';
  const schedules = new Map<string, number>();
  const scheduleIds = [...new Set(inputs.map((i) => i.scheduleExternalId))];
  // Every class of the batch is held FOR KEY SHARE before any booking is written, in one statement
  // in id order: the same strength as the foreign-key check of a booking written into it (and the
  // outbox's read of it), so it makes a schedule upsert (FOR UPDATE, in id order) wait for this
  // batch, or this batch for it, as a whole. Taken a class at a time by each booking's write, in the
  // platform's order, they deadlocked with a schedule bulk holding the same classes in id order.
  // PostgreSQL takes up to a bulk's 5,000 ids in one statement; SQLite locks nothing (one writer).
  for (const chunk of postgres ? [scheduleIds] : chunked(scheduleIds)) {
    let query = trx.selectFrom('schedules').select(['id', 'external_id']).where('external_id', 'in', chunk);
    if (postgres) query = query.orderBy('id').forKeyShare();
    const rows = await query.execute();
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
  const externalIds = inputs.map((i) => i.externalId);
  for (const chunk of postgres ? [externalIds] : chunked(externalIds)) {
    let query = trx.selectFrom('appointments').select(['id', 'external_id', 'schedule_id', 'member_id', 'cancelled', 'source_revision']).where('external_id', 'in', chunk);
    // NO KEY UPDATE still serialises two writes of one booking, but not a delivery insert's foreign
    // key check (KEY SHARE) by a schedule upsert holding the class, which this one then waits for.
    // In id order, in one statement, so two batches writing the same bookings do not deadlock.
    if (postgres) query = query.orderBy('id').forNoKeyUpdate();
    for (const row of await query.execute()) existing.set(row.external_id, row);
  }

  const results: AppointmentUpsertResult[] = [];
  const fresh: { input: AppointmentInput; scheduleId: number; memberId: number }[] = [];
  const updates: AppointmentUpdate[] = [];
  // Bookings moved to another class or another student: what they were sent was for another occasion.
  const moved: number[] = [];
  // Of those, the ones moved to another class: what its old class's events owed them stays behind.
  const rebooked: number[] = [];
  // Bookings that become live in a (class, student): each must be the only live one there.
  const joining: { index: number; scheduleId: number; memberId: number }[] = [];
  const live = new Map<string, { index: number; joins: boolean }>();
  const written = new Set<string>();
  for (const [index, input] of inputs.entries()) {
    const scheduleId = schedules.get(input.scheduleExternalId) ?? 0;
    const memberId = members.get(memberKey(channelOf(input), input.student.lineUserId)) ?? 0;
    const row = existing.get(input.externalId);
    const same = row !== undefined && row.schedule_id === scheduleId && row.member_id === memberId && toBool(row.cancelled) === input.cancelled;
    if (row && !same && isStale(row.source_revision, input.revision)) {
      results.push({ externalId: input.externalId, id: row.id, outcome: 'stale' });
      continue;
    }
    written.add(input.externalId);
    if (!input.cancelled && options.oneLiveBookingPerStudent) {
      const pair = `${scheduleId}:${memberId}`;
      const joins = !row || row.schedule_id !== scheduleId || row.member_id !== memberId || toBool(row.cancelled);
      const other = live.get(pair);
      // Two live there already (stored before the index of 0014) would stay; none may join them.
      if (other && (joins || other.joins)) {
        // Reported on the item that joins, naming the one already there.
        const [at, by] = joins ? [index, other.index] : [other.index, index];
        throw twice(inputs[at] ?? input, field(at, 'student.lineUserId'), `"${inputs[by]?.externalId ?? ''}" (items[${by}])`);
      }
      if (joins) joining.push({ index, scheduleId, memberId });
      if (!other) live.set(pair, { index, joins });
    }
    if (!row) {
      fresh.push({ input, scheduleId, memberId });
      continue;
    }
    if (row.schedule_id !== scheduleId || row.member_id !== memberId) moved.push(row.id);
    if (row.schedule_id !== scheduleId) rebooked.push(row.id);
    if (!same || isNewerRevision(row.source_revision, input.revision)) {
      // Unchanged but newer still records the revision: a write between the two is older now.
      const joins = !input.cancelled && (row.schedule_id !== scheduleId || row.member_id !== memberId || toBool(row.cancelled));
      updates.push({ id: row.id, scheduleId, memberId, cancelled: input.cancelled, joins, revision: input.revision ?? row.source_revision, updatedAt: same ? null : now });
    }
    results.push({ externalId: input.externalId, id: row.id, outcome: same ? 'unchanged' : 'updated' });
  }
  // Two live bookings of one student in one class would send them every message twice. Checked
  // against the bookings this batch leaves alone (a stale item leaves its booking as stored), to
  // name the booking already there. Two batches booking the same student into the same class at
  // once, under different booking ids, both pass this read; the unique index stops the second
  // writer (see upsertAppointments).
  for (const chunk of chunked(joining)) {
    const clashes = await trx
      .selectFrom('appointments')
      .select(['external_id', 'schedule_id', 'member_id'])
      .where('cancelled', '=', false)
      .where((eb) => eb(eb.refTuple('schedule_id', 'member_id'), 'in', chunk.map((j) => eb.tuple(j.scheduleId, j.memberId))))
      .execute();
    for (const clash of clashes) {
      if (written.has(clash.external_id)) continue;
      const j = chunk.find((c) => c.scheduleId === clash.schedule_id && c.memberId === clash.member_id);
      const input = j && inputs[j.index];
      if (j && input) throw twice(input, field(j.index, 'student.lineUserId'), `"${clash.external_id}"`);
    }
  }
  await updateAppointments(trx, updates);
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
  if (changed.length) touched.push(...(await syncDeliveries(trx, clock, rules, { appointmentIds: changed, movedAppointmentIds: moved, rebookedAppointmentIds: rebooked })));
  const order = new Map(inputs.map((input, i) => [input.externalId, i]));
  return results.sort((a, b) => (order.get(a.externalId) ?? 0) - (order.get(b.externalId) ?? 0));
}

/** A second live booking of one student in one class: 409 naming the booking that has them already. */
function twice(input: AppointmentInput, field: string, existing: string): DomainError {
  return conflict(
    `${field}: student ${input.student.lineUserId} is already booked into class "${input.scheduleExternalId}" by booking ${existing}; cancel or move that booking first (one live booking per student and class)`,
    field,
  );
}

interface AppointmentUpdate {
  id: number;
  scheduleId: number;
  memberId: number;
  cancelled: boolean;
  /** Becomes live in a (class, student) it was not live in: moved there, or no longer cancelled. */
  joins: boolean;
  revision: number | null;
  /** null: unchanged (only a newer revision recorded), updated_at stays. */
  updatedAt: Date | null;
}

/**
 * Writes many bookings in one statement: a bulk move of thousands was a round trip each. Both
 * dialects check the unique index over live bookings row by row, in no set order, so bookings
 * trading places (a1 from c1 to c2, a2 from c2 to c1, one student) would clash half-way. The ones
 * joining a (class, student) are written cancelled first, and made live once every booking leaving
 * has left (after all chunks).
 */
async function updateAppointments(trx: Db, updates: readonly AppointmentUpdate[]): Promise<void> {
  for (const rows of chunked(updates)) {
    const v = valuesTable(
      trx,
      [['id', 'id'], ['schedule_id', 'id'], ['member_id', 'id'], ['cancelled', 'flag'], ['revision', 'id'], ['updated_at', 'instant']],
      rows.map((r) => [r.id, r.scheduleId, r.memberId, r.cancelled || r.joins, r.revision, r.updatedAt]),
    );
    await sql`
      update appointments set schedule_id = v.schedule_id, member_id = v.member_id, cancelled = v.cancelled, source_revision = v.revision,
        updated_at = coalesce(v.updated_at, appointments.updated_at)
      from ${v}
      where appointments.id = v.id`.execute(trx);
  }
  for (const joining of chunked(updates.filter((r) => r.joins).map((r) => r.id))) await trx.updateTable('appointments').set({ cancelled: false }).where('id', 'in', joining).execute();
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
