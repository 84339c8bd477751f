import { sql } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TEST_DATABASE_URL } from '../support/databases.ts';
import { openHarness, type Harness } from '../support/harness.ts';

// SQLite runs one write transaction at a time; only PostgreSQL lets two first writes of one key race.
describe.runIf(TEST_DATABASE_URL)('two requests writing the same item at once, on postgres', () => {
  const dialect = 'postgres';
  let h: Harness;
  afterEach(async () => {
    await h.close();
  });

  it('the loser gets a 503 to retry (nothing written), not a 500; its retry sees the winner', async () => {
    h = await openHarness(dialect);
    const { db } = h.database;
    const payload = { title: 'A', startsAt: '2026-12-01T20:00:00+08:00', endsAt: '2026-12-01T20:50:00+08:00', trial: false, minParticipants: 0, feedbackUrl: null };
    let request: Promise<{ statusCode: number; headers: Record<string, unknown>; json(): unknown }> | undefined;
    // The other writer creates c-1 and has not committed when this request inserts it too.
    await db.transaction().execute(async (trx) => {
      const holder = Number((await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]?.pid);
      await trx
        .insertInto('schedules')
        .values({ external_id: 'c-1', title: 'A', starts_at: new Date('2026-12-01T12:00:00Z'), ends_at: new Date('2026-12-01T12:50:00Z'), trial: false, cancelled: false, min_participants: 0, version: 1, meeting_state: 'none', created_at: new Date(), updated_at: new Date() })
        .execute();
      request = h.app.inject({ method: 'PUT', url: '/api/schedules/c-1', payload });
      // Only this test's sessions can wait on the holder's backend.
      const waits = async () => Number((await sql<{ n: string }>`select count(*) as n from pg_stat_activity where ${holder} = any(pg_blocking_pids(pid))`.execute(db)).rows[0]?.n ?? 0) > 0;
      await vi.waitFor(async () => expect(await waits()).toBe(true), { timeout: 10_000, interval: 5 });
    });
    const lost = await request;
    expect(lost?.statusCode).toBe(503);
    expect(lost?.headers['retry-after']).toBe('1');
    expect(lost?.json()).toMatchObject({ error: 'unavailable', message: expect.stringMatching(/retry/) });
    const retried = await h.app.inject({ method: 'PUT', url: '/api/schedules/c-1', payload });
    expect(retried.statusCode).toBe(200);
  });
});
