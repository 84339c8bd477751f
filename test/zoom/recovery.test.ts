import { afterEach, describe, expect, it } from 'vitest';
import { updateZoomAccount } from '../../src/zoom/accounts.ts';
import { dialects } from '../support/databases.ts';
import { openZoomWorld, type ZoomWorld } from './world.ts';

const LIST = /\/users\/.*\/meetings$/;
/** A listing that has not caught up with a create yet (Zoom's lists may lag). */
const EMPTY_LIST = { status: 200, body: { page_size: 300, total_records: 0, next_page_token: '', meetings: [] } };

/** Crash recovery of meeting intents: never two meetings for a class, and the meeting follows the class. */
describe.each(dialects)('meeting intent recovery on %s', (dialect) => {
  let world: ZoomWorld;
  afterEach(async () => {
    await world?.close();
  });

  const live = () => world.em.meetings().filter((m) => !m.deleted);

  /** A create Zoom acted on but never answered, while the listing is down: an intent is left behind. */
  const leaveIntent = async (): Promise<{ removeListFault(): void }> => {
    world.em.faults.add({ method: 'POST', path: /\/meetings$/, fault: { kind: 'after-commit-drop' } });
    const list = world.em.faults.add({ method: 'GET', path: LIST, times: Infinity, fault: { status: 503 } });
    expect((await world.provisioner('first').runPass()).outcomes).toEqual({ unresolved: 1 });
    expect((await world.meetingOf('s1')).state).toBe('creating');
    expect(live()).toHaveLength(1);
    return { removeListFault: () => list.remove() };
  };

  it('keeps the intent while the listing still fails on a later pass, then adopts: one meeting', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    const intent = await leaveIntent();
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner('second').runPass()).outcomes).toEqual({ unresolved: 1 });
    expect((await world.meetingOf('s1')).state).toBe('creating');
    intent.removeListFault();
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner('third').runPass()).outcomes).toEqual({ adopted: 1 });
    expect(live()).toHaveLength(1);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: String(live()[0]?.id), meetingVersion: 1 });
  });

  it('looks on the reserved host even after it was disabled, instead of creating on another', async () => {
    world = await openZoomWorld(dialect, [
      { label: 'a', plan: 'licensed' },
      { label: 'b', plan: 'licensed' },
    ]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    const intent = await leaveIntent();
    const reserved = (await world.meetingOf('s1')).host ?? '';
    await updateZoomAccount(world.database.db, world.box, world.clock, world.hostIds.get(reserved) ?? 0, { enabled: false });
    await world.clock.advance(10 * 60_000);
    // Zoom cannot be asked: nothing is created on the other host.
    expect((await world.provisioner('second').runPass()).outcomes).toEqual({ unresolved: 1 });
    expect(live()).toHaveLength(1);
    intent.removeListFault();
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner('third').runPass()).outcomes).toEqual({ adopted: 1 });
    expect(live()).toHaveLength(1);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', host: reserved, meetingId: String(live()[0]?.id) });
  });

  it('places the class afresh when the disabled reserved host is refused by Zoom for good (401)', async () => {
    world = await openZoomWorld(dialect, [
      { label: 'a', plan: 'licensed' },
      { label: 'b', plan: 'licensed' },
    ]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    const intent = await leaveIntent();
    intent.removeListFault();
    const reserved = (await world.meetingOf('s1')).host ?? '';
    await updateZoomAccount(world.database.db, world.box, world.clock, world.hostIds.get(reserved) ?? 0, { enabled: false });
    // Its credentials were revoked: every listing there is refused.
    world.em.faults.add({ method: 'GET', path: LIST, times: Infinity, fault: { status: 401, body: { code: 124, message: 'Invalid access token.' } } });
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner('second').runPass()).outcomes).toEqual({ created: 1 });
    const other = (await world.meetingOf('s1')).host;
    expect(other).not.toBe(reserved);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingVersion: 1 });
  });

  it('stamps an adopted meeting with the version it was made for, so a class moved meanwhile gets its meeting moved', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    const intent = await leaveIntent();
    intent.removeListFault();
    await world.schedule('s1', '2026-12-01T14:00:00Z', 50); // version 2
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ adopted: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', version: 2, meetingVersion: 1 });
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ updated: 1 });
    const m = await world.meetingOf('s1');
    expect(m).toMatchObject({ state: 'ready', version: 2, meetingVersion: 2 });
    expect(live()).toHaveLength(1);
    expect(Date.parse(world.em.meeting(Number(m.meetingId))?.startTime ?? '')).toBe(Date.parse('2026-12-01T14:00:00Z'));
  });

  it('finishes a move left half-done by a crash (PATCH never sent), and stamps the version it moved to', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.provisioner().runPass();
    const before = await world.meetingOf('s1');
    await world.schedule('s1', '2026-12-01T12:00:00Z', 50);
    // The worker reserved the new window (state `updating`), then died before its PATCH reached Zoom.
    await world.database.db
      .updateTable('schedules')
      .set({
        meeting_state: 'updating',
        meeting_lease_owner: 'dead',
        meeting_lease_expires_at: new Date('2026-12-01T00:01:00Z'),
        host_window_start: new Date('2026-12-01T11:50:00Z'),
        host_window_end: new Date('2026-12-01T13:00:00Z'),
      })
      .where('external_id', '=', 's1')
      .execute();
    await world.clock.advance(5 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ updated: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: before.meetingId, version: 2, meetingVersion: 2 });
    expect(Date.parse(world.em.meeting(Number(before.meetingId))?.startTime ?? '')).toBe(Date.parse('2026-12-01T12:00:00Z'));
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);
  });

  it('treats a ready meeting with no version recorded as needing work', async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.provisioner().runPass();
    await world.schedule('s1', '2026-12-01T12:00:00Z', 50);
    // As the old recovery left it: adopted, version unknown.
    await world.database.db.updateTable('schedules').set({ meeting_version: null }).where('external_id', '=', 's1').execute();
    expect((await world.provisioner().runPass()).outcomes).toEqual({ updated: 1 });
    const m = await world.meetingOf('s1');
    expect(m).toMatchObject({ state: 'ready', meetingVersion: 2 });
    expect(Date.parse(world.em.meeting(Number(m.meetingId))?.startTime ?? '')).toBe(Date.parse('2026-12-01T12:00:00Z'));
  });

  it('keeps the intent when the listing right after a timed-out create lags, and adopts on a later pass', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }], { config: { zoom: { provisioning: { retryDelay: '1m' } } } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    world.em.faults.add({ method: 'POST', path: /\/meetings$/, fault: { kind: 'after-commit-drop' } });
    // The meeting was made, but the next two listings do not show it yet.
    world.em.faults.add({ method: 'GET', path: LIST, times: 2, fault: EMPTY_LIST });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ unresolved: 1 });
    expect((await world.meetingOf('s1')).state).toBe('creating');
    // The retry delay passed but the intent is still young: the second empty listing creates nothing.
    await world.clock.advance(2 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ unresolved: 1 });
    expect(live()).toHaveLength(1);
    await world.clock.advance(2 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ adopted: 1 });
    expect(live()).toHaveLength(1);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: String(live()[0]?.id), meetingVersion: 1 });
  });

  it('creates anew once an intent is old enough and Zoom still lists no meeting for it', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    // The connection dropped before Zoom did anything.
    world.em.faults.add({ method: 'POST', path: /\/meetings$/, fault: { kind: 'drop' } });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ unresolved: 1 });
    expect(live()).toHaveLength(0);
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    expect(live()).toHaveLength(1);
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: String(live()[0]?.id), meetingVersion: 1 });
  });

  /** Every meeting live at Zoom is one a schedule row points to: none is left orphaned. */
  const orphans = async () => {
    const rows = await world.database.db.selectFrom('schedules').select('meeting_id').where('meeting_id', 'is not', null).execute();
    const known = new Set(rows.map((r) => r.meeting_id));
    return live().filter((m) => !known.has(String(m.id)));
  };

  it('keeps listing for an intent of a class that is over until it finds the meeting Zoom made: no orphan', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T00:30:00Z', 50);
    const intent = await leaveIntent();
    await world.clock.set(new Date('2026-12-01T01:30:00Z'));
    // The listing still fails: the intent stays, listed again after a backoff.
    expect((await world.provisioner().runPass()).outcomes).toEqual({ unresolved: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'creating', error: expect.stringMatching(/class is over/) });
    intent.removeListFault();
    await world.clock.advance(2 * 60 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ adopted: 1 });
    expect(await orphans()).toEqual([]);
    // Adopted, it is closed to late students as any finished class's meeting.
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ closed: 1 });
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);
    expect(live()).toHaveLength(1);
    expect(await orphans()).toEqual([]);
  });

  it('gives up listing days after the class, naming what may be left at Zoom', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T00:30:00Z', 50);
    await leaveIntent();
    await world.clock.set(new Date('2026-12-04T01:30:00Z'));
    expect((await world.provisioner().runPass()).outcomes).toEqual({ failed: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'failed', error: expect.stringMatching(/\[scheduler:s1\] may be left at Zoom .*by hand/) });
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);
  });
});
