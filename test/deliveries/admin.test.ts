import { CompiledQuery, sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { deliveriesListQuery } from '../../src/deliveries/admin.ts';
import { dialects } from '../support/databases.ts';
import { openEngineWorld, userId, type EngineWorld } from './world.ts';

/** What an operator does after an incident: find the deliveries that did not go out, and send one again. */
describe.each(dialects)('deliveries over the admin API on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });
  const api = (method: 'GET' | 'POST', url: string) => w.h.app.inject({ method, url });

  it('lists the failed ones with their reasons, sends one again as a new message, and refuses what cannot be', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    await w.klass('c2', '2026-12-01T12:00:00Z', 50, [2], { feedbackUrl: null });
    // LINE refuses the pushes for good (a 400): both links fail at 11:50.
    const refusal = w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { status: 400 }, times: Infinity });
    await w.engine().start();
    await w.at('2026-12-01T11:51:00Z');
    const failed = await api('GET', '/api/deliveries?state=failed&from=2026-12-01T11:00:00Z&to=2026-12-01T12:00:00Z&limit=1');
    expect(failed.statusCode).toBe(200);
    const page = failed.json();
    expect(page.items).toEqual([
      expect.objectContaining({ kind: 'meeting_url', state: 'failed', dueAt: '2026-12-01T11:50:00.000Z', appointment: 'c1-1', schedule: 'c1', channel: 'school-a', lineUserId: userId(1), lastError: expect.stringMatching(/400/) }),
    ]);
    const next = (await api('GET', `/api/deliveries?state=failed&from=2026-12-01T11:00:00Z&to=2026-12-01T12:00:00Z&limit=1&cursor=${page.nextCursor}`)).json();
    expect(next.items.map((d: { appointment: string }) => d.appointment)).toEqual(['c2-2']);
    expect((await api('GET', '/api/deliveries?state=sent&from=2026-12-01T11:00:00Z&to=2026-12-01T12:00:00Z')).json().items).toEqual([]);

    // LINE is fixed; the operator sends c1's link again. It goes out once, under a new retry key.
    refusal.remove();
    const id = page.items[0].id;
    const key = (await w.h.database.db.selectFrom('deliveries').select('retry_key').where('id', '=', id).executeTakeFirstOrThrow()).retry_key;
    // It was tried: LINE might have taken it, so a new message needs force (here LINE refused it, a 400).
    const unforced = await api('POST', `/api/deliveries/${id}/retry`);
    expect([unforced.statusCode, unforced.json().message]).toEqual([409, expect.stringMatching(/tried 1 time\(s\) .*LINE 400.*force=true/)]);
    const retried = await api('POST', `/api/deliveries/${id}/retry?force=true`);
    expect([retried.statusCode, retried.json()]).toEqual([202, { id, state: 'pending' }]);
    await w.advance(31_000);
    expect(w.received().map((r) => r.to)).toEqual([userId(1)]);
    const row = await w.h.database.db.selectFrom('deliveries').select(['state', 'retry_key', 'last_error']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ state: 'sent', last_error: null });
    expect(row.retry_key).not.toBe(key);

    // Sent already: refused with the reason. Unknown: 404. Past its window (the class is over): refused.
    const again = await api('POST', `/api/deliveries/${id}/retry?force=true`);
    expect([again.statusCode, again.json().message]).toEqual([409, expect.stringMatching(/is sent: only a failed or skipped/)]);
    expect((await api('POST', '/api/deliveries/999999/retry')).statusCode).toBe(404);
    // Skipped on its second try (the student unfollowed): the first try may have reached LINE, so force it is.
    const skipped = next.items[0].id;
    await w.h.database.db.updateTable('deliveries').set({ state: 'skipped', attempts: 2, last_error: 'the student unfollowed (blocked) the LINE account' }).where('id', '=', skipped).execute();
    const secondTry = await api('POST', `/api/deliveries/${skipped}/retry`);
    expect([secondTry.statusCode, secondTry.json().message]).toEqual([409, expect.stringMatching(/tried 2 time\(s\) .*unfollowed.*force=true/)]);
    // Skipped on its first try, it never went to LINE: no force needed.
    await w.h.database.db.updateTable('deliveries').set({ attempts: 1 }).where('id', '=', skipped).execute();
    expect((await api('POST', `/api/deliveries/${skipped}/retry`)).statusCode).toBe(202);
    await w.h.database.db.updateTable('deliveries').set({ state: 'failed' }).where('id', '=', skipped).execute();
    await w.at('2026-12-01T12:51:00Z');
    const late = await api('POST', `/api/deliveries/${next.items[0].id}/retry?force=true`);
    expect([late.statusCode, late.json().message]).toEqual([409, expect.stringMatching(/past its window \(useful until 2026-12-01T12:50:00.000Z\)/)]);
    expect((await api('GET', '/api/deliveries?from=2026-12-01T13:00:00Z&to=2026-12-01T12:00:00Z')).statusCode).toBe(400);
  });

  it('the list walks the (due_at, id) index, not the whole history', async () => {
    w = await openEngineWorld(dialect);
    const db = w.h.database.db;
    const query = deliveriesListQuery(db, { from: new Date('2026-12-01T00:00:00Z'), to: new Date('2026-12-02T00:00:00Z'), state: 'failed', limit: 100 }).compile();
    const plan = await db.transaction().execute(async (trx) => {
      // A planner would rightly scan a table this small: PostgreSQL is told not to, to show the index is usable.
      if (dialect === 'postgres') await sql`set local enable_seqscan = off`.execute(trx);
      const rows = await trx.executeQuery(CompiledQuery.raw(`${dialect === 'postgres' ? 'explain' : 'explain query plan'} ${query.sql}`, [...query.parameters]));
      return JSON.stringify(rows.rows);
    });
    expect(plan).toContain('deliveries_due');
  });
});
