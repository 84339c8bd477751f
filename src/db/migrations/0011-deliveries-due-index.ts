import type { Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * Deliveries by due time, for the operators' list (`GET /api/deliveries`): without it each page read
 * the whole table, history included, and on SQLite that blocks the event loop, the engine too.
 */
export async function up(db: Kysely<unknown>, _dialect: Dialect): Promise<void> {
  await db.schema.createIndex('deliveries_due').on('deliveries').columns(['due_at', 'id']).execute();
}
