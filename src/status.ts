import { sql } from 'kysely';
import type { Db } from './db/database.ts';
import { toBool } from './db/row.ts';

/** A one-screen summary of what the service holds, for `scheduler status` and `GET /api/status`. */
export interface Status {
  now: string;
  zoomAccounts: { total: number; enabled: number };
  lineChannels: { total: number; enabled: number };
  members: Record<string, number>;
  schedules: { upcoming: number; cancelled: number; meetings: Record<string, number> };
  appointments: { booked: number; cancelled: number };
  deliveries: Record<string, number>;
  /** Classes that started in the last 24 h by attendance verdict; webhook events waiting or set aside; recordings by state. */
  monitoring: { last24h: Record<string, number>; webhookEvents: { pending: number; failed: number }; recordings: Record<string, number> };
}

export async function collectStatus(db: Db, now: Date): Promise<Status> {
  const count = sql<number>`count(*)`.as('n');
  const flagCounts = async (table: 'zoom_accounts' | 'line_channels') => {
    const rows = await db.selectFrom(table).select(['enabled', count]).groupBy('enabled').execute();
    let total = 0;
    let enabled = 0;
    for (const row of rows) {
      total += Number(row.n);
      if (toBool(row.enabled)) enabled += Number(row.n);
    }
    return { total, enabled };
  };
  const byKey = (rows: { key: string; n: number }[]) => Object.fromEntries(rows.map((r) => [r.key, Number(r.n)]));

  const members = await db.selectFrom('members').select(['following as key', count]).groupBy('following').execute();
  const upcoming = db.selectFrom('schedules').where('starts_at', '>=', now);
  const meetings = await upcoming.where('cancelled', '=', false).select(['meeting_state as key', count]).groupBy('meeting_state').execute();
  const upcomingCounts = await upcoming.select(['cancelled', count]).groupBy('cancelled').execute();
  const appointments = await db.selectFrom('appointments').select(['cancelled', count]).groupBy('cancelled').execute();
  const deliveries = await db.selectFrom('deliveries').select(['state as key', count]).groupBy('state').execute();
  const split = (rows: { cancelled: boolean | number; n: number }[]) => ({
    live: rows.filter((r) => !toBool(r.cancelled)).reduce((s, r) => s + Number(r.n), 0),
    cancelled: rows.filter((r) => toBool(r.cancelled)).reduce((s, r) => s + Number(r.n), 0),
  });
  const verdicts = await db
    .selectFrom('schedules')
    .select([sql<string>`coalesce(monitor_state, 'unchecked')`.as('key'), count])
    .where('starts_at', '>=', new Date(now.getTime() - 86_400_000))
    .where('starts_at', '<', now)
    .where('cancelled', '=', false)
    .groupBy('monitor_state')
    .execute();
  const pendingEvents = await db.selectFrom('meeting_events').select(count).where('processed_at', 'is', null).executeTakeFirst();
  const failedEvents = await db.selectFrom('meeting_events').select(count).where('outcome', '=', 'failed').executeTakeFirst();
  const recordings = await db.selectFrom('recordings').select(['state as key', count]).groupBy('state').execute();
  const scheduleSplit = split(upcomingCounts);
  const appointmentSplit = split(appointments);
  return {
    now: now.toISOString(),
    zoomAccounts: await flagCounts('zoom_accounts'),
    lineChannels: await flagCounts('line_channels'),
    members: byKey(members),
    schedules: { upcoming: scheduleSplit.live, cancelled: scheduleSplit.cancelled, meetings: byKey(meetings) },
    appointments: { booked: appointmentSplit.live, cancelled: appointmentSplit.cancelled },
    deliveries: byKey(deliveries),
    monitoring: {
      last24h: byKey(verdicts),
      webhookEvents: { pending: Number(pendingEvents?.n ?? 0), failed: Number(failedEvents?.n ?? 0) },
      recordings: byKey(recordings),
    },
  };
}
