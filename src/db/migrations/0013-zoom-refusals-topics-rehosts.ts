import { sql, type ColumnDefinitionBuilder, type Kysely, type RawBuilder } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * Why Zoom refuses a pool host for good (user gone 1001, not allowed to host 3161, credentials or
 * permissions refused 401/403), and since when, kept on the host itself so an operator listing the
 * pool sees why a host is out; cleared when a call on it succeeds again.
 *
 * The class title a meeting's topic was made from (`schedules.meeting_title`): a title change does
 * not bump the schedule version (that would re-time deliveries), so the provisioner compares this
 * with `title` to PATCH the topic. Meetings made before are taken as made from their current title.
 *
 * The meeting a re-host replaces (`schedules.replaced_meeting_id`, on host
 * `replaced_meeting_account_id`): the new host is reserved first and the old meeting deleted after,
 * so a race for the new host never leaves a class without a meeting; it is deleted only once the
 * new meeting is recorded, and until its DELETE succeeds (a failure, a crash in between) it is
 * remembered here with its host window (`replaced_window_*`, still held on its host: the meeting is
 * live there) and its own backoff (`replaced_attempts`, `replaced_retry_at`), so the class's other
 * work never waits for it. `zoom_accounts.refused_account_wide`: the refusal was of the account's
 * credentials, so a success on any of its hosts clears it on all of them.
 *
 * Backfill of `meeting_title` only for classes not over: a finished class's topic is never updated,
 * and rewriting all history would hold the migration's lock for long (null: unknown, left alone).
 *
 * Only adds what is missing, so running it again (a stop before its record was written) is harmless.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const instant = dialect === 'postgres' ? sql`timestamptz` : sql`text`;
  const add = async (table: string, column: string, type: RawBuilder<unknown>, build?: (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder): Promise<void> => {
    const existing =
      dialect === 'postgres'
        ? await sql<{ n: string }>`select count(*) as n from information_schema.columns where table_schema = current_schema() and table_name = ${table} and column_name = ${column}`.execute(db)
        : await sql<{ n: string }>`select count(*) as n from pragma_table_info(${table}) where name = ${column}`.execute(db);
    if (Number(existing.rows[0]?.n ?? 0) === 0) await db.schema.alterTable(table).addColumn(column, type, build).execute();
  };
  await add('zoom_accounts', 'refused_reason', sql`text`);
  await add('zoom_accounts', 'refused_at', instant);
  await add('schedules', 'meeting_title', sql`text`);
  await add('schedules', 'replaced_meeting_id', sql`text`);
  await add('zoom_accounts', 'refused_account_wide', dialect === 'postgres' ? sql`boolean` : sql`integer`, (c) => c.notNull().defaultTo(dialect === 'postgres' ? sql`false` : sql`0`));
  await add('schedules', 'replaced_meeting_account_id', sql`integer`);
  await add('schedules', 'replaced_window_start', instant);
  await add('schedules', 'replaced_window_end', instant);
  await add('schedules', 'replaced_attempts', sql`integer`, (c) => c.notNull().defaultTo(0));
  await add('schedules', 'replaced_retry_at', instant);
  // A replaced meeting's window is checked with the class windows at every reservation (an OR):
  // without an index of its own that branch would read the whole table. Partial: rarely any rows.
  await db.schema
    .createIndex('schedules_replaced')
    .ifNotExists()
    .on('schedules')
    .columns(['replaced_meeting_account_id', 'replaced_window_start', 'replaced_window_end'])
    .where(sql.ref('replaced_meeting_id'), 'is not', null)
    .execute();
  // The SQLite driver binds a Date as the ISO text instants are stored as; PostgreSQL as a timestamptz.
  await sql`update schedules set meeting_title = title where meeting_id is not null and meeting_title is null and ends_at > ${new Date()}`.execute(db);
}
