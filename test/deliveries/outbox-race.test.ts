import { sql, type KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Db } from '../../src/db/database.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { TEST_DATABASE_URL } from '../support/databases.ts';
import { openEngineWorld, userId, type EngineWorld } from './world.ts';

/** The backend of a transaction, to see who waits on it. */
async function backendOf(trx: Db): Promise<number> {
  return Number((await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]?.pid);
}

/** Whether some session is waiting on a lock held by backend `pid` (only this test's sessions can be). */
async function someoneWaitsOn(db: Db, pid: number): Promise<boolean> {
  return Number((await sql<{ n: string }>`select count(*) as n from pg_stat_activity where ${pid} = any(pg_blocking_pids(pid))`.execute(db)).rows[0]?.n ?? 0) > 0;
}

// SQLite runs one write transaction at a time, so only PostgreSQL can interleave these.
describe.runIf(TEST_DATABASE_URL)('a booking written while its class changes, on postgres', () => {
  const dialect = 'postgres';
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });
  const klass = (startsAt: string, endsAt: string, feedbackUrl: string | null = null) => ({ externalId: 'c1', title: 'Class c1', startsAt: new Date(startsAt), endsAt: new Date(endsAt), trial: false, minParticipants: 0, feedbackUrl, cancelled: false });
  const booking = (cancelled: boolean, student = 1) => [{ externalId: 'c1-1', scheduleExternalId: 'c1', student: { channel: 'school-a', lineUserId: userId(student) }, cancelled }];

  it('ends with deliveries for the class as it is after both, and the link goes out at the new time', async () => {
    w = await openEngineWorld(dialect);
    const { db } = w.h.database;
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    await upsertAppointments(db, w.h.clock, booking(true));
    // The booking comes back in one transaction while the class moves to 11:30 in another.
    let moved = false;
    let move: Promise<unknown> = Promise.resolve();
    await db.transaction().execute(async (trx) => {
      const pid = await backendOf(trx);
      await upsertAppointments(trx, w.h.clock, booking(false));
      move = upsertSchedules(db, w.h.clock, [klass('2026-12-01T11:30:00Z', '2026-12-01T12:20:00Z')]).then(() => {
        moved = true;
      });
      // Either the move finished meanwhile (it did not wait for the booking) or it waits on its lock.
      await vi.waitFor(async () => expect(moved || (await someoneWaitsOn(db, pid))).toBe(true), { timeout: 10_000, interval: 5 });
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

  it('does not deadlock with a schedule upsert that creates deliveries for the booking being written', async () => {
    w = await openEngineWorld(dialect);
    const { db } = w.h.database;
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    // The booking's transaction pauses right after it locked its appointment row.
    let reached!: () => void;
    const atGate = new Promise<void>((resolve) => (reached = resolve));
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const locks = new Set<unknown>();
    const pause: KyselyPlugin = {
      transformQuery({ node, queryId }) {
        const text = JSON.stringify(node);
        if (node.kind === 'SelectQueryNode' && text.includes('"appointments"') && /"For(NoKey)?Update"/.test(text)) locks.add(queryId);
        return node;
      },
      async transformResult({ queryId, result }) {
        if (locks.delete(queryId)) {
          reached();
          await gate;
        }
        return result;
      },
    };
    let pid = 0;
    const writing = db.transaction().execute(async (trx) => {
      pid = await backendOf(trx);
      return upsertAppointments(trx.withPlugin(pause), w.h.clock, booking(false, 2));
    });
    await atGate;
    // Meanwhile the platform gives the class a feedback link: a new delivery for that booking.
    let changed = false;
    const change = upsertSchedules(db, w.h.clock, [klass('2026-12-01T12:00:00Z', '2026-12-01T12:50:00Z', 'https://forms.example.com/c1')]).then(() => {
      changed = true;
    });
    await vi.waitFor(async () => expect(changed || (await someoneWaitsOn(db, pid))).toBe(true), { timeout: 10_000, interval: 5 });
    open();
    await expect(Promise.all([writing, change])).resolves.toBeDefined();
    const kinds = await db.selectFrom('deliveries').select('kind').orderBy('id').execute();
    expect(kinds.map((k) => k.kind)).toEqual(['meeting_url', 'feedback_url']);
  });
});
