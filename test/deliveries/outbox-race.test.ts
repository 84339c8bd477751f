import { sql } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { dialects } from '../support/databases.ts';
import { openEngineWorld, userId, type EngineWorld } from './world.ts';

// SQLite runs one write transaction at a time, so only PostgreSQL can interleave these two.
describe.each(dialects.filter((d) => d === 'postgres'))('a booking written while its class moves, on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });

  it('ends with deliveries for the class as it is after both, and the link goes out at the new time', async () => {
    w = await openEngineWorld(dialect);
    const { db } = w.h.database;
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    const booking = (cancelled: boolean) => [{ externalId: 'c1-1', scheduleExternalId: 'c1', student: { channel: 'school-a', lineUserId: userId(1) }, cancelled }];
    await upsertAppointments(db, w.h.clock, booking(true));
    // The booking comes back in one transaction while the class moves to 11:30 in another.
    let moved = false;
    let move: Promise<unknown> = Promise.resolve();
    const moveWaits = async () =>
      Number((await sql<{ n: string }>`select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%"schedules"%for update%'`.execute(db)).rows[0]?.n ?? 0) > 0;
    await db.transaction().execute(async (trx) => {
      await upsertAppointments(trx, w.h.clock, booking(false));
      move = upsertSchedules(db, w.h.clock, [
        { externalId: 'c1', title: 'Class c1', startsAt: new Date('2026-12-01T11:30:00Z'), endsAt: new Date('2026-12-01T12:20:00Z'), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false },
      ]).then(() => {
        moved = true;
      });
      // Either the move finished meanwhile (it did not wait for the booking) or it waits on its lock.
      await vi.waitFor(async () => expect(moved || (await moveWaits())).toBe(true), { timeout: 10_000, interval: 5 });
    });
    await move;
    const schedule = await db.selectFrom('schedules').select('version').executeTakeFirstOrThrow();
    const delivery = await db.selectFrom('deliveries').select(['state', 'schedule_version', 'due_at']).executeTakeFirstOrThrow();
    expect({ ...delivery, due_at: new Date(delivery.due_at).toISOString() }).toEqual({ state: 'pending', schedule_version: schedule.version, due_at: '2026-12-01T11:20:00.000Z' });
    await w.meetingMoved('c1');
    await w.engine().start();
    await w.at('2026-12-01T11:21:00Z');
    expect(w.received().map((r) => r.at)).toEqual(['2026-12-01T11:20:00.000Z']);
  });
});
