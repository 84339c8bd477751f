import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * Drops the unique index on `deliveries.retry_key` on PostgreSQL. Nothing looks a delivery up by its
 * key (a fresh random UUID), and PostgreSQL adds an index entry to every index on each update that
 * changes an indexed column, as the claim and the completion both do (`state` is in the claim
 * indexes' predicates). For a unique index each such insert also checks the row's older versions, on
 * a random leaf page: measured on 100,000 claims and completions, this one index doubled the cost of
 * both. SQLite only touches the indexes whose columns an update changes, so it keeps its index (and
 * dropping it there would mean rebuilding the table).
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  if (dialect === 'postgres') await sql`alter table deliveries drop constraint deliveries_retry_key_key`.execute(db);
}
