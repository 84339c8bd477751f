import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * When a finished class's meeting was closed to late students (join before host turned off): a
 * join-before-host meeting can be started by anyone with the link for 30 days, and a student
 * tapping yesterday's link would start it on a pool host and block that host's next class.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  await db.schema.alterTable('schedules').addColumn('meeting_closed_at', dialect === 'postgres' ? sql`timestamptz` : sql`text`).execute();
  // Classes over before this version are left as they were: closing all of them at once would spend
  // the hosts' daily write budgets, which the next classes need, for days.
  await sql`update schedules set meeting_closed_at = host_window_end where host_window_end is not null and host_window_end <= ${dialect === 'postgres' ? sql`now()` : sql`strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`}`.execute(db);
}
