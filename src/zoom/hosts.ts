import { sql, type Selectable } from 'kysely';
import { dialectOf, type Db } from '../db/database.ts';
import { toDate, toOptionalDate } from '../db/row.ts';
import type { MeetingState, ZoomAccountsTable } from '../db/tables.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { ZoomPlan } from './accounts.ts';
import type { ZoomCredentials } from './tokens.ts';
import { spendHostWrite } from './usage.ts';

/** Meeting states that hold a host's time: the meeting exists (or may exist) on Zoom. */
export const HOLDING_STATES: MeetingState[] = ['creating', 'ready', 'updating', 'deleting'];

export interface PoolHost {
  id: number;
  label: string;
  plan: ZoomPlan;
  hostUserId: string;
  creds: ZoomCredentials;
  exhaustedUntil: Date | null;
  lastAssignedAt: Date | null;
  /** Why Zoom last refused this host for good (null: it was not, or it worked since). */
  refusedReason: string | null;
}

/** A pool entry left out of the pass, and why (shown in the no-capacity reason). */
export interface UnusableHost {
  id: number;
  label: string;
  reason: string;
}

/**
 * The enabled pool, read from the DB on every provisioning pass: hosts added or disabled through the
 * API or CLI take part from the next pass, with no restart. Each host is decrypted on its own, so one
 * row that cannot be read (a rotated key, a damaged value) leaves that host out, not the whole pool.
 */
export async function loadPool(db: Db, box: SecretBox): Promise<{ hosts: PoolHost[]; unusable: UnusableHost[] }> {
  const rows = await db.selectFrom('zoom_accounts').selectAll().where('enabled', '=', true).orderBy('id').execute();
  const hosts: PoolHost[] = [];
  const unusable: UnusableHost[] = [];
  for (const row of rows) {
    try {
      hosts.push(toPoolHost(row, box));
    } catch (error) {
      unusable.push({ id: row.id, label: row.label, reason: `its client secret cannot be decrypted (${error instanceof Error ? error.message : String(error)}); set it again` });
    }
  }
  return { hosts, unusable };
}

/** One host, enabled or not: an intent on a host disabled since must still be looked up there. */
export async function loadHost(db: Db, box: SecretBox, id: number): Promise<PoolHost | undefined> {
  const row = await db.selectFrom('zoom_accounts').selectAll().where('id', '=', id).executeTakeFirst();
  return row ? toPoolHost(row, box) : undefined;
}

function toPoolHost(row: Selectable<ZoomAccountsTable>, box: SecretBox): PoolHost {
  return {
    id: row.id,
    label: row.label,
    plan: row.plan,
    hostUserId: row.host_user_id,
    creds: { accountId: row.account_id, clientId: row.client_id, clientSecret: box.decrypt(row.client_secret, 'zoom_accounts.client_secret') },
    exhaustedUntil: toOptionalDate(row.exhausted_until),
    lastAssignedAt: toOptionalDate(row.last_assigned_at),
    refusedReason: row.refused_reason,
  };
}

/** Host windows reserved between `from` and `to`, per host. */
export async function reservedWindows(db: Db, from: Date, to: Date): Promise<Map<number, { scheduleId: number; start: Date; end: Date }[]>> {
  const rows = await db
    .selectFrom('schedules')
    .select(['id', 'meeting_account_id', 'host_window_start', 'host_window_end'])
    .where('meeting_account_id', 'is not', null)
    .where('meeting_state', 'in', HOLDING_STATES)
    .where('host_window_start', '<', to)
    .where('host_window_end', '>', from)
    .execute();
  const out = new Map<number, { scheduleId: number; start: Date; end: Date }[]>();
  for (const row of rows) {
    if (row.meeting_account_id === null || row.host_window_start === null || row.host_window_end === null) continue;
    const list = out.get(row.meeting_account_id) ?? [];
    list.push({ scheduleId: row.id, start: toDate(row.host_window_start), end: toDate(row.host_window_end) });
    out.set(row.meeting_account_id, list);
  }
  return out;
}

export interface Reservation {
  scheduleId: number;
  hostId: number;
  windowStart: Date;
  windowEnd: Date;
  /** UTC day (`hostWriteDay`) of the meeting write this reservation spends: Zoom resets it at 00:00 UTC. */
  day: string;
  writeCap: number;
  leaseOwner: string;
  attemptId: string;
  version: number;
  /** The state to move to: `creating` (new meeting) or `updating` (move an existing one). */
  state: 'creating' | 'updating';
  now: Date;
  /** A re-host: the class's meeting on its old host, remembered to be deleted once this host is reserved. */
  replacing?: { meetingId: string; hostId: number };
}

export type ReservationResult = { result: 'reserved'; assignedAt: Date } | { result: 'busy' } | { result: 'write_budget' } | { result: 'lease_lost' };

/**
 * Gives a schedule a host, inside one transaction, so two workers or replicas can never give a host
 * overlapping meetings: the host row is locked (PostgreSQL; SQLite serialises writers), the overlap
 * is checked again under the lock, a meeting write is spent from the host's daily budget, and the
 * intent (state, host, window, attempt id) is recorded before any call to Zoom.
 */
export async function reserveHost(db: Db, r: Reservation): Promise<ReservationResult> {
  return db.transaction().execute(async (trx) => {
    if (dialectOf(trx) === 'postgres') {
      await trx.selectFrom('zoom_accounts').select('id').where('id', '=', r.hostId).forUpdate().execute();
    }
    const clash = await trx
      .selectFrom('schedules')
      .select('id')
      .where('meeting_account_id', '=', r.hostId)
      .where('id', '<>', r.scheduleId)
      .where('meeting_state', 'in', HOLDING_STATES)
      .where('host_window_start', '<', r.windowEnd)
      .where('host_window_end', '>', r.windowStart)
      .limit(1)
      .executeTakeFirst();
    if (clash) return { result: 'busy' as const };
    const claimed = await trx
      .updateTable('schedules')
      .set({
        meeting_account_id: r.hostId,
        host_window_start: r.windowStart,
        host_window_end: r.windowEnd,
        meeting_state: r.state,
        meeting_attempt_id: r.attemptId,
        meeting_intent_version: r.version,
        meeting_intent_at: r.now,
        meeting_error: null,
        // The old meeting is remembered apart until deleted; the meeting columns are for the new one.
        ...(r.replacing
          ? { replaced_meeting_id: r.replacing.meetingId, replaced_meeting_account_id: r.replacing.hostId, meeting_id: null, meeting_uuid: null, join_url: null, start_url: null, passcode: null, meeting_title: null }
          : {}),
        updated_at: r.now,
      })
      .where('id', '=', r.scheduleId)
      .where('meeting_lease_owner', '=', r.leaseOwner)
      .where('version', '=', r.version)
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) !== 1) return { result: 'lease_lost' as const };
    if (!(await spendHostWrite(trx, r.hostId, r.day, r.writeCap))) {
      // Throwing rolls the intent back with the spend.
      throw new BudgetSpent();
    }
    // Strictly increasing stamps keep round-robin order even when several assignments share an instant.
    const latest = await trx.selectFrom('zoom_accounts').select((eb) => eb.fn.max('last_assigned_at').as('at')).executeTakeFirst();
    const previous = latest?.at ? new Date(latest.at).getTime() : -Infinity;
    const assignedAt = new Date(Math.max(r.now.getTime(), previous + 1));
    await trx.updateTable('zoom_accounts').set({ last_assigned_at: assignedAt }).where('id', '=', r.hostId).execute();
    return { result: 'reserved' as const, assignedAt };
  }).catch((error: unknown) => {
    if (error instanceof BudgetSpent) return { result: 'write_budget' as const };
    throw error;
  });
}

class BudgetSpent extends Error {}

export async function markHostExhausted(db: Db, hostId: number, until: Date, now: Date): Promise<void> {
  await db.updateTable('zoom_accounts').set({ exhausted_until: until, updated_at: now }).where('id', '=', hostId).execute();
}

/**
 * Zoom refused these hosts for good: the reason is kept on the hosts themselves, so the pool's
 * listing shows why a host is out (the classes it refused go to other hosts and do not say).
 */
export async function markHostsRefused(db: Db, hostIds: readonly number[], reason: string, now: Date): Promise<void> {
  if (hostIds.length === 0) return;
  await db.updateTable('zoom_accounts').set({ refused_reason: reason, refused_at: now, updated_at: now }).where('id', 'in', hostIds).execute();
}

/** A call on a host succeeded: whatever Zoom refused before works again. */
export async function clearHostRefused(db: Db, hostId: number, now: Date): Promise<void> {
  await db.updateTable('zoom_accounts').set({ refused_reason: null, refused_at: null, updated_at: now }).where('id', '=', hostId).where('refused_reason', 'is not', null).execute();
}

/** Counts of schedules by flag for metrics; cheap enough per pass. */
export async function countNoCapacity(db: Db, from: Date, to: Date): Promise<number> {
  const row = await db
    .selectFrom('schedules')
    .select(sql<number>`count(*)`.as('n'))
    .where('meeting_state', '=', 'no_capacity')
    .where('cancelled', '=', false)
    .where('starts_at', '>=', from)
    .where('starts_at', '<', to)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

