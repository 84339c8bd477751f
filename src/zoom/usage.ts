import { sql } from 'kysely';
import type { Db } from '../db/database.ts';

/** Counts one API request of `category` for a Zoom account on `day` (persisted: replicas share it). */
export async function recordAccountUsage(db: Db, accountId: string, day: string, category: string): Promise<void> {
  await db
    .insertInto('zoom_account_usage')
    .values({ account_id: accountId, day, category, count: 1 })
    .onConflict((oc) => oc.columns(['account_id', 'day', 'category']).doUpdateSet({ count: sql`zoom_account_usage.count + 1` }))
    .execute();
}

/** account id → category → requests on `day`. */
export async function accountUsageOn(db: Db, day: string): Promise<Map<string, Record<string, number>>> {
  const rows = await db.selectFrom('zoom_account_usage').selectAll().where('day', '=', day).execute();
  const out = new Map<string, Record<string, number>>();
  for (const row of rows) out.set(row.account_id, { ...(out.get(row.account_id) ?? {}), [row.category]: Number(row.count) });
  return out;
}

/** host (pool entry id) → meeting creates/updates on `day`. */
export async function hostWritesOn(db: Db, day: string): Promise<Map<number, number>> {
  const rows = await db.selectFrom('zoom_host_usage').selectAll().where('day', '=', day).execute();
  return new Map(rows.map((r) => [r.zoom_account_id, Number(r.meeting_writes)]));
}

/**
 * Spends one meeting write of a host's daily budget, atomically: false (and nothing written) when
 * `cap` is already reached. Concurrent callers on any replica cannot overspend.
 */
export async function spendHostWrite(db: Db, hostId: number, day: string, cap: number): Promise<boolean> {
  const row = await db
    .insertInto('zoom_host_usage')
    .values({ zoom_account_id: hostId, day, meeting_writes: 1 })
    .onConflict((oc) =>
      oc
        .columns(['zoom_account_id', 'day'])
        .doUpdateSet({ meeting_writes: sql`zoom_host_usage.meeting_writes + 1` })
        .where(sql<boolean>`zoom_host_usage.meeting_writes < ${cap}`),
    )
    .returning('meeting_writes')
    .executeTakeFirst();
  return row !== undefined;
}
