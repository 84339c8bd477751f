import { afterEach, describe, expect, it, vi } from 'vitest';
import { meetingMarker } from '../../src/zoom/allocation.ts';
import { failureBackoffMs } from '../../src/zoom/decisions.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { dialects } from '../support/databases.ts';
import { openZoomWorld, type ZoomWorld } from './world.ts';

/**
 * Waits until `check` passes, moving virtual time a second per failed look for at most `budgetMs`.
 * One long advance would go past a pass armed when an earlier pass ends, and time out the Zoom calls
 * of a pass in flight.
 */
async function within(world: ZoomWorld, budgetMs: number, check: () => Promise<void>): Promise<void> {
  const until = world.clock.now().getTime() + budgetMs;
  await vi.waitFor(
    async () => {
      try {
        await check();
      } catch (error) {
        if (world.clock.now().getTime() < until) await world.clock.advance(1000);
        throw error;
      }
    },
    { timeout: 10_000, interval: 5 },
  );
}

const DAILY_LIMIT_MESSAGE =
  'You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00.';

describe('meeting work backoff', () => {
  it('doubles retryDelay with each failure in a row, up to 2 h (or retryDelay, if longer)', () => {
    const minutes = (attempts: number, retryMinutes = 5) => failureBackoffMs(retryMinutes * 60_000, attempts) / 60_000;
    expect([1, 2, 3, 4, 5, 6, 40].map((n) => minutes(n))).toEqual([5, 10, 20, 40, 80, 120, 120]);
    expect(minutes(3, 180)).toBe(180);
  });
});

describe.each(dialects)('meeting provisioning on %s', (dialect) => {
  let world: ZoomWorld;
  afterEach(async () => {
    await world?.close();
  });

  it('closes a finished class\'s meeting to late students (join before host off), once, and waits while it runs', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-01T12:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ created: 2 });
    const [m1, m2] = ['s1', 's2'].map((id) => world.em.meetings().find((m) => m.agenda.includes(`[scheduler:${id}]`)));
    expect(m1?.settings.join_before_host).toBe(true);
    // s2 overruns: still running after its after-class buffer.
    world.em.startMeeting(m2?.id ?? 0);
    await world.clock.set(new Date('2026-12-01T13:30:00Z'));
    expect((await world.provisioner().runPass()).outcomes).toEqual({ closed: 1, failed: 1 });
    expect(world.em.meeting(m1?.id ?? 0)?.settings.join_before_host).toBe(false);
    expect(world.em.meeting(m1?.id ?? 0)?.deleted).toBe(false); // the meeting and its recordings stay
    world.em.endMeeting(m2?.id ?? 0);
    await world.clock.advance(10 * 60_000); // after retryDelay
    expect((await world.provisioner().runPass()).outcomes).toEqual({ closed: 1 });
    expect(world.em.meeting(m2?.id ?? 0)?.settings.join_before_host).toBe(false);
    await world.clock.advance(10 * 60_000);
    expect((await world.provisioner().runPass()).outcomes).toEqual({});
  });

  it('a class moved or un-cancelled gets its meeting within a second when the loop is told, not at the next interval', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    const loop = world.provisioner('loop');
    const move = (extra: { startsAt: string; cancelled?: boolean }) =>
      upsertSchedules(
        world.database.db,
        world.clock,
        [{ externalId: 's1', title: 'class s1', startsAt: new Date(extra.startsAt), endsAt: new Date(Date.parse(extra.startsAt) + 50 * 60_000), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: extra.cancelled ?? false }],
        { onMeetingsChanged: () => loop.wake() },
      );
    // The next pass is 5 minutes away: the wake-up runs one after a 1 s gap, so within 3 s.
    const soon = (check: () => Promise<void>): Promise<void> => within(world, 3000, check);
    loop.start();
    try {
      await vi.waitFor(async () => expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingVersion: 1 }), { timeout: 5000, interval: 10 });
      await move({ startsAt: '2026-12-01T11:00:00Z' });
      await soon(async () => expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingVersion: 2 }));
      await move({ startsAt: '2026-12-01T11:00:00Z', cancelled: true });
      await soon(async () => expect((await world.meetingOf('s1')).state).toBe('deleted'));
      // Back on: its meeting was deleted at Zoom, so it gets a new one (it stayed "deleted" for good before).
      await move({ startsAt: '2026-12-01T11:00:00Z' });
      await soon(async () => expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingVersion: 4 }));
      expect(world.em.meetings().filter((m) => !m.deleted)).toHaveLength(1);
    } finally {
      await loop.stop();
    }
  });

  it('a shortened zoom.provisioning.interval applies to the wait in progress, not after the old interval', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    world.env.SCHEDULER__ZOOM__PROVISIONING__INTERVAL = '1h';
    expect(world.config.reload('api')).toMatchObject({ status: 'applied', changed: ['zoom.provisioning.interval'] });
    const loop = world.provisioner('loop');
    loop.start();
    try {
      // A class the loop is not told about (no wake): it waits for the next pass.
      await world.clock.advance(60_000);
      await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
      world.env.SCHEDULER__ZOOM__PROVISIONING__INTERVAL = '2m';
      expect(world.config.reload('api')).toMatchObject({ status: 'applied' });
      expect((await world.meetingOf('s1')).state).not.toBe('ready');
      // Within 2m of the last pass's end (at 0 or at 1m, however fast the first pass was): by 4m, not at 1h.
      await within(world, 3 * 60_000, async () => expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', error: null }));
    } finally {
      await loop.stop();
    }
  });

  it('creates one meeting per schedule inside the horizon, round-robin over the hosts, with the configured settings', async () => {
    world = await openZoomWorld(dialect, [
      { label: 'a', plan: 'licensed' },
      { label: 'b', plan: 'licensed' },
      { label: 'c', plan: 'licensed' },
    ], { config: { zoom: { provisioning: { concurrency: 1 } } } });
    for (let i = 0; i < 6; i++) await world.schedule(`s${i}`, `2026-12-01T${String(10 + i).padStart(2, '0')}:00:00Z`, 50);
    await world.schedule('far', '2026-12-05T10:00:00Z', 50);
    const report = await world.provisioner().runPass();
    expect(report.outcomes).toEqual({ created: 6 });
    const hosts = [];
    for (let i = 0; i < 6; i++) hosts.push((await world.meetingOf(`s${i}`)).host);
    expect(hosts).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect((await world.meetingOf('far')).state).toBe('none');

    const meetings = world.em.meetings();
    expect(meetings).toHaveLength(6);
    const first = meetings.find((m) => m.agenda.includes(meetingMarker('s0')));
    expect(first).toMatchObject({ duration: 60, hostId: 'user-a' });
    expect(Date.parse(first?.startTime ?? '')).toBe(Date.parse('2026-12-01T10:00:00Z'));
    expect(first?.settings).toMatchObject({ join_before_host: true, jbh_time: 10, waiting_room: false });
    const row = await world.database.db.selectFrom('schedules').selectAll().where('external_id', '=', 's0').executeTakeFirstOrThrow();
    expect(row.join_url).toBe(first?.joinUrl);
    expect(row.start_url).not.toContain('http');
    expect(row.host_window_start).toBeTruthy();

    // A second pass finds nothing to do and creates nothing.
    expect((await world.provisioner().runPass()).claimed).toBe(0);
    expect(world.em.meetings()).toHaveLength(6);
  });

  it('spreads concurrent creates evenly over the pool', async () => {
    world = await openZoomWorld(dialect, ['a', 'b', 'c', 'd'].map((label) => ({ label, plan: 'licensed' as const })));
    for (let i = 0; i < 12; i++) await world.schedule(`s${i}`, `2026-12-01T${String(8 + i).padStart(2, '0')}:00:00Z`, 50);
    await world.provisioner().runPass();
    const perHost = new Map<string, number>();
    for (let i = 0; i < 12; i++) {
      const host = (await world.meetingOf(`s${i}`)).host ?? '-';
      perHost.set(host, (perHost.get(host) ?? 0) + 1);
    }
    expect([...perHost.values()]).toEqual([3, 3, 3, 3]);
  });

  it('never gives one host overlapping meetings, even with two workers racing', async () => {
    // One schedule per claim, so each worker holds a different schedule and both want the host.
    world = await openZoomWorld(dialect, [{ label: 'only', plan: 'licensed' }], { config: { zoom: { provisioning: { batchSize: 1 } } } });
    // s2 starts 15 minutes after s1 ends: inside s1's after-class buffer + s2's early join.
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-01T11:05:00Z', 50);
    await world.schedule('s3', '2026-12-01T12:30:00Z', 50);
    const [p1, p2] = [world.provisioner('worker-1'), world.provisioner('worker-2')];
    await Promise.all([p1.runPass(), p2.runPass()]);
    await p1.runPass();
    const states = await Promise.all(['s1', 's2', 's3'].map((s) => world.meetingOf(s)));
    // Whichever worker reserves first wins the host; the other class finds it busy.
    const [first, second] = states;
    expect([first?.state, second?.state].sort()).toEqual(['no_capacity', 'ready']);
    expect([first, second].find((s) => s?.state === 'no_capacity')?.error).toMatch(/1 busy/);
    expect(states[2]?.state).toBe('ready');
    expect(world.em.overlaps()).toEqual([]);
    expect(world.em.meetings()).toHaveLength(2);
  });

  it('hosts short trial classes on basic accounts, and nothing over 40 minutes of live time there', async () => {
    world = await openZoomWorld(dialect, [
      { label: 'free', plan: 'basic' },
      { label: 'pro', plan: 'licensed' },
    ]);
    await world.schedule('trial-30', '2026-12-01T10:00:00Z', 30, { trial: true }); // 5 early + 30 + 0 = 35 ≤ 40
    await world.schedule('trial-40', '2026-12-01T13:00:00Z', 40, { trial: true }); // 5 + 40 = 45 > 40
    await world.schedule('regular-30', '2026-12-01T16:00:00Z', 30);
    await world.provisioner().runPass();
    expect((await world.meetingOf('trial-30')).host).toBe('free');
    expect((await world.meetingOf('trial-40')).host).toBe('pro');
    expect((await world.meetingOf('regular-30')).host).toBe('pro');
    const basic = world.em.meetings().find((m) => m.hostId === 'user-free');
    expect(basic).toMatchObject({ duration: 30 });
    expect(basic?.settings.jbh_time).toBe(5);
    expect(world.em.violations()).toEqual([]);
  });

  it('moves a trial class that becomes a regular one to a licensed host, unless its link may be out already', async () => {
    world = await openZoomWorld(dialect, [
      { label: 'free', plan: 'basic' },
      { label: 'pro', plan: 'licensed' },
    ]);
    await world.schedule('c', '2026-12-01T10:00:00Z', 30, { trial: true });
    await world.schedule('soon', '2026-12-01T00:30:00Z', 30, { trial: true });
    await world.provisioner().runPass();
    const before = await world.meetingOf('c');
    expect(before.host).toBe('free');
    expect((await world.meetingOf('soon')).host).toBe('free');

    // Both become regular classes at 00:25; the link of "soon" was due at 00:20.
    await world.clock.set(new Date('2026-12-01T00:25:00Z'));
    await world.schedule('c', '2026-12-01T10:00:00Z', 30, { trial: false });
    await world.schedule('soon', '2026-12-01T00:30:00Z', 30, { trial: false });
    expect((await world.provisioner().runPass()).outcomes).toEqual({ moved: 1, created: 1, updated: 1 });
    const after = await world.meetingOf('c');
    expect(after).toMatchObject({ host: 'pro', state: 'ready', version: 2, meetingVersion: 2 });
    expect(world.em.meeting(Number(before.meetingId))?.deleted).toBe(true);
    expect(world.em.meeting(Number(after.meetingId))).toMatchObject({ hostId: 'user-pro', duration: 40, deleted: false });
    // Its students may have the basic meeting's link already: it stays, stamped with the new version.
    expect(await world.meetingOf('soon')).toMatchObject({ host: 'free', state: 'ready', version: 2, meetingVersion: 2 });
    expect(world.em.violations()).toEqual([]);
  });

  it('keeps under the daily write budget per host, counted by UTC day whatever zoom.quota.timezone says', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }], {
      start: '2026-12-01T10:00:00Z',
      config: { zoom: { quota: { timezone: 'Asia/Taipei', hostMeetingWrites: 2 }, provisioning: { retryDelay: '1m' } } },
    });
    for (let i = 0; i < 3; i++) await world.schedule(`s${i}`, `2026-12-02T0${i * 2}:00:00Z`, 50);
    await world.provisioner().runPass();
    const third = await world.meetingOf('s2');
    expect(third.state).toBe('no_capacity');
    expect(third.error).toMatch(/write budget/);
    const usage = await world.database.db.selectFrom('zoom_host_usage').selectAll().execute();
    expect(usage).toEqual([expect.objectContaining({ day: '2026-12-01', meeting_writes: 2 })]);
    // 16:00 UTC is midnight in Taipei, but Zoom resets the per-host limit at 00:00 UTC: still no budget.
    await world.clock.set(new Date('2026-12-01T16:00:01Z'));
    await world.provisioner().runPass();
    expect(await world.meetingOf('s2')).toMatchObject({ state: 'no_capacity', error: expect.stringMatching(/write budget/) });
    expect(world.em.meetings()).toHaveLength(2);
    // A new UTC day, a new budget.
    await world.clock.set(new Date('2026-12-02T00:00:01Z'));
    await world.provisioner().runPass();
    expect((await world.meetingOf('s2')).state).toBe('ready');
    const days = (await world.database.db.selectFrom('zoom_host_usage').select('day').orderBy('day').execute()).map((r) => r.day);
    expect(days).toEqual(['2026-12-01', '2026-12-02']);
    const accountDays = await world.database.db.selectFrom('zoom_account_usage').selectAll().orderBy('day').execute();
    expect(accountDays.map((r) => `${r.day}/${r.category}`)).toContain('2026-12-02/medium');
  });

  it("fails over when Zoom says a host's daily limit is spent, and leaves that host alone until 00:00 UTC", async () => {
    world = await openZoomWorld(dialect, [
      { label: 'a', plan: 'licensed' },
      { label: 'b', plan: 'licensed' },
    ], { config: { zoom: { provisioning: { concurrency: 1 } } } });
    world.em.faults.add({ method: 'POST', path: /\/users\/user-a\/meetings$/, times: Infinity, fault: { status: 429, body: { code: 429, message: DAILY_LIMIT_MESSAGE } } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-01T12:00:00Z', 50);
    await world.provisioner().runPass();
    expect((await world.meetingOf('s1')).host).toBe('b');
    expect((await world.meetingOf('s2')).host).toBe('b');
    const a = await world.database.db.selectFrom('zoom_accounts').selectAll().where('label', '=', 'a').executeTakeFirstOrThrow();
    expect(new Date(a.exhausted_until as string | Date).toISOString()).toBe('2026-12-02T00:00:00.000Z');
    const tries = world.em.requests().filter((r) => r.method === 'POST' && r.path.includes('user-a'));
    expect(tries).toHaveLength(1);
  });

  it("backs off a move Zoom keeps refusing (the class is live), so it does not burn the host's daily budget", async () => {
    world = await openZoomWorld(dialect, [{ label: 'a', plan: 'licensed' }], { start: '2026-12-01T09:00:00Z' });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 60);
    await world.provisioner().runPass();
    const { meetingId } = await world.meetingOf('s1');
    // The class is under way when the platform extends it: Zoom refuses to update a started meeting (3000).
    await world.clock.set(new Date('2026-12-01T10:05:00Z'));
    expect(world.em.startMeeting(Number(meetingId)).started).toBe(true);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 90);
    const patches = () => world.em.requests().filter((r) => r.method === 'PATCH').length;
    const writes = async () => Number((await world.database.db.selectFrom('zoom_host_usage').select('meeting_writes').executeTakeFirstOrThrow()).meeting_writes);
    // A pass every 5 minutes for an hour: tries at +0, +5, +15 and +35 minutes (5, 10, 20, 40 minutes apart).
    for (let pass = 0; pass < 12; pass++) {
      await world.provisioner().runPass();
      await world.clock.advance(5 * 60_000);
    }
    expect(patches()).toBe(4);
    expect(await writes()).toBe(1 + 4);
    const row = await world.database.db.selectFrom('schedules').selectAll().where('external_id', '=', 's1').executeTakeFirstOrThrow();
    expect(row).toMatchObject({ meeting_state: 'ready', meeting_attempts: 4, meeting_version: 1, meeting_error: expect.stringContaining('3000') });
    expect(new Date(row.meeting_retry_at as string | Date).toISOString()).toBe('2026-12-01T11:20:00.000Z');

    // The meeting is over now, but the next try is not due yet.
    world.em.endMeeting(Number(meetingId));
    expect((await world.provisioner().runPass()).claimed).toBe(0);
    // The platform moves the class again: a new occasion, tried at once.
    await world.schedule('s1', '2026-12-01T10:00:00Z', 100);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ updated: 1 });
    expect(await world.meetingOf('s1')).toMatchObject({ state: 'ready', meetingId, meetingVersion: 3 });
    expect(world.em.meeting(Number(meetingId))?.duration).toBe(110);
    const settled = await world.database.db.selectFrom('schedules').selectAll().where('external_id', '=', 's1').executeTakeFirstOrThrow();
    expect(settled).toMatchObject({ meeting_attempts: 0, meeting_retry_at: null });
  });

  it('adopts the meeting Zoom made when the connection dropped after the create, instead of making a second', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    world.em.faults.add({ method: 'POST', path: /\/meetings$/, fault: { kind: 'after-commit-drop' } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    const report = await world.provisioner().runPass();
    expect(report.outcomes).toEqual({ adopted: 1 });
    expect(world.em.meetings()).toHaveLength(1);
    const m = await world.meetingOf('s1');
    expect(m.state).toBe('ready');
    expect(m.meetingId).toBe(String(world.em.meetings()[0]?.id));
  });

  it('recovers after a crash between recording the intent and recording the meeting', async () => {
    world = await openZoomWorld(dialect, [{ label: 'h', plan: 'licensed' }]);
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-01T13:00:00Z', 50);
    // Worker "dead" claimed both and recorded intents; Zoom made s1's meeting, then the process died.
    const provisioner = world.provisioner('dead');
    world.em.faults.add({ method: 'POST', path: /\/meetings$/, times: 2, fault: { kind: 'after-commit-drop' } });
    world.em.faults.add({ method: 'GET', path: /\/users\/.*\/meetings/, times: Infinity, fault: { status: 503 } });
    await provisioner.runPass();
    world.em.faults.clear();
    expect(world.em.meetings()).toHaveLength(2);
    // Both failed to reconcile (listing was down): intents remain, leases released after failure.
    const stuck = await world.database.db.selectFrom('schedules').select(['meeting_state', 'meeting_lease_owner']).execute();
    expect(stuck.every((r) => r.meeting_state === 'creating')).toBe(true);
    await world.clock.advance(10 * 60_000);
    const report = await world.provisioner('fresh').runPass();
    expect(report.outcomes).toEqual({ adopted: 2 });
    expect(world.em.meetings()).toHaveLength(2);
    expect((await world.meetingOf('s1')).state).toBe('ready');
  });

  it('moves the meeting when the class moves, re-hosts it when its host is busy then, and deletes it when cancelled', async () => {
    world = await openZoomWorld(dialect, [
      { label: 'a', plan: 'licensed' },
      { label: 'b', plan: 'licensed' },
    ], { config: { zoom: { provisioning: { concurrency: 1 } } } });
    await world.schedule('s1', '2026-12-01T10:00:00Z', 50);
    await world.schedule('s2', '2026-12-01T12:00:00Z', 50);
    await world.schedule('s3', '2026-12-01T14:00:00Z', 50);
    await world.provisioner().runPass();
    const before = await world.meetingOf('s1');
    const s3Before = await world.meetingOf('s3');
    expect([before.host, (await world.meetingOf('s2')).host, s3Before.host]).toEqual(['a', 'b', 'a']);

    // s1 moves an hour later: its host is free then, so the meeting is updated in place.
    await world.schedule('s1', '2026-12-01T11:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ updated: 1 });
    const moved = await world.meetingOf('s1');
    expect(moved).toMatchObject({ host: 'a', meetingId: before.meetingId, version: 2, meetingVersion: 2 });
    expect(Date.parse(world.em.meeting(Number(before.meetingId))?.startTime ?? '')).toBe(Date.parse('2026-12-01T11:00:00Z'));

    // s3 moves onto s1's time: host a is busy then, b is free: deleted on a, created on b.
    await world.schedule('s3', '2026-12-01T10:00:00Z', 50);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ moved: 1, created: 1 });
    const s3After = await world.meetingOf('s3');
    expect(s3After).toMatchObject({ host: 'b', state: 'ready', meetingVersion: 2 });
    expect(world.em.meeting(Number(s3Before.meetingId))?.deleted).toBe(true);
    expect(world.em.overlaps({ activeOnly: true })).toEqual([]);

    await upsertSchedules(world.database.db, world.clock, [
      { externalId: 's1', title: 'class s1', startsAt: new Date('2026-12-01T11:00:00Z'), endsAt: new Date('2026-12-01T11:50:00Z'), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: true },
    ]);
    expect((await world.provisioner().runPass()).outcomes).toEqual({ deleted: 1 });
    expect((await world.meetingOf('s1')).state).toBe('deleted');
    expect(world.em.meeting(Number(before.meetingId))?.deleted).toBe(true);
  });
});
