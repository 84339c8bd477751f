import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../database.ts';

/** Offending (class, student) pairs named in the error; the rest are counted. */
const SHOWN = 5;

/**
 * One live (not cancelled) booking per student and class, enforced by a partial unique index over
 * (schedule_id, member_id): every message goes to a booking's member, so two live bookings of one
 * member in one class send each message twice. The API checked this inside its transaction only,
 * which two concurrent batches under different booking ids could both pass.
 *
 * Bookings stored before may break it. They are not resolved here: which of two live bookings the
 * platform still means is its call (cancelling one here would leave the platform and this service
 * disagreeing, and its next write of that booking would be refused). The migration fails, naming a
 * few, and changes nothing; the operator cancels the extra bookings (through the running version's
 * API, or on the platform) and runs it again.
 */
export async function up(db: Kysely<unknown>, dialect: Dialect): Promise<void> {
  const pg = dialect === 'postgres';
  // An older replica still writing must not slip a duplicate in between the check and the build
  // (SHARE: writes wait until the migrations commit, as the index build makes them anyway).
  if (pg) await sql`lock table appointments in share mode`.execute(db);
  const live = pg ? sql`not a.cancelled` : sql`a.cancelled = 0`;
  const pairs = await sql<{ schedule_id: number; member_id: number; class: string; student: string; channel: string }>`
    select a.schedule_id, a.member_id, s.external_id as class, m.line_user_id as student, c.slug as channel
    from appointments a
    join schedules s on s.id = a.schedule_id
    join members m on m.id = a.member_id
    join line_channels c on c.id = m.channel_id
    where ${live}
    group by a.schedule_id, a.member_id, s.external_id, m.line_user_id, c.slug
    having count(*) > 1
    order by a.schedule_id, a.member_id`.execute(db);
  if (pairs.rows.length > 0) {
    const shown: string[] = [];
    for (const p of pairs.rows.slice(0, SHOWN)) {
      const bookings = await sql<{ external_id: string }>`
        select a.external_id from appointments a
        where a.schedule_id = ${p.schedule_id} and a.member_id = ${p.member_id} and ${live}
        order by a.id`.execute(db);
      shown.push(`class "${p.class}", student ${p.student} of channel "${p.channel}": bookings ${bookings.rows.map((b) => `"${b.external_id}"`).join(', ')}`);
    }
    const more = pairs.rows.length > SHOWN ? `; and ${pairs.rows.length - SHOWN} more` : '';
    throw new Error(
      `${pairs.rows.length} student(s) have more than one live booking in one class, which would send them every message twice: ${shown.join('; ')}${more}. ` +
        'Nothing was changed. Cancel all but one booking of each (PUT /api/appointments/{externalId} with the booking as it is and "cancelled": true, on the version still running, or from the platform), then migrate again. ' +
        'To list them all: select schedule_id, member_id, count(*) from appointments where cancelled = false group by 1, 2 having count(*) > 1 (SQLite: cancelled = 0)',
    );
  }
  await sql`create unique index if not exists appointments_one_live on appointments (schedule_id, member_id) where ${pg ? sql`not cancelled` : sql`cancelled = 0`}`.execute(db);
}
