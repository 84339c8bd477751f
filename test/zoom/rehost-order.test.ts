import { afterEach, describe, expect, it } from 'vitest';
import { updateZoomAccount } from '../../src/zoom/accounts.ts';
import { reserveHost } from '../../src/zoom/hosts.ts';
import { dialects } from '../support/databases.ts';
import { openZoomWorld, type ZoomWorld } from './world.ts';

const REFUSED = { status: 401, body: { code: 124, message: 'Invalid access token.' } };

/**
 * A re-host makes the new meeting before it deletes the old one, deletes the old one as a side task
 * that never holds the class's own work back, and keeps the old one's host time held until it is gone.
 */
describe.each(dialects)('re-host order and the replaced meeting on %s', (dialect) => {
  let world: ZoomWorld;
  afterEach(async () => {
    await world?.close();
  });

  const setEnabled = (label: string, enabled: boolean) => updateZoomAccount(world.database.db, world.box, world.clock, world.hostIds.get(label) ?? 0, { enabled });
  const row = (id = 's1') => world.database.db.selectFrom('schedules').selectAll().where('external_id', '=', id).executeTakeFirstOrThrow();
  const live = (id = 's1') => world.em.meetings().filter((m) => !m.deleted && m.agenda.includes(`[scheduler:${id}]`));
  const twoHosts = (config: Record<string, unknown> = {}) =>
    openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }, { label: 'b', plan: 'licensed' }], { config: { zoom: { provisioning: { retryDelay: '1m', concurrency: 1, ...config } } } });

  /** s1 at 10:00 and y at 12:00, both on host a; then s1 moves to 12:00, where a is busy: it must go to b. */
  const movedOntoBusyHost = async (): Promise<string> => {
    await setEnabled('b', false);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('y', '2026-12-01T12:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 2 });
    await setEnabled('b', true);
    await world.schedule('s1', '2026-12-01T12:00:00Z', 50);
    return (await world.meetingOf('s1')).meetingId ?? '';
  };
  /** The re-host made, with the old meeting's DELETE failing (503) from then on. */
  const rehostedOldUndeleted = async (): Promise<{ old: string; replacement: string }> => {
    const old = await movedOntoBusyHost();
    world.em.faults.add({ method: 'DELETE', path: new RegExp(`/meetings/${old}$`), times: Infinity, fault: { status: 503 } });
    expect((await world.provisioner().runPass()).outcomes).toMatchObject({ moved: 1, created: 1 });
    expect(world.em.meeting(Number(old))?.deleted).toBe(false);
    return { old, replacement: (await world.meetingOf('s1')).meetingId ?? '' };
  };

  it('moves the class again while the replaced meeting cannot be deleted', async () => {
    world = await twoHosts();
    const { replacement } = await rehostedOldUndeleted();
    await world.schedule('s1', '2026-12-01T15:00:00Z', 50);
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ replaced_retry: 1, updated: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'b', meetingId: replacement, version: 3, meetingVersion: 3 });
    expect(new Date(world.em.meeting(Number(replacement))?.startTime ?? 0).toISOString()).toBe('2026-12-01T15:00:00.000Z');
    // The DELETE backs off on its own counters; the class's stay clean.
    expect(await row()).toMatchObject({ replaced_attempts: 2, meeting_attempts: 0, meeting_retry_at: null });
  });

  it('deletes the cancelled class meeting while the replaced meeting cannot be deleted, and the replaced one once it can', async () => {
    world = await twoHosts();
    const { old, replacement } = await rehostedOldUndeleted();
    await world.schedule('s1', '2026-12-01T12:00:00Z', 50, { cancelled: true });
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ replaced_retry: 1, deleted: 1 });
    expect(world.em.meeting(Number(replacement))?.deleted).toBe(true);
    world.em.faults.clear();
    await world.clock.advance(60 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ replaced_deleted: 1 });
    expect(world.em.meeting(Number(old))?.deleted).toBe(true);
    expect(await row()).toMatchObject({ meeting_state: 'deleted', replaced_meeting_id: null, replaced_window_start: null });
    await world.clock.advance(60 * 60_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);
  });

  it('takes a replaced meeting its (still enabled) host is refused for as left, asks for a hand deletion, and applies a later cancel', async () => {
    world = await twoHosts();
    const old = await movedOntoBusyHost();
    // Zoom now refuses host a's credentials: the move cannot stay on a, and the old meeting's DELETE is refused alike.
    world.em.faults.add({ method: 'PATCH', path: new RegExp(`/meetings/${old}$`), times: Infinity, fault: REFUSED });
    world.em.faults.add({ method: 'DELETE', path: new RegExp(`/meetings/${old}$`), times: Infinity, fault: REFUSED });
    expect((await world.provisioner().runPass()).outcomes).toMatchObject({ moved: 1, created: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'b', error: expect.stringMatching(new RegExp(`replaced meeting ${old} was left at Zoom on host a: Zoom refuses the host .*delete it there by hand`)) });
    expect(await row()).toMatchObject({ replaced_meeting_id: null });
    const replacement = (await world.meetingOf('s1')).meetingId;
    await world.schedule('s1', '2026-12-01T12:00:00Z', 50, { cancelled: true });
    await world.clock.advance(60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ deleted: 1 });
    expect(world.em.meeting(Number(replacement))?.deleted).toBe(true);
  });

  it('keeps the old meeting as the class meeting when Zoom refuses the new one, and moves it after a backoff', async () => {
    world = await twoHosts();
    const old = await movedOntoBusyHost();
    const refusal = world.em.faults.add({ method: 'POST', path: /\/users\/user-b\/meetings$/, times: Infinity, fault: { status: 400, body: { code: 3000, message: 'Cannot create meeting' } } });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ move_blocked: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'a', meetingId: old, version: 2, meetingVersion: 1, error: expect.stringMatching(/creating its meeting on b failed .*3000.*its meeting stays as it was/) });
    expect(await row()).toMatchObject({ join_url: world.em.meeting(Number(old))?.joinUrl ?? 'x', host_window_start: expect.anything(), replaced_meeting_id: null, meeting_attempts: 1 });
    expect(live().map((m) => String(m.id))).toEqual([old]);
    // b's window at 12:00 was handed back: another class takes it.
    await world.schedule('z', '2026-12-01T12:00:00Z', 50);
    refusal.remove();
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    expect(await world.meetingOf('z')).toMatchObject({ host: 'b' });
    // Once b frees up at 12:00 (z cancelled) and the backoff is over, the move goes through.
    await world.schedule('z', '2026-12-01T12:00:00Z', 50, { cancelled: true });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ deleted: 1 });
    await world.clock.advance(2 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ moved: 1, created: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'b', meetingVersion: 2 });
    expect(world.em.meeting(Number(old))?.deleted).toBe(true);
    expect(live()).toHaveLength(1);
  });

  it('deletes the old meeting only after a new one made behind an error answer is adopted, and holds its host time until then', async () => {
    world = await twoHosts();
    const old = await movedOntoBusyHost();
    // Zoom makes the meeting but answers 502; its listing lags, so the intent stays (the old meeting remembered, not deleted).
    world.em.faults.add({ method: 'POST', path: /\/users\/user-b\/meetings$/, fault: { kind: 'after-commit-error', status: 502 } });
    const listing = world.em.faults.add({ method: 'GET', path: /\/users\/user-b\/meetings$/, times: Infinity, fault: { status: 503 } });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ unresolved: 1 });
    expect(await row()).toMatchObject({ meeting_state: 'creating', meeting_id: null, replaced_meeting_id: old });
    expect(world.em.meeting(Number(old))?.deleted).toBe(false);
    // Meanwhile a class at the old time cannot take host a, where the old meeting is still live.
    await world.schedule('x', '2026-12-01T10:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    expect(await world.meetingOf('x')).toMatchObject({ host: 'b' });
    listing.remove();
    await world.clock.advance(2 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ adopted: 1 });
    await world.clock.advance(2 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ replaced_deleted: 1 });
    expect(world.em.meeting(Number(old))?.deleted).toBe(true);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'b', meetingVersion: 2 });
    expect(live()).toHaveLength(1);
    expect(world.em.overlaps({ activeOnly: true })).toEqual([]);
  });

  it('gives the class its old meeting back when recovery finds the re-host made nothing', async () => {
    world = await twoHosts();
    const old = await movedOntoBusyHost();
    world.em.faults.add({ method: 'POST', path: /\/users\/user-b\/meetings$/, fault: { kind: 'drop' } });
    const listing = world.em.faults.add({ method: 'GET', path: /\/users\/user-b\/meetings$/, times: Infinity, fault: { status: 503 } });
    await world.provisioner('dead').runPass();
    listing.remove();
    expect(await row()).toMatchObject({ meeting_state: 'creating', replaced_meeting_id: old });
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ rehost_dropped: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: 'a', meetingId: old, version: 2, meetingVersion: 1 });
    expect(await row()).toMatchObject({ replaced_meeting_id: null, join_url: world.em.meeting(Number(old))?.joinUrl ?? 'x' });
    expect(world.em.meeting(Number(old))?.deleted).toBe(false);
    // The next pass moves it again.
    expect((await world.provisioner().runPass()).outcomes).toEqual({ moved: 1, created: 1 });
    expect(world.em.meeting(Number(old))?.deleted).toBe(true);
    expect(live()).toHaveLength(1);
  });

  it('holds the replaced meeting host window until it is deleted, in the ranking and under the reservation lock', async () => {
    world = await twoHosts();
    await rehostedOldUndeleted();
    // Two classes at s1's old time (10:00): a still runs the old meeting then, so only b can take one.
    await world.schedule('x1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('x2', '2026-12-01T10:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1, no_capacity: 1 });
    expect(world.em.overlaps({ activeOnly: true })).toEqual([]);
    // The same check under the reservation's lock (what another replica's pass would meet).
    const x = await world.database.db.updateTable('schedules').set({ meeting_lease_owner: 'w' }).where('meeting_state', '=', 'no_capacity').returning(['id', 'version']).executeTakeFirstOrThrow();
    const reserve = () =>
      reserveHost(world.database.db, { scheduleId: x.id, hostId: world.hostIds.get('a') ?? 0, windowStart: new Date('2026-12-01T09:50:00Z'), windowEnd: new Date('2026-12-01T11:00:00Z'), day: '2026-12-01', writeCap: 90, leaseOwner: 'w', attemptId: 'r', version: x.version, state: 'creating', now: world.clock.now() });
    expect((await reserve()).result).toBe('busy');
    // Once the old meeting is deleted, a is free at 10:00 again.
    world.em.faults.clear();
    await world.database.db.updateTable('schedules').set({ meeting_lease_owner: null }).where('id', '=', x.id).execute();
    await world.clock.advance(60 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toMatchObject({ replaced_deleted: 1 });
    await world.clock.advance(60 * 60_000);
    await world.provisioner().runPass();
    expect(await world.meetingOf('x1')).toMatchObject({ state: 'ready' });
    expect(await world.meetingOf('x2')).toMatchObject({ state: 'ready' });
  });
});
