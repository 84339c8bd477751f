import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isUniqueViolation } from '../../src/db/database.ts';
import { migrate, pendingMigrations } from '../../src/db/migrate.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { dialects } from '../support/databases.ts';
import { openHarness, rowCounts, userId, type Harness } from '../support/harness.ts';

const MIGRATION = '0014-one-live-booking';

/** The database itself keeps one live booking per student and class (migration 0014). */
describe.each(dialects)('the unique index over live bookings on %s', (dialect) => {
  let h: Harness;
  beforeEach(async () => {
    h = await openHarness(dialect);
    expect((await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: { label: 'OA', slug: 'main', channelId: '100', channelSecret: 's', channelAccessToken: 't' } })).statusCode).toBe(201);
    for (const [id, day] of [['c1', 2], ['c2', 3]] as const) {
      const payload = { title: 't', startsAt: `2026-12-0${day}T10:00:00Z`, endsAt: `2026-12-0${day}T11:00:00Z` };
      expect((await h.app.inject({ method: 'PUT', url: `/api/schedules/${id}`, payload })).statusCode).toBe(201);
    }
  });
  afterEach(async () => {
    await h.close();
  });

  const book = (id: string, schedule: string, student: number, cancelled = false) =>
    h.app.inject({ method: 'PUT', url: `/api/appointments/${id}`, payload: { scheduleExternalId: schedule, student: { channel: 'main', lineUserId: userId(student) }, cancelled } });
  const input = (externalId: string, schedule: string, student: number) => ({ externalId, scheduleExternalId: schedule, student: { channel: 'main', lineUserId: userId(student) }, cancelled: false });
  /** A live booking written past every check, as an older version or another tool could have. */
  const insertLive = async (externalId: string, schedule: string, student: number) => {
    const { db } = h.database;
    const s = await db.selectFrom('schedules').select('id').where('external_id', '=', schedule).executeTakeFirstOrThrow();
    const m = await db.selectFrom('members').select('id').where('line_user_id', '=', userId(student)).executeTakeFirstOrThrow();
    const now = h.clock.now();
    await db.insertInto('appointments').values({ external_id: externalId, schedule_id: s.id, member_id: m.id, cancelled: false, created_at: now, updated_at: now }).execute();
  };

  it('refuses a second live booking written without the check: a 409, nothing written; cancelled ones are not counted', async () => {
    expect((await book('a1', 'c1', 1)).statusCode).toBe(201);
    expect((await book('a0', 'c1', 1, true)).statusCode).toBe(201);
    const before = await rowCounts(h.database);
    // Without oneLiveBookingPerStudent nothing in the code stops it: the index does.
    const written = upsertAppointments(h.database.db, h.clock, [input('x1', 'c2', 2), input('a2', 'c1', 1)]);
    await expect(written).rejects.toMatchObject({ kind: 'conflict', field: 'items', message: expect.stringMatching(/one live booking per student and class/) });
    expect(await rowCounts(h.database)).toEqual(before);
    await expect(insertLive('a3', 'c1', 1)).rejects.toSatisfy(isUniqueViolation);
  });

  it('bookings of one student trading classes in one batch pass (written in two steps, never two live at once)', async () => {
    expect((await book('a1', 'c1', 1)).statusCode).toBe(201);
    expect((await book('a2', 'c2', 1)).statusCode).toBe(201);
    const swap = await h.app.inject({
      method: 'POST',
      url: '/api/appointments/bulk',
      payload: { items: [{ externalId: 'a1', scheduleExternalId: 'c2', student: { channel: 'main', lineUserId: userId(1) } }, { externalId: 'a2', scheduleExternalId: 'c1', student: { channel: 'main', lineUserId: userId(1) } }] },
    });
    expect(swap.statusCode).toBe(200);
    expect(swap.json().results.map((r: { outcome: string }) => r.outcome)).toEqual(['updated', 'updated']);
    const rows = await h.database.db
      .selectFrom('appointments')
      .innerJoin('schedules', 'schedules.id', 'appointments.schedule_id')
      .select(['appointments.external_id', 'schedules.external_id as schedule', 'appointments.cancelled'])
      .orderBy('appointments.external_id')
      .execute();
    expect(rows.map((r) => [r.external_id, r.schedule, Boolean(r.cancelled)])).toEqual([['a1', 'c2', false], ['a2', 'c1', false]]);
  });

  it('the migration refuses existing duplicates, naming them and how to resolve, and changes nothing; once resolved it builds the index', async () => {
    const { db } = h.database;
    expect((await book('a1', 'c1', 1)).statusCode).toBe(201);
    expect((await book('b1', 'c2', 2)).statusCode).toBe(201);
    // As before 0014: no index, and duplicates stored (one student twice, one three times).
    await sql`drop index appointments_one_live`.execute(db);
    await sql`delete from kysely_migration where name = ${MIGRATION}`.execute(db);
    await insertLive('a2', 'c1', 1);
    await insertLive('b2', 'c2', 2);
    await insertLive('b3', 'c2', 2);
    const failed = migrate(db, dialect);
    await expect(failed).rejects.toThrow(`migration ${MIGRATION} failed`);
    const message = await failed.then(() => '', (e: unknown) => String(e));
    expect(message).toContain(`2 student(s) have more than one live booking in one class`);
    expect(message).toContain(`class "c1", student ${userId(1)} of channel "main": bookings "a1", "a2"`);
    expect(message).toContain(`class "c2", student ${userId(2)} of channel "main": bookings "b1", "b2", "b3"`);
    expect(message).toMatch(/Nothing was changed\. Cancel all but one booking of each .*then migrate again/);
    expect(await pendingMigrations(db)).toEqual([MIGRATION]);
    expect((await db.selectFrom('appointments').select('id').where('cancelled', '=', false).execute()).length).toBe(5);

    // Resolved through the API (as the running version would): cancel the extra bookings.
    for (const [id, schedule, student] of [['a2', 'c1', 1], ['b2', 'c2', 2], ['b3', 'c2', 2]] as const) expect((await book(id, schedule, student, true)).statusCode).toBe(200);
    expect((await migrate(db, dialect)).applied).toEqual([MIGRATION]);
    await expect(insertLive('a4', 'c1', 1)).rejects.toSatisfy(isUniqueViolation);
  });
});
