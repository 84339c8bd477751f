import { afterEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openZoomWorld, type ZoomWorld } from './world.ts';

/** Zoom resets a host's meeting writes at 00:00 UTC: a pass running across it counts each write on its own day. */
describe.each(dialects)('host write days on %s', (dialect) => {
  let world: ZoomWorld;
  afterEach(async () => {
    await world?.close();
  });

  it('charges writes made after 00:00 UTC during a pass to the new day, and uses its budget', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }], {
      start: '2026-12-01T23:59:58Z',
      config: { zoom: { quota: { hostMeetingWrites: 5 }, provisioning: { concurrency: 1 } } },
    });
    const hostId = world.hostIds.get('h') ?? 0;
    // All but one of the old day's writes are spent.
    await world.database.db.insertInto('zoom_host_usage').values({ zoom_account_id: hostId, day: '2026-12-01', meeting_writes: 4 }).execute();
    await world.schedule('s1', '2026-12-02T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-02T12:00:00Z', 50);
    // The first create is still in flight when midnight passes.
    const slow = world.em.faults.add({ method: 'POST', path: /\/meetings$/, fault: { kind: 'delay', ms: 5_000 } });
    const pass = world.provisioner().runPass();
    await slow.triggered;
    await world.clock.advance(5_000);
    expect((await pass).outcomes).toEqual({ created: 2 });
    const usage = await world.database.db.selectFrom('zoom_host_usage').selectAll().orderBy('day').execute();
    expect(usage.map((u) => [u.day, Number(u.meeting_writes)])).toEqual([
      ['2026-12-01', 5],
      ['2026-12-02', 1],
    ]);
  });
});
