import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * Claim indexes that let a claim stop after its page, on the rows that can be claimed only. At the
 * 20:00 peak every delivery falls due at the same instant, so the index on (state, available_at)
 * still left the database sorting all of them by id for each page, and the "pending or lease
 * expired" OR read the whole table: 40-55 ms a claim on PostgreSQL. Now pending rows are walked in
 * (available_at, id) order and the walk stops at the page size; expired leases are found among the
 * rows being sent. Both indexes are partial: the sent and expired history (most of the table after a
 * few weeks) is in neither, so they stay small and hot, and a delivery leaves them as it is sent.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema.createIndex('deliveries_pending').on('deliveries').columns(['available_at', 'id']).where(sql.ref('state'), '=', 'pending').execute();
  await db.schema.createIndex('deliveries_leased').on('deliveries').columns(['lease_expires_at', 'id']).where(sql.ref('state'), '=', 'sending').execute();
  await db.schema.dropIndex('deliveries_claimable').execute();
}
