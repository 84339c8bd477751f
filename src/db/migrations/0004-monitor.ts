import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/**
 * Watching meetings: live state and attendance per schedule (from Zoom webhooks and a reconciliation
 * poll), the grace-time check that ends empty classes early, the minimum-headcount verdict, the
 * participants seen per meeting instance, and what recording downloads need to resume and retry.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  const instant = pg ? sql`timestamptz` : sql`text`;
  const count = pg ? sql`bigint` : sql`integer`;
  const ref = pg ? sql`bigint` : sql`integer`;

  const add = async (table: string, columns: [string, ReturnType<typeof sql>, 'null' | 'zero'][]) => {
    for (const [name, type, fill] of columns) {
      await db.schema
        .alterTable(table)
        .addColumn(name, type, (c) => (fill === 'zero' ? c.notNull().defaultTo(0) : c))
        .execute();
    }
  };

  await add('schedules', [
    // waiting | started | ended (null: never seen live)
    ['live_status', sql`text`, 'null'],
    ['live_started_at', instant, 'null'],
    ['live_ended_at', instant, 'null'],
    // Students in the meeting now, and the most seen at once.
    ['attendance', sql`integer`, 'zero'],
    ['attendance_peak', sql`integer`, 'zero'],
    ['attendance_checked_at', instant, 'null'],
    // pending | ok | below_minimum | ended_empty | not_started | skipped: the grace-time verdict.
    ['monitor_state', sql`text`, 'null'],
    ['monitor_reason', sql`text`, 'null'],
    ['monitor_checked_at', instant, 'null'],
    ['monitor_lease_owner', sql`text`, 'null'],
    ['monitor_lease_expires_at', instant, 'null'],
    // ok | below_minimum | cancelled: the booked-headcount check before provisioning and sending.
    ['headcount_state', sql`text`, 'null'],
    ['headcount_reason', sql`text`, 'null'],
    // provision | send: the last check point passed (each is checked once).
    ['headcount_stage', sql`text`, 'null'],
    ['headcount_checked_at', instant, 'null'],
    // When the recording sweep last asked Zoom about this class (oldest asked first).
    ['recording_swept_at', instant, 'null'],
  ]);
  await db.schema.createIndex('schedules_monitor').on('schedules').columns(['monitor_state', 'starts_at']).execute();
  await db.schema.createIndex('schedules_meeting_id').on('schedules').columns(['meeting_id']).execute();

  await db.schema.alterTable('meeting_events').addColumn('outcome', 'text').execute();
  // Failed applications are retried (a dropped connection must not lose an attendance event).
  await db.schema.alterTable('meeting_events').addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0)).execute();
  await db.schema.alterTable('meeting_events').addColumn('retry_at', instant).execute();
  await db.schema.createIndex('meeting_events_unprocessed').on('meeting_events').columns(['processed_at', 'id']).execute();

  const participants = db.schema
    .createTable('meeting_participants')
    .addColumn('schedule_id', ref, (c) => c.references('schedules.id').onDelete('cascade'))
    .addColumn('meeting_id', 'text', (c) => c.notNull())
    .addColumn('meeting_uuid', 'text', (c) => c.notNull())
    // The most stable id Zoom gave: participant_user_id, participant_uuid, id, user_id, then email/name.
    .addColumn('participant_key', 'text', (c) => c.notNull())
    .addColumn('user_name', 'text')
    .addColumn('email', 'text')
    // student | host | staff (our own accounts): only students count toward attendance.
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('joined_at', instant)
    .addColumn('left_at', instant)
    .addColumn('present', pg ? sql`boolean` : sql`integer`, (c) => c.notNull().defaultTo(pg ? sql`false` : sql`0`))
    // Timestamp of the event that set `present` (events apply in time order; retries arrive late).
    .addColumn('changed_at', instant, (c) => c.notNull())
    .addPrimaryKeyConstraint('meeting_participants_pk', ['meeting_uuid', 'participant_key']);
  await participants.execute();
  await db.schema.createIndex('meeting_participants_schedule').on('meeting_participants').columns(['schedule_id']).execute();

  await add('recordings', [
    ['zoom_account_id', ref, 'null'],
    ['file_extension', sql`text`, 'null'],
    ['recording_type', sql`text`, 'null'],
    ['recording_start', instant, 'null'],
    ['recording_end', instant, 'null'],
    ['download_url', sql`text`, 'null'],
    // The webhook's download_token (24 h), encrypted; the S2S token is the fallback.
    ['download_token', sql`text`, 'null'],
    ['download_token_expires_at', instant, 'null'],
    ['content_type', sql`text`, 'null'],
    ['bytes_stored', count, 'zero'],
    ['available_at', instant, 'null'],
    ['lease_owner', sql`text`, 'null'],
    ['lease_expires_at', instant, 'null'],
    ['stored_at', instant, 'null'],
  ]);
  await db.schema.createIndex('recordings_claimable').on('recordings').columns(['state', 'available_at']).execute();
  await db.schema.createIndex('recordings_schedule').on('recordings').columns(['schedule_id']).execute();
}
