import { afterEach, describe, expect, it } from 'vitest';
import { listZoomAccounts } from '../../src/zoom/accounts.ts';
import { capacityReport } from '../../src/zoom/capacity.ts';
import { dialects } from '../support/databases.ts';
import { openZoomWorld, type ZoomWorld } from './world.ts';

const USER_GONE = { status: 404, body: { code: 1001, message: 'User does not exist: user-a' } };

/** A host Zoom refuses for good says why on the host itself, until it works again. */
describe.each(dialects)('host refusals on %s', (dialect) => {
  let world: ZoomWorld;
  afterEach(async () => {
    await world?.close();
  });

  const hosts = async () => new Map((await listZoomAccounts(world.database.db)).map((a) => [a.label, a]));
  const capacity = () => {
    const zoom = world.config.current().zoom;
    return capacityReport(world.database.db, { ...zoom.meeting, basic: zoom.basic }, { from: world.clock.now(), days: 1, horizonMs: zoom.provisioning.horizon.ms, hostWriteCap: zoom.quota.hostMeetingWrites });
  };

  it('keeps the reason on the host, shows it in the pool and capacity listings, and clears it once the host works', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }, { label: 'b', plan: 'licensed' }], { config: { zoom: { provisioning: { concurrency: 1 } } } });
    const gone = world.em.faults.add({ method: 'POST', path: /\/users\/user-a\/meetings$/, times: Infinity, fault: USER_GONE });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'b', error: null });
    const refusedAt = world.clock.now();
    expect((await hosts()).get('a')).toMatchObject({ refusedReason: expect.stringMatching(/refused by Zoom: Zoom answered 404 code 1001/), refusedAt });
    expect((await hosts()).get('b')).toMatchObject({ refusedReason: null, refusedAt: null });
    const report = await capacity();
    expect(report.refused).toEqual([{ id: world.hostIds.get('a'), label: 'a', plan: 'licensed', reason: expect.stringMatching(/1001/), since: refusedAt.toISOString() }]);
    expect(report.hosts).toEqual({ licensed: 1, basic: 0 });

    // Zoom takes the host again: the next class only it can take (b is busy then) clears the reason.
    gone.remove();
    await world.clock.advance(60_000);
    await world.schedule('s2', '2026-12-01T10:30:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    expect(await world.meetingOf('s2')).toMatchObject({ state: 'ready', host: 'a' });
    expect((await hosts()).get('a')).toMatchObject({ refusedReason: null, refusedAt: null });
    expect((await capacity()).refused).toEqual([]);
  });

  it('marks every host of an account whose credentials Zoom refuses', async () => {
    world = await openZoomWorld(dialect, [
      { label: 'a', plan: 'licensed', accountId: 'shared' },
      { label: 'a2', plan: 'licensed', accountId: 'shared' },
      { label: 'b', plan: 'licensed' },
    ]);
    world.em.faults.add({ method: 'POST', path: /\/users\/user-a2?\/meetings$/, times: Infinity, fault: { status: 401, body: { code: 124, message: 'Invalid access token.' } } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    const byLabel = await hosts();
    expect(byLabel.get('a')?.refusedReason).toMatch(/401/);
    expect(byLabel.get('a2')?.refusedReason).toMatch(/401/);
    expect(byLabel.get('b')?.refusedReason).toBeNull();
  });
});
