import type { Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * The platform's own revision of each class and booking (optional, a number that grows with each
 * change there): a write older than the one stored is ignored, so a delayed or retried PUT cannot
 * move a class back to where it was.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const type = dialect === 'postgres' ? 'bigint' : 'integer';
  await db.schema.alterTable('schedules').addColumn('source_revision', type).execute();
  await db.schema.alterTable('appointments').addColumn('source_revision', type).execute();
}
