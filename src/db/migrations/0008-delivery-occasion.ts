import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * The class times a meeting or feedback link was made for (its occasion). A message already sent
 * is owed again only when its class moved; comparing due times alone could not tell a class moved
 * from lead times changed in the settings, and re-sent a link already delivered.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const instant = dialect === 'postgres' ? sql`timestamptz` : sql`text`;
  await db.schema.alterTable('deliveries').addColumn('class_starts_at', instant).execute();
  await db.schema.alterTable('deliveries').addColumn('class_ends_at', instant).execute();
  // Only rows still useful (history of past classes is left alone: rewriting years of it would hold
  // the table for minutes), and only those made for the class as it is now: for the others the
  // occasion is unknown (null), and the rule falls back to comparing versions and due times.
  const current = (column: string) =>
    sql`(select s.${sql.ref(column)} from appointments a join schedules s on s.id = a.schedule_id where a.id = deliveries.appointment_id and s.version = deliveries.schedule_version)`;
  const now = dialect === 'postgres' ? sql`now()` : sql`strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`;
  await sql`update deliveries set class_starts_at = ${current('starts_at')}, class_ends_at = ${current('ends_at')} where kind in ('meeting_url', 'feedback_url') and not_after > ${now}`.execute(db);
}
