import { sql } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Db } from '../../src/db/database.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { TEST_DATABASE_URL } from '../support/databases.ts';
import { openHarness, rowCounts, userId, type Harness } from '../support/harness.ts';
import { pauseAfter } from '../support/pause.ts';

// SQLite runs one write transaction at a time: only PostgreSQL lets two batches pass the check at once.
describe.runIf(TEST_DATABASE_URL)('two batches booking one student into one class at once, on postgres', () => {
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  const item = (externalId: string, schedule: string, student: number) => ({ externalId, scheduleExternalId: schedule, student: { channel: 'main', lineUserId: userId(student) }, cancelled: false });

  it('exactly one wins; the other gets the same 409 naming the item and the booking, and writes nothing', async () => {
    h = await openHarness('postgres');
    const { db } = h.database;
    expect((await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: { label: 'OA', slug: 'main', channelId: '100', channelSecret: 's', channelAccessToken: 't' } })).statusCode).toBe(201);
    for (const [id, day] of [['c1', 2], ['c2', 3]] as const) {
      expect((await h.app.inject({ method: 'PUT', url: `/api/schedules/${id}`, payload: { title: 't', startsAt: `2026-12-0${day}T10:00:00Z`, endsAt: `2026-12-0${day}T11:00:00Z` } })).statusCode).toBe(201);
    }
    // Student 1 is known already (booked into c2): neither batch waits on the other's new member row.
    expect((await h.app.inject({ method: 'PUT', url: '/api/appointments/z1', payload: { scheduleExternalId: 'c2', student: { channel: 'main', lineUserId: userId(1) } } })).statusCode).toBe(201);
    const before = await rowCounts(h.database);

    // The first batch (what the bulk route runs) passes its check and writes its bookings, then pauses
    // before committing...
    const pause = pauseAfter((node) => node.kind === 'InsertQueryNode' && JSON.stringify(node).includes('"appointments"'), { once: true });
    let pid = 0;
    const first = db.transaction().execute(async (trx) => {
      pid = Number((await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]?.pid);
      return upsertAppointments(trx.withPlugin(pause.plugin), h.clock, [item('a0', 'c1', 2), item('a1', 'c1', 1)], { oneLiveBookingPerStudent: true });
    });
    await pause.atGate;
    // ...while the second books student 1 into c1 under another id: its check cannot see a1 yet.
    let settled = false;
    const second = h.app.inject({ method: 'POST', url: '/api/appointments/bulk', payload: { items: [item('b0', 'c1', 3), item('b1', 'c1', 1)] } }).finally(() => (settled = true));
    let waited = false;
    try {
      // It waits on the first's uncommitted a1 (the unique index), or, with nothing to stop it, ends.
      await vi.waitFor(async () => expect(settled || (waited = await waitsOn(db, pid))).toBe(true), { timeout: 10_000, interval: 5 });
    } finally {
      pause.open();
    }
    expect(waited).toBe(true);
    expect((await first).map((r) => r.outcome)).toEqual(['created', 'created']);
    const lost = await second;
    expect(lost.statusCode).toBe(409);
    expect(lost.json()).toMatchObject({ error: 'conflict', field: 'items[1].student.lineUserId', message: expect.stringContaining('by booking "a1"') });

    const live = await db
      .selectFrom('appointments')
      .innerJoin('schedules', 'schedules.id', 'appointments.schedule_id')
      .select('appointments.external_id')
      .where('schedules.external_id', '=', 'c1')
      .where('appointments.cancelled', '=', false)
      .orderBy('appointments.external_id')
      .execute();
    expect(live.map((r) => r.external_id)).toEqual(['a0', 'a1']);
    // The winner's two bookings and their links; of the loser's batch (b0, and student 3), nothing.
    expect(await rowCounts(h.database)).toEqual({ ...before, members: (before.members ?? 0) + 1, appointments: (before.appointments ?? 0) + 2, deliveries: (before.deliveries ?? 0) + 2 });
  });
});

/** Whether some session waits on a lock held by backend `pid` (only this test's sessions can). */
async function waitsOn(db: Db, pid: number): Promise<boolean> {
  return Number((await sql<{ n: string }>`select count(*) as n from pg_stat_activity where ${pid} = any(pg_blocking_pids(pid))`.execute(db)).rows[0]?.n ?? 0) > 0;
}
