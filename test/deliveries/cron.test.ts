import { afterEach, describe, expect, it } from 'vitest';
import { retryDelivery } from '../../src/deliveries/admin.ts';
import { nextCronTick } from '../../src/deliveries/cron.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { parseConfig } from '../../src/config/load.ts';
import { dialects } from '../support/databases.ts';
import { openEngineWorld, userId, type EngineWorld } from './world.ts';

const ticks = (pattern: string, zone: string, from: string, n: number): string[] => {
  const out: string[] = [];
  let at = new Date(from);
  for (let i = 0; i < n; i++) {
    const next = nextCronTick(pattern, zone, at);
    if (!next) break;
    out.push(next.toISOString());
    at = next;
  }
  return out;
};

describe('cron ticks at :20 and :50', () => {
  it('in Asia/Taipei (UTC+8, no DST)', () => {
    expect(ticks('20,50 * * * *', 'Asia/Taipei', '2026-12-01T11:00:00Z', 4)).toEqual([
      '2026-12-01T11:20:00.000Z',
      '2026-12-01T11:50:00.000Z',
      '2026-12-01T12:20:00.000Z',
      '2026-12-01T12:50:00.000Z',
    ]);
  });

  it('across the spring-forward change in America/New_York: no tick lost, none doubled', () => {
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT. Local 01:20, 01:50, (no 02:xx), 03:20, 03:50.
    expect(ticks('20,50 * * * *', 'America/New_York', '2026-03-08T06:00:00Z', 4)).toEqual([
      '2026-03-08T06:20:00.000Z',
      '2026-03-08T06:50:00.000Z',
      '2026-03-08T07:20:00.000Z',
      '2026-03-08T07:50:00.000Z',
    ]);
  });

  it('across the fall-back change in America/New_York: the repeated hour ticks once per real half hour', () => {
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST; local 01:20 and 01:50 happen twice, an hour apart.
    const got = ticks('20,50 * * * *', 'America/New_York', '2026-11-01T05:00:00Z', 6);
    expect(got).toEqual([
      '2026-11-01T05:20:00.000Z',
      '2026-11-01T05:50:00.000Z',
      '2026-11-01T06:20:00.000Z',
      '2026-11-01T06:50:00.000Z',
      '2026-11-01T07:20:00.000Z',
      '2026-11-01T07:50:00.000Z',
    ]);
  });

  it('rejects a malformed cron expression when the config is loaded', () => {
    expect(() => parseConfig({ notifications: { cron: '61 * * * *' } }, 'test')).toThrow(/notifications.cron/);
  });
});

describe.each(dialects)('cron trigger on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });

  it('sends at the :50 tick what is due by then, and a delivery due between ticks at the next tick', async () => {
    w = await openEngineWorld(dialect, { notifications: { trigger: 'cron' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null }); // due 11:50Z = 19:50 Taipei
    await w.klass('c2', '2026-12-01T12:05:00Z', 50, [2], { feedbackUrl: null }); // due 11:55Z, between ticks
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:50:00Z');
    expect(w.received().map((r) => [r.to.slice(-1), r.at])).toEqual([['1', '2026-12-01T11:50:00.000Z']]);
    await w.at('2026-12-01T12:19:59Z');
    expect(w.received()).toHaveLength(1);
    await w.at('2026-12-01T12:20:00Z');
    expect(w.received().map((r) => [r.to.slice(-1), r.at])).toEqual([
      ['1', '2026-12-01T11:50:00.000Z'],
      ['2', '2026-12-01T12:20:00.000Z'],
    ]);
  });

  it('retries what failed at a tick after its backoff, not at the next tick', async () => {
    w = await openEngineWorld(dialect, { notifications: { trigger: 'cron' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    await w.klass('c2', '2026-12-01T12:05:00Z', 50, [2], { feedbackUrl: null }); // due between ticks
    w.h.emulator.faults.add({ method: 'POST', path: '/v2/bot/message/push', fault: { status: 500 } });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:51:00Z');
    expect(w.h.emulator.requests().map((r) => r.status)).toEqual([500, 200]);
    const sent = w.received();
    expect(sent.map((r) => r.to)).toEqual([userId(1)]);
    expect(Date.parse(sent[0]?.at ?? '')).toBeLessThan(Date.parse('2026-12-01T11:50:30Z'));
    await w.at('2026-12-01T12:19:59Z');
    expect(w.received()).toHaveLength(1); // what was not due at the tick still waits for the next one
  });
  it('sends at the tick what is due by it when the database\'s clock is a little behind ours', async () => {
    w = await openEngineWorld(dialect, { notifications: { trigger: 'cron' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null }); // due 11:50Z, a tick
    w.h.clock.databaseOffsetMs = -150; // by the database it is 11:49:59.850 at the tick
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:51:00Z');
    // Not half an hour later at the next tick (the class would have started).
    expect(w.received().map((r) => [r.to, r.at])).toEqual([[userId(1), '2026-12-01T11:50:00.000Z']]);
  });
  it('takes over a dead worker\'s claim when its lease runs out, not at the next tick', async () => {
    w = await openEngineWorld(dialect, { notifications: { trigger: 'cron' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    // Claimed at the 11:50 tick by a worker that died; its lease runs out at 11:51.
    await w.h.database.db.updateTable('deliveries').set({ state: 'sending', attempts: 1, lease_owner: 'dead', lease_token: 'dead-token', lease_expires_at: new Date('2026-12-01T11:51:00Z') }).execute();
    await w.at('2026-12-01T11:50:30Z');
    await w.engine().start();
    await w.at('2026-12-01T11:52:00Z');
    expect(w.received().map((r) => r.at)).toEqual(['2026-12-01T11:51:00.000Z']);
  });
  it('a row owed already when it is written (a late booking, an operator\'s re-send) goes at once, not at the next tick', async () => {
    w = await openEngineWorld(dialect, { notifications: { trigger: 'cron' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [], { feedbackUrl: null });
    const engine = w.engine();
    await engine.start();
    // Booked at 11:55, five minutes after its link was due: the next tick (12:20) is after the start.
    await w.at('2026-12-01T11:55:00Z');
    await upsertAppointments(w.h.database.db, w.h.clock, [{ externalId: 'c1-1', scheduleExternalId: 'c1', student: { channel: 'school-a', lineUserId: userId(1) }, cancelled: false }], { onDeliveriesChanged: (ids) => engine.notifyChanged(ids) });
    await w.advance(1000);
    expect(w.received().map((r) => r.at)).toEqual(['2026-12-01T11:55:00.000Z']);
    // The operator sends it again (as if it had failed): it goes at once too.
    const row = await w.h.database.db.selectFrom('deliveries').select('id').executeTakeFirstOrThrow();
    await w.h.database.db.updateTable('deliveries').set({ state: 'failed', last_error: 'LINE 400' }).execute();
    await retryDelivery(w.h.database.db, w.h.clock, row.id, { force: true });
    engine.notifyChanged([row.id]);
    await w.advance(1000);
    expect(w.received().map((r) => r.at)).toEqual(['2026-12-01T11:55:00.000Z', '2026-12-01T11:55:01.000Z']);
  });
});
