import { randomBytes } from 'node:crypto';
import { sql, type RootOperationNode } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { virtualClock } from '../../src/clock.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { createSecretBox } from '../../src/secrets/secret-box.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { insertZoomAccount } from '../../src/zoom/accounts.ts';
import { reserveHost, type ReservationResult } from '../../src/zoom/hosts.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';
import { pauseAfter } from '../support/pause.ts';

/** reserveHost's overlap check: the read a second writer must not make until the first has written. */
const clashCheck = (node: RootOperationNode): boolean => node.kind === 'SelectQueryNode' && JSON.stringify(node.from).includes('"name":"schedules"');

/** The DB-level guarantee under the provisioner: overlapping reservations of one host cannot both win. */
describe.each(dialects)('host reservation on %s', (dialect) => {
  let database: TestDatabase;
  let replica: Database | undefined;
  afterEach(async () => {
    await replica?.close();
    replica = undefined;
    await database.close();
  });

  it('makes a second reservation of a host wait until the first has checked and written, then finds it busy', async () => {
    database = await openTestDatabase(dialect);
    const clock = virtualClock('2026-12-01T00:00:00Z');
    const box = createSecretBox(randomBytes(32));
    const host = await insertZoomAccount(database.db, box, clock, { label: 'h', plan: 'licensed', accountId: 'a', clientId: 'c', clientSecret: 's', hostUserId: 'u' });
    const [one, two] = await upsertSchedules(database.db, clock, ['s1', 's2'].map((id) => ({ externalId: id, title: 't', startsAt: new Date('2026-12-01T10:00:00Z'), endsAt: new Date('2026-12-01T10:50:00Z'), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false })));
    await database.db.updateTable('schedules').set({ meeting_lease_owner: 'w' }).execute();
    const reserve = (db: typeof database.db, scheduleId: number) =>
      reserveHost(db, { scheduleId, hostId: host.id, windowStart: new Date('2026-12-01T09:50:00Z'), windowEnd: new Date('2026-12-01T11:00:00Z'), day: '2026-12-01', writeCap: 90, leaseOwner: 'w', attemptId: `a${scheduleId}`, version: 1, state: 'creating', now: clock.now() });
    // The first writer stops right after its overlap check found the host free (nothing written yet).
    const pause = pauseAfter(clashCheck, { once: true });
    const first = reserve(database.db.withPlugin(pause.plugin), one?.id ?? 0);
    await pause.atGate;
    let secondDone = false;
    try {
      let second: Promise<ReservationResult>;
      if (dialect === 'postgres') {
        // Another replica (its own pool of one connection): it must wait on the host row the first holds.
        replica = await openDatabase(database.url, { schema: database.schema ?? 'public', poolSize: 1 });
        const pid = Number((await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(replica.db)).rows[0]?.pid);
        second = reserve(replica.db, two?.id ?? 0).finally(() => (secondDone = true));
        const db = database.db;
        await vi.waitFor(async () => expect((await sql<{ w: string | null }>`select wait_event_type as w from pg_stat_activity where pid = ${pid}`.execute(db)).rows[0]?.w).toBe('Lock'), { timeout: 10_000, interval: 5 });
      } else {
        // SQLite serialises writers (one connection): the second transaction cannot begin meanwhile.
        second = reserve(database.db, two?.id ?? 0).finally(() => (secondDone = true));
        for (let i = 0; i < 100; i++) await new Promise((r) => setImmediate(r));
      }
      expect(secondDone).toBe(false);
      pause.open();
      expect(await first).toMatchObject({ result: 'reserved' });
      expect(await second).toEqual({ result: 'busy' });
    } finally {
      // A failed expectation must not leave the first transaction open.
      pause.open();
    }
    const usage = await database.db.selectFrom('zoom_host_usage').selectAll().execute();
    expect(usage.map((u) => Number(u.meeting_writes))).toEqual([1]);
  });

  // Many writers at once: on SQLite they run one after the other, so only PostgreSQL puts the lock to
  // the test here; the interleaving above pins down both.
  it('lets exactly one of many concurrent overlapping reservations win (PostgreSQL: across two pools; SQLite: one after the other)', async () => {
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
