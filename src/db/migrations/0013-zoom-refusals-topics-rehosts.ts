import { sql, type Kysely, type RawBuilder } from 'kysely';
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
 * so a race for the new host never leaves a class without a meeting; until its DELETE succeeds
 * (a failure, a crash in between) the old meeting is remembered here and deleted by a later pass.
 *
 * Only adds what is missing, so running it again (a stop before its record was written) is harmless.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const instant = dialect === 'postgres' ? sql`timestamptz` : sql`text`;
  const add = async (table: string, column: string, type: RawBuilder<unknown>): Promise<void> => {
    const existing =
      dialect === 'postgres'
        ? await sql<{ n: string }>`select count(*) as n from information_schema.columns where table_schema = current_schema() and table_name = ${table} and column_name = ${column}`.execute(db)
        : await sql<{ n: string }>`select count(*) as n from pragma_table_info(${table}) where name = ${column}`.execute(db);
    if (Number(existing.rows[0]?.n ?? 0) === 0) await db.schema.alterTable(table).addColumn(column, type).execute();
  };
  await add('zoom_accounts', 'refused_reason', sql`text`);
  await add('zoom_accounts', 'refused_at', instant);
  await add('schedules', 'meeting_title', sql`text`);
  await add('schedules', 'replaced_meeting_id', sql`text`);
  await add('schedules', 'replaced_meeting_account_id', sql`integer`);
  await sql`update schedules set meeting_title = title where meeting_id is not null and meeting_title is null`.execute(db);
}
