import { sql, type ColumnDefinitionBuilder, type CreateTableBuilder, type Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/** The whole mission's data model. Column types differ by dialect only through `t`. */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const t = {
    instant: pg ? sql`timestamptz` : sql`text`,
    flag: pg ? sql`boolean` : sql`integer`,
    json: pg ? sql`jsonb` : sql`text`,
    count: pg ? sql`bigint` : sql`integer`,
    ref: pg ? sql`bigint` : sql`integer`,
  };
  const id = <T extends string>(table: CreateTableBuilder<T, never>): CreateTableBuilder<T, 'id'> =>
    pg
      ? table.addColumn('id', 'bigint', (c) => c.primaryKey().generatedByDefaultAsIdentity())
      : table.addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement());
  const stamps = <T extends string, C extends string>(table: CreateTableBuilder<T, C>) =>
    table.addColumn('created_at', t.instant, (c) => c.notNull()).addColumn('updated_at', t.instant, (c) => c.notNull());
  const falseFlag = (c: ColumnDefinitionBuilder) => c.notNull().defaultTo(pg ? sql`false` : sql`0`);
  const trueFlag = (c: ColumnDefinitionBuilder) => c.notNull().defaultTo(pg ? sql`true` : sql`1`);

  await stamps(
    id(db.schema.createTable('zoom_accounts'))
      .addColumn('label', 'text', (c) => c.notNull().unique())
      .addColumn('plan', 'text', (c) => c.notNull().check(sql`plan in ('licensed', 'basic')`))
      .addColumn('account_id', 'text', (c) => c.notNull())
      .addColumn('client_id', 'text', (c) => c.notNull())
      .addColumn('client_secret', 'text', (c) => c.notNull())
      .addColumn('host_user_id', 'text', (c) => c.notNull())
      .addColumn('webhook_secret_token', 'text')
      .addColumn('enabled', t.flag, trueFlag)
      .addColumn('exhausted_until', t.instant),
  )
    .addUniqueConstraint('zoom_accounts_host_unique', ['account_id', 'host_user_id'])
    .execute();

  await db.schema
    .createTable('zoom_account_usage')
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('day', 'text', (c) => c.notNull())
    .addColumn('category', 'text', (c) => c.notNull())
    .addColumn('count', t.count, (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('zoom_account_usage_pk', ['account_id', 'day', 'category'])
    .execute();

  await db.schema
    .createTable('zoom_host_usage')
    .addColumn('zoom_account_id', t.ref, (c) => c.notNull().references('zoom_accounts.id').onDelete('cascade'))
    .addColumn('day', 'text', (c) => c.notNull())
    .addColumn('meeting_writes', t.count, (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('zoom_host_usage_pk', ['zoom_account_id', 'day'])
    .execute();

  await stamps(
    id(db.schema.createTable('line_channels'))
      .addColumn('label', 'text', (c) => c.notNull().unique())
      .addColumn('slug', 'text', (c) => c.notNull().unique())
      .addColumn('channel_id', 'text', (c) => c.notNull().unique())
      .addColumn('channel_secret', 'text', (c) => c.notNull())
      .addColumn('channel_access_token', 'text', (c) => c.notNull())
      .addColumn('bot_user_id', 'text')
      .addColumn('enabled', t.flag, trueFlag)
      .addColumn('paused_until', t.instant)
      .addColumn('pause_reason', 'text'),
  ).execute();

  await stamps(
    id(db.schema.createTable('members'))
      .addColumn('channel_id', t.ref, (c) => c.notNull().references('line_channels.id').onDelete('restrict'))
      .addColumn('line_user_id', 'text', (c) => c.notNull())
      .addColumn('display_name', 'text')
      .addColumn('following', 'text', (c) =>
        c.notNull().defaultTo('unknown').check(sql`following in ('unknown', 'following', 'unfollowed')`),
      )
      .addColumn('following_changed_at', t.instant),
  )
    .addUniqueConstraint('members_channel_user_unique', ['channel_id', 'line_user_id'])
    .execute();

  await id(db.schema.createTable('line_events'))
    .addColumn('channel_id', t.ref, (c) => c.notNull().references('line_channels.id').onDelete('restrict'))
    .addColumn('webhook_event_id', 'text', (c) => c.notNull().unique())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('line_user_id', 'text')
    .addColumn('event_at', t.instant, (c) => c.notNull())
    .addColumn('payload', t.json, (c) => c.notNull())
    .addColumn('received_at', t.instant, (c) => c.notNull())
    .addColumn('processed_at', t.instant)
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('line_events_unprocessed').on('line_events').columns(['processed_at', 'id']).execute();

  await stamps(
    id(db.schema.createTable('schedules'))
      .addColumn('external_id', 'text', (c) => c.notNull().unique())
      .addColumn('title', 'text', (c) => c.notNull())
      .addColumn('starts_at', t.instant, (c) => c.notNull())
      .addColumn('ends_at', t.instant, (c) => c.notNull())
      .addColumn('trial', t.flag, falseFlag)
      .addColumn('min_participants', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('feedback_url', 'text')
      .addColumn('cancelled', t.flag, falseFlag)
      .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('meeting_state', 'text', (c) => c.notNull().defaultTo('none'))
      .addColumn('meeting_account_id', t.ref, (c) => c.references('zoom_accounts.id').onDelete('set null'))
      .addColumn('meeting_id', 'text')
      .addColumn('meeting_uuid', 'text')
      .addColumn('join_url', 'text')
      .addColumn('start_url', 'text')
      .addColumn('passcode', 'text')
      .addColumn('meeting_version', 'integer')
      .addColumn('meeting_attempt_id', 'text')
      .addColumn('meeting_error', 'text')
      .addCheckConstraint('schedules_ends_after_start', sql`ends_at > starts_at`),
  ).execute();
  await db.schema.createIndex('schedules_starts_at').on('schedules').columns(['starts_at']).execute();
  await db.schema.createIndex('schedules_meeting_account').on('schedules').columns(['meeting_account_id', 'starts_at']).execute();

  await stamps(
    id(db.schema.createTable('appointments'))
      .addColumn('external_id', 'text', (c) => c.notNull().unique())
      .addColumn('schedule_id', t.ref, (c) => c.notNull().references('schedules.id').onDelete('restrict'))
      .addColumn('member_id', t.ref, (c) => c.notNull().references('members.id').onDelete('restrict'))
      .addColumn('cancelled', t.flag, falseFlag),
  ).execute();
  await db.schema.createIndex('appointments_schedule').on('appointments').columns(['schedule_id']).execute();
  await db.schema.createIndex('appointments_member').on('appointments').columns(['member_id']).execute();

  await stamps(
    id(db.schema.createTable('deliveries'))
      .addColumn('appointment_id', t.ref, (c) => c.notNull().references('appointments.id').onDelete('restrict'))
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('due_at', t.instant, (c) => c.notNull())
      .addColumn('not_after', t.instant, (c) => c.notNull())
      .addColumn('available_at', t.instant, (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull().defaultTo('pending'))
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('lease_owner', 'text')
      .addColumn('lease_expires_at', t.instant)
      .addColumn('lease_token', 'text')
      .addColumn('retry_key', 'text', (c) => c.notNull().unique())
      .addColumn('schedule_version', 'integer', (c) => c.notNull())
      .addColumn('sent_at', t.instant)
      .addColumn('line_request_id', 'text')
      .addColumn('last_error', 'text'),
  )
    .addUniqueConstraint('deliveries_appointment_kind_unique', ['appointment_id', 'kind'])
    .execute();
  await db.schema.createIndex('deliveries_claimable').on('deliveries').columns(['state', 'available_at']).execute();

  await id(db.schema.createTable('meeting_events'))
    .addColumn('account_id', 'text', (c) => c.notNull())
    .addColumn('event_key', 'text', (c) => c.notNull().unique())
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('meeting_id', 'text')
    .addColumn('meeting_uuid', 'text')
    .addColumn('event_at', t.instant, (c) => c.notNull())
    .addColumn('payload', t.json, (c) => c.notNull())
    .addColumn('received_at', t.instant, (c) => c.notNull())
    .addColumn('processed_at', t.instant)
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('meeting_events_meeting').on('meeting_events').columns(['meeting_id']).execute();

  await stamps(
    id(db.schema.createTable('recordings'))
      .addColumn('schedule_id', t.ref, (c) => c.references('schedules.id').onDelete('set null'))
      .addColumn('meeting_id', 'text', (c) => c.notNull())
      .addColumn('meeting_uuid', 'text', (c) => c.notNull())
      .addColumn('file_id', 'text', (c) => c.notNull().unique())
      .addColumn('file_type', 'text', (c) => c.notNull())
      .addColumn('file_size', t.count)
      .addColumn('storage_key', 'text')
      .addColumn('checksum_sha256', 'text')
      .addColumn('state', 'text', (c) => c.notNull().defaultTo('pending'))
      .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
      .addColumn('last_error', 'text'),
  ).execute();

  await db.schema
    .createTable('meta')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
}
