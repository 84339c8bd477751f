import { sql, type Selectable } from 'kysely';
import type { Clock } from '../clock.ts';
import { dialectOf, type Db } from '../db/database.ts';
import { dbNow } from '../db/db-clock.ts';
import { inIds, toDate, valuesTable } from '../db/row.ts';
import type { DeliveriesTable, DeliveryKind, DeliveryState } from '../db/tables.ts';

/** A delivery this worker holds a lease on. `leaseToken` fences its completion. */
export interface ClaimedDelivery {
  id: number;
  appointmentId: number;
  kind: DeliveryKind;
  dueAt: Date;
  notAfter: Date;
  attempts: number;
  retryKey: string;
  scheduleVersion: number;
  leaseToken: string;
}

export interface ClaimOptions {
  owner: string;
  /** One token per claim; completion only counts while the row still carries it. */
  token: string;
  leaseMs: number;
  limit: number;
  /** Only these ids (the timing wheel fires specific deliveries). */
  ids?: readonly number[];
  /**
   * A cron tick: what is due by the tick is due at the tick, even if the database's clock is a
   * little behind ours (it would otherwise wait for the next tick, half an hour later).
   */
  dueBy?: Date;
}

/**
 * Claims due deliveries: pending ones whose time has come by the database clock, and ones whose
 * lease expired (their worker died), expired first, then pending oldest first. Each kind is picked
 * on its own index and stops at the page size (`0005-claim-indexes`); one OR over both read the
 * whole table at the peak. On PostgreSQL each pick is `FOR UPDATE SKIP LOCKED`, so replicas take
 * disjoint rows without waiting on each other; rows locked past the page are let go at commit.
 */
export async function claimDue(db: Db, clock: Clock, o: ClaimOptions): Promise<ClaimedDelivery[]> {
  const now = dbNow(db, clock);
  const postgres = dialectOf(db) === 'postgres';
  // The later of the database's now and the tick (a scalar: the pending index still bounds the walk).
  const horizon = o.dueBy ? (postgres ? sql<Date>`greatest(${now}::timestamptz, ${o.dueBy}::timestamptz)` : sql<Date>`max(${now}, ${o.dueBy})`) : now;
  const rows = await db
    .with('expired', (qb) => {
      let pick = qb.selectFrom('deliveries').select('id').where('state', '=', 'sending').where('lease_expires_at', '<=', now);
      if (o.ids) pick = pick.where(inIds(db, 'id', o.ids));
      pick = pick.orderBy('lease_expires_at').orderBy('id').limit(o.limit);
      return postgres ? pick.forUpdate().skipLocked() : pick;
    })
    .with('pending', (qb) => {
      let pick = qb.selectFrom('deliveries').select('id').where('state', '=', 'pending').where('available_at', '<=', horizon);
      if (o.ids) pick = pick.where(inIds(db, 'id', o.ids));
      pick = pick.orderBy('available_at').orderBy('id').limit(o.limit);
      return postgres ? pick.forUpdate().skipLocked() : pick;
    })
    .updateTable('deliveries')
    .set((eb) => ({
      state: 'sending',
      lease_owner: o.owner,
      lease_token: o.token,
      lease_expires_at: dbNow(db, clock, o.leaseMs),
      attempts: eb('attempts', '+', 1),
    }))
    .where('id', 'in', (eb) => eb.selectFrom('expired').select('id').unionAll(eb.selectFrom('pending').select('id')).limit(o.limit))
    .returning(['id', 'appointment_id', 'kind', 'due_at', 'not_after', 'attempts', 'retry_key', 'schedule_version', 'lease_token'])
    .execute();
  return rows.map(toClaimed).sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime() || a.id - b.id);
}

/** What a claim returns: what sending needs, not the whole row (100,000 rows at the peak). */
type ClaimedRow = Pick<Selectable<DeliveriesTable>, 'id' | 'appointment_id' | 'kind' | 'due_at' | 'not_after' | 'attempts' | 'retry_key' | 'schedule_version' | 'lease_token'>;

function toClaimed(row: ClaimedRow): ClaimedDelivery {
  return {
    id: row.id,
    appointmentId: row.appointment_id,
    kind: row.kind,
    dueAt: toDate(row.due_at),
    notAfter: toDate(row.not_after),
    attempts: row.attempts,
    retryKey: row.retry_key,
    scheduleVersion: row.schedule_version,
    leaseToken: row.lease_token ?? '',
  };
}

/** Keeps leases alive while a batch is in flight. */
export async function renewLeases(db: Db, clock: Clock, token: string, leaseMs: number): Promise<void> {
  await db.updateTable('deliveries').set({ lease_expires_at: dbNow(db, clock, leaseMs) }).where('lease_token', '=', token).where('state', '=', 'sending').execute();
}

export type Completion =
  | { state: 'sent'; requestId: string | null; note?: string }
  | { state: 'failed' | 'skipped' | 'expired' | 'cancelled'; reason: string }
  | { state: 'pending'; afterMs: number; reason: string | null; countAttempt?: boolean };

/**
 * Records what became of a claimed delivery, only if our lease still holds (fencing): a worker that
 * stalled past its lease, or whose delivery was re-timed meanwhile, changes nothing.
 */
export async function complete(db: Db, clock: Clock, ids: readonly number[], token: string, c: Completion): Promise<number> {
  if (ids.length === 0) return 0;
  const now = clock.now();
  const release = { lease_owner: null, lease_token: null, lease_expires_at: null, updated_at: now };
  // The token alone fences: it is only ever on a row being sent, and each claim has its own. A state
  // condition as well lets PostgreSQL pick the partial index of rows being sent and filter all of
  // them by token; with a whole peak claimed at once that was 100,000 index entries per write.
  const base = db.updateTable('deliveries').where('id', 'in', ids).where('lease_token', '=', token);
  let result;
  if (c.state === 'sent') {
    result = await base.set({ ...release, state: 'sent', sent_at: now, line_request_id: c.requestId, last_error: c.note ?? null }).executeTakeFirst();
  } else if (c.state === 'pending') {
    result = await base
      .set((eb) => ({
        ...release,
        state: 'pending' as DeliveryState,
        available_at: dbNow(db, clock, c.afterMs),
        last_error: c.reason,
        ...(c.countAttempt === false ? { attempts: eb('attempts', '-', 1) } : {}),
      }))
      .executeTakeFirst();
  } else if (c.state === 'expired') {
    // What kept it from going out is kept, as expireOverdue does: "too late" alone would hide it.
    result = await base.set({ ...release, state: 'expired', last_error: sql<string>`${c.reason} || coalesce(${' (last problem: '} || last_error || ${')'}, ${''})` }).executeTakeFirst();
  } else {
    result = await base.set({ ...release, state: c.state, last_error: c.reason }).executeTakeFirst();
  }
  return Number(result.numUpdatedRows);
}

/**
 * Pending deliveries past their `not_after` become `expired` with a reason (never dropped silently).
 * Returns how many, by kind, for the metric and the log line.
 */
export async function expireOverdue(db: Db, clock: Clock): Promise<Record<string, number>> {
  const now = dbNow(db, clock);
  const rows = await db
    .updateTable('deliveries')
    .set({
      state: 'expired',
      // What went wrong before is kept: "missed" alone would hide a LINE outage, a paused channel or a missing link.
      last_error: sql<string>`case when state = 'sending'
        then ${'missed: the worker sending it stopped and its lease ran out after it stopped being useful (LINE may have received it)'}
        else ${'missed: still unsent when it stopped being useful'} || coalesce(${' (last problem: '} || last_error || ${')'}, ${' (the service was down or behind)'}) end`,
      lease_owner: null,
      lease_token: null,
      lease_expires_at: null,
      updated_at: clock.now(),
    })
    .where((eb) => eb.or([eb('state', '=', 'pending'), eb.and([eb('state', '=', 'sending'), eb('lease_expires_at', '<', now)])]))
    .where('not_after', '<', now)
    .returning('kind')
    .execute();
  const out: Record<string, number> = {};
  for (const r of rows) out[r.kind] = (out[r.kind] ?? 0) + 1;
  return out;
}

/**
 * Graceful shutdown: our unfinished claims go back to pending at once (no waiting for lease expiry).
 * Their attempt stays counted: the request may have been made (a first attempt in a multicast chunk
 * must be resent as that chunk, under its key, never planned into a new one).
 */
export async function releaseClaims(db: Db, owner: string): Promise<number> {
  const result = await db
    .updateTable('deliveries')
    .set({ state: 'pending', lease_owner: null, lease_token: null, lease_expires_at: null })
    .where('lease_owner', '=', owner)
    .where('state', '=', 'sending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/**
 * What the timing wheel preloads, as (id, instant it becomes claimable) before `until`: pending
 * deliveries at their due time, and deliveries being sent at their lease's expiry, so that a dead
 * worker's claims are taken over by the wheel too (a live worker's renewal makes that fire a no-op).
 */
export async function claimableBefore(db: Db, until: Date, afterId = 0, limit = 10_000): Promise<{ id: number; availableAt: Date }[]> {
  const page = (state: 'pending' | 'sending', column: 'available_at' | 'lease_expires_at') =>
    db
      .selectFrom('deliveries')
      .select((eb) => ['id', eb.ref(column).as('at')])
      .where('state', '=', state)
      .where(column, '<', until)
      .where('id', '>', afterId)
      .orderBy('id')
      .limit(limit)
      .execute();
  const pending = await page('pending', 'available_at');
  const leased = await page('sending', 'lease_expires_at');
  // One keyset page over both: up to the smaller of the two last ids when either page is full.
  const full = [pending, leased].filter((rows) => rows.length === limit).map((rows) => rows.at(-1)?.id ?? Infinity);
  const upTo = Math.min(Infinity, ...full);
  return [...pending, ...leased]
    .filter((r) => r.id <= upTo && r.at !== null)
    .sort((a, b) => a.id - b.id)
    .map((r) => ({ id: r.id, availableAt: toDate(r.at ?? '') }));
}

/**
 * Marks many claimed deliveries sent in one statement (each with its own LINE request id), fenced on
 * the lease token like `complete` (and, like it, on the token only). Returns the ids of the rows it
 * changed: those still under this lease.
 */
export async function completeSent(db: Db, clock: Clock, token: string, sent: readonly { id: number; requestId: string | null; note: string | null; sentAt: Date }[]): Promise<number[]> {
  if (sent.length === 0) return [];
  const now = clock.now();
  // sent_at: when LINE accepted each one, not when this write happens.
  const v = valuesTable(db, [['id', 'id'], ['rid', 'text'], ['note', 'text'], ['sent_at', 'instant']], sent.map((s) => [s.id, s.requestId, s.note, s.sentAt]));
  const result = await sql<{ id: number | string }>`
    update deliveries set state = 'sent', sent_at = v.sent_at, line_request_id = v.rid, last_error = v.note,
      lease_owner = null, lease_token = null, lease_expires_at = null, updated_at = ${now}
    from ${v}
    where deliveries.id = v.id and deliveries.lease_token = ${token}
    returning deliveries.id`.execute(db);
  return result.rows.map((r) => Number(r.id));
}
