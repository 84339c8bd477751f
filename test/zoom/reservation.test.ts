import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { virtualClock } from '../../src/clock.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { createSecretBox } from '../../src/secrets/secret-box.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { insertZoomAccount } from '../../src/zoom/accounts.ts';
import { reserveHost } from '../../src/zoom/hosts.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

/** The DB-level guarantee under the provisioner: overlapping reservations of one host cannot both win. */
describe.each(dialects)('host reservation on %s', (dialect) => {
  let database: TestDatabase;
  let replica: Database | undefined;
  afterEach(async () => {
    await replica?.close();
    replica = undefined;
    await database.close();
  });

  it('lets exactly one of many concurrent overlapping reservations win, across connections', async () => {
    database = await openTestDatabase(dialect);
    // On PostgreSQL the second "replica" is a separate pool; SQLite is one process by design.
    replica = dialect === 'postgres' ? await openDatabase(database.url, { schema: database.schema ?? 'public', poolSize: 5 }) : undefined;
    const clock = virtualClock('2026-12-01T00:00:00Z');
    const box = createSecretBox(randomBytes(32));
    const host = await insertZoomAccount(database.db, box, clock, { label: 'h', plan: 'licensed', accountId: 'a', clientId: 'c', clientSecret: 's', hostUserId: 'u' });
    const start = new Date('2026-12-01T10:00:00Z');
    const results = await upsertSchedules(
      database.db,
      clock,
      Array.from({ length: 10 }, (_, i) => ({ externalId: `s${i}`, title: 't', startsAt: new Date(start.getTime() + i * 60_000), endsAt: new Date(start.getTime() + 3_000_000), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false })),
    );
    await database.db.updateTable('schedules').set({ meeting_lease_owner: 'w' }).execute();
    const outcomes = await Promise.all(
      results.map((r, i) =>
        reserveHost(i % 2 === 0 || !replica ? database.db : replica.db, {
          scheduleId: r.id,
          hostId: host.id,
          windowStart: new Date(start.getTime() + i * 60_000),
          windowEnd: new Date(start.getTime() + 3_600_000),
          day: '2026-12-01',
          writeCap: 90,
          leaseOwner: 'w',
          attemptId: `a${i}`,
          version: 1,
          state: 'creating',
          now: clock.now(),
        }),
      ),
    );
    expect(outcomes.filter((o) => o.result === 'reserved')).toHaveLength(1);
    expect(outcomes.filter((o) => o.result === 'busy')).toHaveLength(9);
    const usage = await database.db.selectFrom('zoom_host_usage').selectAll().execute();
    expect(usage.map((u) => Number(u.meeting_writes))).toEqual([1]);
  });

  it('refuses a reservation past the write budget and leaves no intent behind', async () => {
    database = await openTestDatabase(dialect);
    const clock = virtualClock('2026-12-01T00:00:00Z');
    const box = createSecretBox(randomBytes(32));
    const host = await insertZoomAccount(database.db, box, clock, { label: 'h', plan: 'licensed', accountId: 'a', clientId: 'c', clientSecret: 's', hostUserId: 'u' });
    const [r] = await upsertSchedules(database.db, clock, [{ externalId: 's', title: 't', startsAt: new Date('2026-12-01T10:00:00Z'), endsAt: new Date('2026-12-01T11:00:00Z'), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false }]);
    await database.db.updateTable('schedules').set({ meeting_lease_owner: 'w' }).execute();
    await database.db.insertInto('zoom_host_usage').values({ zoom_account_id: host.id, day: '2026-12-01', meeting_writes: 90 }).execute();
    const outcome = await reserveHost(database.db, { scheduleId: r?.id ?? 0, hostId: host.id, windowStart: new Date('2026-12-01T09:50:00Z'), windowEnd: new Date('2026-12-01T11:10:00Z'), day: '2026-12-01', writeCap: 90, leaseOwner: 'w', attemptId: 'x', version: 1, state: 'creating', now: clock.now() });
    expect(outcome.result).toBe('write_budget');
    const row = await database.db.selectFrom('schedules').selectAll().executeTakeFirstOrThrow();
    expect(row.meeting_state).toBe('none');
    expect(row.meeting_account_id).toBeNull();
  });
});
