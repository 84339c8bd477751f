import { sql, type Expression, type ExpressionBuilder, type Selectable, type SqlBool } from 'kysely';
import { dialectOf, type Db } from '../db/database.ts';
import { toBool, toDate, toOptionalDate } from '../db/row.ts';
import type { MeetingState, Tables, ZoomAccountsTable } from '../db/tables.ts';
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
  /** That refusal was of the account's credentials: any of its hosts working again clears it. */
  refusedAccountWide: boolean;
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
    refusedAccountWide: toBool(row.refused_account_wide),
  };
}

export interface HeldWindow {
  scheduleId: number;
  start: Date;
  end: Date;
  /** Held by a meeting a re-host replaced, live on this host until its DELETE succeeds. */
  replaced: boolean;
}

/**
 * What holds a host between `from` and `to`: a class's own window while its meeting is live or being
 * made, and a replaced meeting's window until its DELETE succeeds (it is live on that host). One
 * definition for the pass's snapshot (`reservedWindows`) and the check under the lock (`reserveHost`),
 * so the two never disagree. `hostId`: on that host only; `except`: not this class's own window (its
 * replaced one still counts).
 */
function holdsHost(eb: ExpressionBuilder<Tables, 'schedules'>, o: { from: Date; to: Date; hostId?: number; except?: number }): Expression<SqlBool> {
  return eb.or([
    eb.and([
      o.hostId === undefined ? eb('meeting_account_id', 'is not', null) : eb('meeting_account_id', '=', o.hostId),
      ...(o.except === undefined ? [] : [eb('id', '<>', o.except)]),
      eb('meeting_state', 'in', HOLDING_STATES),
      eb('host_window_start', '<', o.to),
      eb('host_window_end', '>', o.from),
    ]),
    eb.and([
      eb('replaced_meeting_id', 'is not', null),
      ...(o.hostId === undefined ? [] : [eb('replaced_meeting_account_id', '=', o.hostId)]),
      eb('replaced_window_start', '<', o.to),
      eb('replaced_window_end', '>', o.from),
    ]),
  ]);
}

/** Host windows reserved between `from` and `to`, per host, with those of replaced meetings not yet deleted. */
export async function reservedWindows(db: Db, from: Date, to: Date): Promise<Map<number, HeldWindow[]>> {
  // One read (the pass's snapshot), both kinds of hold; each is checked again below.
  const rows = await db
    .selectFrom('schedules')
    .select(['id', 'meeting_state', 'meeting_account_id', 'host_window_start', 'host_window_end', 'replaced_meeting_id', 'replaced_meeting_account_id', 'replaced_window_start', 'replaced_window_end'])
    .where((eb) => holdsHost(eb, { from, to }))
    .execute();
  const out = new Map<number, HeldWindow[]>();
  const hold = (hostId: number | null, scheduleId: number, start: Date | string | null, end: Date | string | null, isReplaced: boolean): void => {
    if (hostId === null || start === null || end === null) return;
    const window = { scheduleId, start: toDate(start), end: toDate(end), replaced: isReplaced };
    if (window.start.getTime() >= to.getTime() || window.end.getTime() <= from.getTime()) return;
    out.set(hostId, [...(out.get(hostId) ?? []), window]);
  };
  for (const row of rows) {
    if (HOLDING_STATES.includes(row.meeting_state)) hold(row.meeting_account_id, row.id, row.host_window_start, row.host_window_end, false);
    if (row.replaced_meeting_id !== null) hold(row.replaced_meeting_account_id, row.id, row.replaced_window_start, row.replaced_window_end, true);
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
      // A replaced meeting not yet deleted is live on its host (this class's own too).
      .where((eb) => holdsHost(eb, { from: r.windowStart, to: r.windowEnd, hostId: r.hostId, except: r.scheduleId }))
      .limit(1)
      .executeTakeFirst();
    if (clash) return { result: 'busy' as const };
    const claimed = await trx
      .updateTable('schedules')
      .set((eb) => ({
        meeting_account_id: r.hostId,
        host_window_start: r.windowStart,
        host_window_end: r.windowEnd,
        meeting_state: r.state,
        meeting_attempt_id: r.attemptId,
        meeting_intent_version: r.version,
        meeting_intent_at: r.now,
        meeting_error: null,
        // The old meeting is remembered apart, with its window (still held on its host), until it
        // is deleted once the new one is recorded. Its link, passcode, title and version stay in the
        // meeting columns for a restore (restoreReplaced) if no new meeting is made; no link goes out
        // meanwhile, as meeting_version is not the class's.
        ...(r.replacing
          ? {
              replaced_meeting_id: r.replacing.meetingId,
              replaced_meeting_account_id: r.replacing.hostId,
              replaced_window_start: eb.ref('host_window_start').$castTo<Date | null>(),
              replaced_window_end: eb.ref('host_window_end').$castTo<Date | null>(),
              replaced_attempts: 0,
              replaced_retry_at: null,
              meeting_id: null,
            }
          : {}),
        updated_at: r.now,
      }))
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
 * Refused hosts are tried again each pass: `refused_at` keeps the first refusal (since when).
 */
export async function markHostsRefused(db: Db, hostIds: readonly number[], reason: string, now: Date, accountWide = false): Promise<void> {
  if (hostIds.length === 0) return;
  await db
    .updateTable('zoom_accounts')
    .set({ refused_reason: reason, refused_at: sql<Date>`coalesce(refused_at, ${now})`, refused_account_wide: accountWide, updated_at: now })
    .where('id', 'in', hostIds)
    .execute();
}

/**
 * A call on a host succeeded: whatever Zoom refused it before works again, and so do the account's
 * credentials, so a refusal of them is cleared on its other hosts too (those with no work would never learn).
 */
export async function clearHostRefused(db: Db, hostId: number, now: Date, accountId?: string): Promise<void> {
  await db
    .updateTable('zoom_accounts')
    .set({ refused_reason: null, refused_at: null, refused_account_wide: false, updated_at: now })
    .where('refused_reason', 'is not', null)
    .where((eb) => eb.or([eb('id', '=', hostId), ...(accountId === undefined ? [] : [eb.and([eb('account_id', '=', accountId), eb('refused_account_wide', '=', true)])])]))
    .execute();
}

/** Zoom refused `hosts` for good (one host, or all the account's for its credentials): kept in the pass's pool and on the hosts. */
export async function noteRefused(db: Db, hosts: readonly PoolHost[], reason: string, accountWide: boolean, now: Date): Promise<void> {
  for (const h of hosts) Object.assign(h, { refusedReason: reason, refusedAccountWide: accountWide });
  await markHostsRefused(db, [...new Set(hosts.map((h) => h.id))], reason, now, accountWide);
}

/**
 * A call on `host` worked: its refusal is cleared, and a refusal of its account's credentials on the
 * pool's other hosts of the account (one write, only when something is marked). True if it cleared any.
 */
export async function noteWorks(db: Db, pool: readonly PoolHost[], host: PoolHost, now: Date): Promise<boolean> {
  const siblings = pool.filter((h) => h.refusedAccountWide && h.creds.accountId === host.creds.accountId);
  if (host.refusedReason === null && siblings.length === 0) return false;
  for (const h of [host, ...siblings]) Object.assign(h, { refusedReason: null, refusedAccountWide: false });
  await clearHostRefused(db, host.id, now, host.creds.accountId);
  return true;
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

