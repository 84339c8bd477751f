import { afterEach, describe, expect, it } from 'vitest';
import { listZoomAccounts, updateZoomAccount } from '../../src/zoom/accounts.ts';
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

  /** Hosts a and a2 share an account whose credentials Zoom refuses (until the fault is removed); b is another account. */
  const sharedAccountRefused = async () => {
    world = await openZoomWorld(
      dialect,
      [
        { label: 'a', plan: 'licensed', accountId: 'shared' },
        { label: 'a2', plan: 'licensed', accountId: 'shared' },
        { label: 'b', plan: 'licensed' },
      ],
      { config: { zoom: { provisioning: { concurrency: 1 } } } },
    );
    return world.em.faults.add({ method: 'POST', path: /\/users\/user-a2?\/meetings$/, times: Infinity, fault: { status: 401, body: { code: 124, message: 'Invalid access token.' } } });
  };
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

  it('keeps when a host was first refused while Zoom keeps refusing it pass after pass', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }, { label: 'b', plan: 'licensed' }], { config: { zoom: { provisioning: { concurrency: 1 } } } });
    world.em.faults.add({ method: 'POST', path: /\/users\/user-a\/meetings$/, times: Infinity, fault: USER_GONE });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.provisioner().runPass();
    const first = world.clock.now();
    await world.clock.advance(6 * 60 * 60_000);
    // Only a can take s2 by its ranking (b was assigned last): a is tried, and refused again.
    await world.schedule('s2', '2026-12-01T13:00:00Z', 50);
    await world.provisioner().runPass();
    expect((await hosts()).get('a')).toMatchObject({ refusedReason: expect.stringMatching(/1001/), refusedAt: first });
    expect((await capacity()).refused).toEqual([expect.objectContaining({ label: 'a', since: first.toISOString() })]);
  });

  it('clears only the account-wide refusals of the account whose host works, not a host refused on its own', async () => {
    const refused = await sharedAccountRefused();
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    // A host with its own refusal (its user gone) in the same account is not cleared by the credentials working.
    await world.database.db.updateTable('zoom_accounts').set({ refused_reason: 'refused by Zoom: 1001 gone', refused_account_wide: false }).where('label', '=', 'a2').execute();
    expect((await capacity()).refused.map((h) => h.label)).toEqual(['a', 'a2']);
    refused.remove();
    await world.clock.advance(60_000);
    // Another account's credentials refused: not this account's to clear.
    await world.database.db.updateTable('zoom_accounts').set({ refused_reason: 'refused by Zoom: 401', refused_account_wide: true }).where('label', '=', 'b').execute();
    // A class only a can take now.
    await world.schedule('s2', '2026-12-01T14:00:00Z', 50);
    await world.database.db.updateTable('zoom_accounts').set({ enabled: false }).where('label', 'in', ['a2', 'b']).execute();
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    expect(await world.meetingOf('s2')).toMatchObject({ host: 'a' });
    const after = await hosts();
    expect(after.get('a')).toMatchObject({ refusedReason: null, refusedAt: null });
    // a2 had its own reason; b is another account's.
    expect(after.get('a2')?.refusedReason).toMatch(/1001/);
    expect(after.get('b')?.refusedReason).toMatch(/401/);
  });

  it('clears the refusal of the account sibling that has no work of its own', async () => {
    const refused = await sharedAccountRefused();
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.provisioner().runPass();
    refused.remove();
    await updateZoomAccount(world.database.db, world.box, world.clock, world.hostIds.get('b') ?? 0, { enabled: false });
    await world.clock.advance(60_000);
    await world.schedule('s2', '2026-12-01T14:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    expect((await hosts()).get('a')?.refusedReason ?? null).toBeNull();
    expect((await hosts()).get('a2')?.refusedReason ?? null).toBeNull();
    expect((await capacity()).refused).toEqual([]);
  });

  it('clears a refusal when an operator sets new credentials or enables the host again', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }, { label: 'b', plan: 'licensed' }]);
    const id = (label: string) => world.hostIds.get(label) ?? 0;
    await world.database.db.updateTable('zoom_accounts').set({ refused_reason: 'refused by Zoom: 401', refused_at: world.clock.now(), refused_account_wide: true }).execute();
    await updateZoomAccount(world.database.db, world.box, world.clock, id('a'), { label: 'a-renamed' });
    expect((await hosts()).get('a-renamed')?.refusedReason).toMatch(/401/);
    await updateZoomAccount(world.database.db, world.box, world.clock, id('a'), { clientSecret: 'secret-acc-a' });
    expect((await hosts()).get('a-renamed')).toMatchObject({ refusedReason: null, refusedAt: null });
    await updateZoomAccount(world.database.db, world.box, world.clock, id('b'), { enabled: false });
    expect((await hosts()).get('b')?.refusedReason).toMatch(/401/);
    await updateZoomAccount(world.database.db, world.box, world.clock, id('b'), { enabled: true });
    expect((await hosts()).get('b')).toMatchObject({ refusedReason: null, refusedAt: null });
  });
});
