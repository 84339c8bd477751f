import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * Tries of a LINE webhook event that could not be applied, and when the next may start: kept in the
 * row, so a restart or another replica continues the count and the backoff instead of starting over.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  await db.schema.alterTable('line_events').addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('line_events').addColumn('available_at', dialect === 'postgres' ? sql`timestamptz` : sql`text`).execute();
}
