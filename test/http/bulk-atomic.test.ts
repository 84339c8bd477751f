import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openHarness, userId, type Harness } from '../support/harness.ts';

const klass = (id: string, startsAt: string) => ({ externalId: id, title: `Class ${id}`, startsAt, endsAt: new Date(Date.parse(startsAt) + 50 * 60_000).toISOString(), feedbackUrl: `https://f.example/${id}` });
const booking = (id: string, schedule: string, student: number) => ({ externalId: id, scheduleExternalId: schedule, student: { channel: 'main', lineUserId: userId(student) } });

/**
 * A bulk write that fails inside its transaction, after some of its rows were written (a trigger
 * in the test's own database raises on a late write), leaves nothing of the batch behind.
 */
describe.each(dialects)('a bulk write failing mid-transaction, over the admin API on %s', (dialect) => {
  let h: Harness;
  beforeEach(async () => {
    h = await openHarness(dialect);
    expect((await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: { label: 'OA', slug: 'main', channelId: '100', channelSecret: 's', channelAccessToken: 't' } })).statusCode).toBe(201);
    const classes = await h.app.inject({ method: 'POST', url: '/api/schedules/bulk', payload: { items: [klass('c1', '2026-12-02T10:00:00Z'), klass('c2', '2026-12-03T10:00:00Z')] } });
    expect(classes.statusCode).toBe(200);
    const bookings = await h.app.inject({ method: 'POST', url: '/api/appointments/bulk', payload: { items: [booking('a1', 'c1', 1), booking('b1', 'c2', 9)] } });
    expect(bookings.statusCode).toBe(200);
  });
  afterEach(async () => {
    await h.close();
  });

  /** Every row of the tables a bulk writes, to compare before and after. */
  const snapshot = async () => {
    const { db } = h.database;
    return {
      schedules: await db.selectFrom('schedules').selectAll().orderBy('id').execute(),
      members: await db.selectFrom('members').selectAll().orderBy('id').execute(),
      appointments: await db.selectFrom('appointments').selectAll().orderBy('id').execute(),
      deliveries: await db.selectFrom('deliveries').selectAll().orderBy('id').execute(),
    };
  };

  /** At least `n` rows in `table`: what a trigger waits for before failing. */
  const atLeast = (table: 'schedules' | 'members' | 'deliveries', n: number) => sql`(select count(*) from ${sql.table(table)}) >= ${sql.lit(n)}`;
  /**
   * A trigger failing each `event` on deliveries once `when` holds: only after the batch's earlier
   * writes are in (which proves they were), and, counting deliveries, half-way through a statement
   * writing several. On PostgreSQL with `code`: the SQLSTATE raised.
   */
  const failDeliveries = async (event: 'insert' | 'update', when: ReturnType<typeof sql>, code = 'P0001') => {
    const { db } = h.database;
    if (dialect === 'postgres') {
      await sql`create function injected_failure() returns trigger language plpgsql as $$
        begin if ${when} then raise exception 'injected failure' using errcode = ${sql.lit(code)}; end if; return new; end $$`.execute(db);
      await sql`create trigger injected_failure before ${sql.raw(event)} on deliveries for each row execute function injected_failure()`.execute(db);
    } else {
      await sql`create trigger injected_failure before ${sql.raw(event)} on deliveries when ${when} begin select raise(abort, 'injected failure'); end`.execute(db);
    }
  };
  const healed = () => sql`drop trigger injected_failure${sql.raw(dialect === 'postgres' ? ' on deliveries' : '')}`.execute(h.database.db);

  it('a schedule bulk moving classes and creating others, failing while it re-times their links, writes nothing', async () => {
    const items = [klass('c1', '2026-12-02T10:30:00Z'), klass('n1', '2026-12-04T10:00:00Z'), klass('c2', '2026-12-03T11:00:00Z'), klass('n2', '2026-12-05T10:00:00Z')];
    const before = await snapshot();
    // The classes are updated and the new ones inserted before the outbox re-times the links: then
    // it fails. On PostgreSQL as a deadlock would (one of the failures a bulk meets mid-way).
    await failDeliveries('update', atLeast('schedules', before.schedules.length + 2), '40P01');
    const failed = await h.app.inject({ method: 'POST', url: '/api/schedules/bulk', payload: { items } });
    if (dialect === 'postgres') {
      expect(failed.statusCode).toBe(503);
      expect(failed.headers['retry-after']).toBe('1');
      expect(failed.json()).toEqual({ error: 'unavailable', message: 'another request wrote the same items at the same time; nothing was written, retry' });
    } else {
      expect(failed.statusCode).toBe(500);
      expect(failed.json()).toEqual({ error: 'internal', message: 'internal error; see the service log' });
    }
    expect(h.logs.some((l) => l.includes('injected failure'))).toBe(true);
    expect(await snapshot()).toEqual(before);

    // The same batch, once nothing fails, is written whole.
    await healed();
    const retried = await h.app.inject({ method: 'POST', url: '/api/schedules/bulk', payload: { items } });
    expect(retried.statusCode).toBe(200);
    expect(retried.json().results.map((r: { outcome: string }) => r.outcome)).toEqual(['updated', 'created', 'updated', 'created']);
  });

  it('a booking bulk moving a booking and bringing new students, failing after some of their links were written, writes nothing', async () => {
    const items = [booking('a1', 'c2', 1), ...[2, 3, 4, 5].map((n) => booking(`a${n}`, 'c1', n))];
    const before = await snapshot();
    // Members, the move and the new bookings are written, then the third new link of the batch fails
    // (the first two are in already, within the same statement).
    await failDeliveries('insert', sql`${atLeast('members', before.members.length + 4)} and ${atLeast('deliveries', before.deliveries.length + 2)}`);
    const failed = await h.app.inject({ method: 'POST', url: '/api/appointments/bulk', payload: { items } });
    expect(failed.statusCode).toBe(500);
    expect(failed.json()).toEqual({ error: 'internal', message: 'internal error; see the service log' });
    expect(h.logs.some((l) => l.includes('injected failure'))).toBe(true);
    expect(await snapshot()).toEqual(before);

    await healed();
    const retried = await h.app.inject({ method: 'POST', url: '/api/appointments/bulk', payload: { items } });
    expect(retried.statusCode).toBe(200);
    expect(retried.json().results.map((r: { outcome: string }) => r.outcome)).toEqual(['updated', 'created', 'created', 'created', 'created']);
    const after = await snapshot();
    expect(after.members.length).toBe(before.members.length + 4);
    expect(after.deliveries.length).toBeGreaterThan(before.deliveries.length + 2);
  });
});
