import { afterEach, describe, expect, it } from 'vitest';
import { updateZoomAccount } from '../../src/zoom/accounts.ts';
import { dialects } from '../support/databases.ts';
import { openZoomWorld, type ZoomWorld } from './world.ts';

const DAILY_LIMIT_MESSAGE =
  'You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00.';

/** A class that moves, is called off or comes back keeps exactly one working meeting, wherever its host is. */
describe.each(dialects)('meetings following their class on %s', (dialect) => {
  let world: ZoomWorld;
  afterEach(async () => {
    await world?.close();
  });

  const live = () => world.em.meetings().filter((m) => !m.deleted);
  const zoomMeeting = async (externalId: string) => world.em.meeting(Number((await world.meetingOf(externalId)).meetingId));
  const setEnabled = (label: string, enabled: boolean) => updateZoomAccount(world.database.db, world.box, world.clock, world.hostIds.get(label) ?? 0, { enabled });

  it('deletes, moves and closes meetings on a host taken out of the pool', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }, { label: 'b', plan: 'licensed' }], { config: { zoom: { provisioning: { concurrency: 1 } } } });
    for (const [id, at] of [['cancel', '10:00'], ['move', '12:00'], ['close', '01:00']] as const) await world.schedule(id, `2026-12-01T${at}:00Z`, 50);
    await setEnabled('b', false);
    await world.provisioner().runPass(); // all on a
    const before = { cancel: await zoomMeeting('cancel'), move: await zoomMeeting('move'), close: await zoomMeeting('close') };
    await setEnabled('b', true);
    await setEnabled('a', false);
    await world.schedule('cancel', '2026-12-01T10:00:00Z', 50, { cancelled: true });
    await world.schedule('move', '2026-12-01T14:00:00Z', 50);
    await world.clock.set(new Date('2026-12-01T02:30:00Z'));
    expect((await world.provisioner().runPass()).outcomes).toEqual({ deleted: 1, moved: 1, created: 1, closed: 1 });
    expect(world.em.meeting(before.cancel?.id ?? 0)?.deleted).toBe(true);
    expect(world.em.meeting(before.move?.id ?? 0)?.deleted).toBe(true);
    expect(await world.meetingOf('move')).toMatchObject({ state: 'ready', host: 'b', meetingVersion: 2 });
    expect(world.em.meeting(before.close?.id ?? 0)?.settings.join_before_host).toBe(false);
    expect(live().filter((m) => m.agenda.includes('[scheduler:move]'))).toHaveLength(1);
  });

  it('records why a meeting was left on a disabled host that Zoom refuses for good', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.provisioner().runPass();
    await setEnabled('a', false);
    world.em.faults.add({ method: 'DELETE', path: /\/meetings\/\d+$/, times: Infinity, fault: { status: 401, body: { code: 124, message: 'Invalid access token.' } } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50, { cancelled: true });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ deleted: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'deleted', error: expect.stringMatching(/left at Zoom: its host is disabled and Zoom refuses it .*401/) });
  });

  it('gives a class called back on while its DELETE was in flight a new meeting', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.provisioner().runPass();
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50, { cancelled: true });
    const deleting = world.em.faults.add({ method: 'DELETE', path: /\/meetings\/\d+$/, fault: { kind: 'delay', ms: 2000 } });
    const pass = world.provisioner('p').runPass();
    await deleting.triggered;
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50); // the platform takes the cancel back
    await world.clock.advance(2000);
    expect((await pass).outcomes).toEqual({ deleted: 1 });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', version: 3, meetingVersion: 3 });
    expect(live()).toHaveLength(1);
  });

  it('opens a closed meeting again when its class moves, and closes it after the new time', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.provisioner().runPass();
    await world.clock.set(new Date('2026-12-01T11:30:00Z'));
    expect((await world.provisioner().runPass()).outcomes).toEqual({ closed: 1 });
    await world.schedule('s1', '2026-12-02T10:00:00Z', 50); // it did not take place: tomorrow instead
    expect((await world.provisioner().runPass()).outcomes).toEqual({ updated: 1 });
    expect((await zoomMeeting('s1'))?.settings.join_before_host).toBe(true);
    await world.clock.set(new Date('2026-12-02T11:30:00Z'));
    expect((await world.provisioner().runPass()).outcomes).toEqual({ closed: 1 });
    expect((await zoomMeeting('s1'))?.settings.join_before_host).toBe(false);
  });

  it("keeps the meeting of a class moved on a host whose day's writes are spent, and moves it after 00:00 UTC", async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }], { config: { zoom: { quota: { hostMeetingWrites: 2 } } } });
    await world.schedule('s1', '2026-12-02T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-02T14:00:00Z', 50);
    await world.provisioner().runPass();
    const before = await world.meetingOf('s1');
    await world.schedule('s1', '2026-12-02T10:15:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ move_deferred: 1 });
    expect(world.em.meeting(Number(before.meetingId))?.deleted).toBe(false);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: before.meetingId, meetingVersion: 1, error: expect.stringMatching(/spent its 2 meeting writes/) });
    expect((await world.provisioner().runPass()).claimed).toBe(0);
    await world.clock.set(new Date('2026-12-02T00:00:01Z'));
    expect((await world.provisioner().runPass()).outcomes).toEqual({ updated: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: before.meetingId, meetingVersion: 2, error: null });
    expect(Date.parse(world.em.meeting(Number(before.meetingId))?.startTime ?? '')).toBe(Date.parse('2026-12-02T10:15:00Z'));
  });

  it("keeps the meeting of a class moved today on a host whose writes are spent, when no other host can take it", async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }], { config: { zoom: { quota: { hostMeetingWrites: 2 } } } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-01T14:00:00Z', 50);
    await world.provisioner().runPass();
    const before = await world.meetingOf('s1');
    await world.schedule('s1', '2026-12-01T10:15:00Z', 50); // Zoom's reset (00:00 UTC) comes after the class
    expect((await world.provisioner().runPass()).outcomes).toEqual({ move_blocked: 1 });
    expect(world.em.meeting(Number(before.meetingId))?.deleted).toBe(false);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: before.meetingId, error: expect.stringMatching(/spent its 2 meeting writes .* after the class starts, and no other host/) });
  });

  it("keeps the meeting when Zoom says the host's daily limit is spent, and leaves that host alone until 00:00 UTC", async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-02T10:00:00Z', 50);
    await world.provisioner().runPass();
    const before = await world.meetingOf('s1');
    world.em.faults.add({ method: 'PATCH', path: /\/meetings\/\d+$/, fault: { status: 429, body: { code: 429, message: DAILY_LIMIT_MESSAGE } } });
    await world.schedule('s1', '2026-12-02T10:15:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ move_deferred: 1 });
    expect(world.em.meeting(Number(before.meetingId))?.deleted).toBe(false);
    expect(live()).toHaveLength(1);
    const host = await world.database.db.selectFrom('zoom_accounts').selectAll().executeTakeFirstOrThrow();
    expect(new Date(host.exhausted_until as string | Date).toISOString()).toBe('2026-12-02T00:00:00.000Z');
    await world.clock.set(new Date('2026-12-02T00:00:01Z'));
    expect((await world.provisioner().runPass()).outcomes).toEqual({ updated: 1 });
  });

  it('keeps the meeting of a moved class when its host is busy then and no other host can take it', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-01T12:00:00Z', 50);
    await world.provisioner().runPass();
    const before = await world.meetingOf('s1');
    await world.schedule('s1', '2026-12-01T12:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ move_blocked: 1 });
    expect(world.em.meeting(Number(before.meetingId))?.deleted).toBe(false);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: before.meetingId, error: expect.stringMatching(/busy then, and no other host can take it/) });
  });
});
