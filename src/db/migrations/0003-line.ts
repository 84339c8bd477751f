import { sql, type ColumnDefinitionBuilder, type Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * LINE sending and webhooks: the shared per-channel token buckets, a log of every LINE API call
 * (LINE keeps none for us), multicast chunks whose recipients and retry key are stored before the
 * first attempt, the rendered imagemap images (so every replica serves the same bytes per path,
 * across restarts), and what processing made of each webhook event.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const t = {
    instant: pg ? sql`timestamptz` : sql`text`,
    json: pg ? sql`jsonb` : sql`text`,
    ref: pg ? sql`bigint` : sql`integer`,
    real: pg ? sql`double precision` : sql`real`,
    bytes: pg ? sql`bytea` : sql`blob`,
  };
  const id = (c: ColumnDefinitionBuilder) => (pg ? c.primaryKey().generatedByDefaultAsIdentity() : c.primaryKey().autoIncrement());
  const idType = pg ? 'bigint' : 'integer';

  // applied | stale | superseded | skipped: … | ignored: … (null until processed)
  await db.schema.alterTable('line_events').addColumn('outcome', 'text').execute();

  await db.schema
    .createTable('line_rate_buckets')
    .addColumn('channel_id', t.ref, (c) => c.notNull().references('line_channels.id').onDelete('cascade'))
    .addColumn('endpoint', 'text', (c) => c.notNull())
    .addColumn('tokens', t.real, (c) => c.notNull())
    .addColumn('refilled_at', t.instant, (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('line_rate_buckets_pk', ['channel_id', 'endpoint'])
    .execute();

  await db.schema
    .createTable('line_requests')
    .addColumn('id', idType, id)
    .addColumn('channel_id', t.ref, (c) => c.notNull().references('line_channels.id').onDelete('cascade'))
    .addColumn('endpoint', 'text', (c) => c.notNull())
    .addColumn('retry_key', 'text')
    .addColumn('status', 'integer')
    .addColumn('request_id', 'text')
    .addColumn('accepted_request_id', 'text')
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('started_at', t.instant, (c) => c.notNull())
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('line_requests_retry_key').on('line_requests').columns(['retry_key']).execute();
  await db.schema.createIndex('line_requests_started').on('line_requests').columns(['started_at']).execute();

  await db.schema
    .createTable('line_multicasts')
    .addColumn('id', idType, id)
    .addColumn('channel_id', t.ref, (c) => c.notNull().references('line_channels.id').onDelete('restrict'))
    .addColumn('retry_key', 'text', (c) => c.notNull().unique())
    .addColumn('messages', t.json, (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().defaultTo('pending').check(sql`state in ('pending', 'sent', 'failed')`))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('first_attempt_at', t.instant)
    .addColumn('sent_at', t.instant)
    .addColumn('line_request_id', 'text')
    .addColumn('accepted_request_id', 'text')
    .addColumn('last_error', 'text')
    .addColumn('created_at', t.instant, (c) => c.notNull())
    .addColumn('updated_at', t.instant, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('line_multicast_members')
    .addColumn('multicast_id', t.ref, (c) => c.notNull().references('line_multicasts.id').onDelete('cascade'))
    .addColumn('member_id', t.ref, (c) => c.notNull().references('members.id').onDelete('restrict'))
    .addColumn('delivery_id', t.ref, (c) => c.references('deliveries.id').onDelete('set null'))
    .addPrimaryKeyConstraint('line_multicast_members_pk', ['multicast_id', 'member_id'])
    .execute();
  await db.schema.createIndex('line_multicast_members_delivery').on('line_multicast_members').columns(['delivery_id']).execute();

  await db.schema
    .createTable('imagemap_images')
    .addColumn('hash', 'text', (c) => c.notNull())
    .addColumn('width', 'integer', (c) => c.notNull())
    .addColumn('height', 'integer', (c) => c.notNull())
    .addColumn('content_type', 'text', (c) => c.notNull())
    .addColumn('bytes', t.bytes, (c) => c.notNull())
    .addColumn('created_at', t.instant, (c) => c.notNull())
    .addPrimaryKeyConstraint('imagemap_images_pk', ['hash', 'width'])
    .execute();
}
