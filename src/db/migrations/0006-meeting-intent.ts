import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * What a meeting intent was recorded for: the schedule version and the instant. Recovery after a
 * crash stamps an adopted meeting with the version Zoom has (the class may have moved since), and
 * trusts an empty host listing only once the intent is old enough (Zoom's listing may lag a create).
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const instant = dialect === 'postgres' ? sql`timestamptz` : sql`text`;
  await db.schema.alterTable('schedules').addColumn('meeting_intent_version', 'integer').execute();
  await db.schema.alterTable('schedules').addColumn('meeting_intent_at', instant).execute();
}
