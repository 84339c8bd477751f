import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * Meeting provisioning: the host window a meeting reserves (overlap checks), a lease on the
 * schedule's meeting work (so replicas and overlapping runs never work one schedule twice), retry
 * bookkeeping, and a per-host "last assigned" stamp for round-robin that survives restarts.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const instant = dialect === 'postgres' ? sql`timestamptz` : sql`text`;
  const columns: [string, ReturnType<typeof sql>, boolean][] = [
    ['host_window_start', instant, false],
    ['host_window_end', instant, false],
    ['meeting_lease_owner', sql`text`, false],
    ['meeting_lease_expires_at', instant, false],
    ['meeting_attempts', sql`integer`, true],
    ['meeting_retry_at', instant, false],
  ];
  for (const [name, type, zeroDefault] of columns) {
    await db.schema
      .alterTable('schedules')
      .addColumn(name, type, (c) => (zeroDefault ? c.notNull().defaultTo(0) : c))
      .execute();
  }
  await db.schema.alterTable('zoom_accounts').addColumn('last_assigned_at', instant).execute();
  await db.schema.createIndex('schedules_host_window').on('schedules').columns(['meeting_account_id', 'host_window_start', 'host_window_end']).execute();
  await db.schema.createIndex('schedules_meeting_state').on('schedules').columns(['meeting_state', 'starts_at']).execute();
}
