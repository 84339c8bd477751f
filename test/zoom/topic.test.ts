import { afterEach, describe, expect, it } from 'vitest';
import { needsRetitle } from '../../src/zoom/decisions.ts';
import { dialects } from '../support/databases.ts';
import { openZoomWorld, type ZoomWorld } from './world.ts';

const LIST = /\/users\/.*\/meetings$/;

describe('whether a meeting topic needs a PATCH', () => {
  const now = new Date('2026-12-01T10:00:00Z');
  const w = (meetingTitle: string | null, endsAt = '2026-12-01T10:30:00Z') => ({ title: 'New', meetingTitle, endsAt: new Date(endsAt) });
  it('only when the title it was made from differs, is known, and the class is not over', () => {
    expect(needsRetitle(w('Old'), now)).toBe(true);
    expect(needsRetitle(w(''), now)).toBe(true); // adopted with another title's topic
    expect(needsRetitle(w('New'), now)).toBe(false);
    expect(needsRetitle(w(null), now)).toBe(false);
    expect(needsRetitle(w('Old', '2026-12-01T10:00:00Z'), now)).toBe(false);
  });
});

/** A title change keeps the class version (deliveries keep their times), yet the meeting's topic follows it. */
describe.each(dialects)('meeting topics following class titles on %s', (dialect) => {
  let world: ZoomWorld;
  afterEach(async () => {
    await world?.close();
  });

  const topic = async (externalId: string) => world.em.meeting(Number((await world.meetingOf(externalId)).meetingId))?.topic;
  const writes = async () => (await world.database.db.selectFrom('zoom_host_usage').selectAll().orderBy('day').execute()).map((r) => [r.day, Number(r.meeting_writes)]);
  const zoomCalls = () => world.em.requests().filter((r) => !r.path.startsWith('/oauth')).length;

  it('PATCHes the topic once, as one host write, and costs no call when titles have not changed', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-01T12:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 2 });
    expect(await topic('s1')).toBe('class s1');
    const calls = zoomCalls();
    await world.clock.advance(5 * 60_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);

    await world.schedule('s1', '2026-12-01T10:00:00Z', 50, { title: 'Grammar, renamed' });
    expect(await world.meetingOf('s1')).toMatchObject({ version: 1, meetingVersion: 1 });
    const before = await world.meetingOf('s1');
    expect((await world.provisioner().runPass()).outcomes).toEqual({ retitled: 1 });
    expect(await topic('s1')).toBe('Grammar, renamed');
    expect(await topic('s2')).toBe('class s2');
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId: before.meetingId, error: null });
    expect(zoomCalls()).toBe(calls + 1);
    expect(await writes()).toEqual([['2026-12-01', 3]]);
    await world.clock.advance(5 * 60_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);
    expect(zoomCalls()).toBe(calls + 1);
  });

  it('leaves the topic of a class that is over, and closes its meeting as usual', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T01:00:00Z', 50);
    await world.provisioner().runPass();
    await world.clock.set(new Date('2026-12-01T02:30:00Z'));
    await world.schedule('s1', '2026-12-01T01:00:00Z', 50, { title: 'Renamed afterwards' });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ closed: 1 });
    expect(await topic('s1')).toBe('class s1');
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);
  });

  it("waits for 00:00 UTC when the host's writes for the day are spent", async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }], { config: { zoom: { quota: { hostMeetingWrites: 1 } } } });
    await world.schedule('s1', '2026-12-02T10:00:00Z', 50);
    await world.provisioner().runPass();
    await world.schedule('s1', '2026-12-02T10:00:00Z', 50, { title: 'Renamed' });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ retitle_deferred: 1 });
    expect(await topic('s1')).toBe('class s1');
    expect((await world.meetingOf('s1')).error).toMatch(/spent its 1 meeting writes.*after 2026-12-02T00:00:00.000Z/);
    await world.clock.advance(60 * 60_000);
    expect((await world.provisioner().runPass()).claimed).toBe(0);
    await world.clock.set(new Date('2026-12-02T00:00:00Z'));
    expect((await world.provisioner().runPass()).outcomes).toEqual({ retitled: 1 });
    expect(await topic('s1')).toBe('Renamed');
    expect(await writes()).toEqual([['2026-12-01', 1], ['2026-12-02', 1]]);
  });

  it('re-titles a meeting adopted after a crash whose topic is of an older title', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    world.em.faults.add({ method: 'POST', path: /\/meetings$/, fault: { kind: 'after-commit-drop' } });
    const list = world.em.faults.add({ method: 'GET', path: LIST, times: Infinity, fault: { status: 503 } });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ unresolved: 1 });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50, { title: 'Renamed meanwhile' });
    list.remove();
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ adopted: 1 });
    expect(await topic('s1')).toBe('class s1');
    expect((await world.provisioner().runPass()).outcomes).toEqual({ retitled: 1 });
    expect(await topic('s1')).toBe('Renamed meanwhile');
  });
});
