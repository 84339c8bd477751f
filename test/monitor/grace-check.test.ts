import { afterEach, describe, expect, it, vi } from 'vitest';
import { createConfigStore } from '../../src/config/store.ts';
import { deliveryRules } from '../../src/deliveries/settings.ts';
import { insertLineChannel } from '../../src/line/channels.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import type { ZoomClient } from '../../src/zoom/client.ts';
import { dialects } from '../support/databases.ts';
import { userId } from '../line/support.ts';
import { openZoomWorld, silent, type HostSpec, type ZoomWorld } from '../zoom/world.ts';
import { monitorOf } from './support.ts';

/** The grace-time check against the Zoom emulator through the reconciliation poll alone (no webhooks). */
describe.each(dialects)('attendance check at start + grace on %s', (dialect) => {
  let z: ZoomWorld;
  afterEach(async () => {
    await z?.close();
  });

  const open = async (hosts: HostSpec[] = [{ label: 'h1', plan: 'licensed' }], config: Record<string, unknown> = {}, emulator = {}) => {
    z = await openZoomWorld(dialect, hosts, { config, emulator, start: '2026-12-01T11:00:00Z' });
    return monitorOf({ db: z.database.db, box: z.box, clock: z.clock, config: z.config, client: z.client, logger: silent });
  };
  const meetingNumber = async (id: string) => Number((await z.meetingOf(id)).meetingId);
  /** A class with a feedback form, booked by two students (a meeting and a feedback link each). */
  const bookedClass = async (id: string, startsAt: string) => {
    await insertLineChannel(z.database.db, z.box, z.clock, { label: 'OA', slug: 'school-a', channelId: '1', channelSecret: 's', channelAccessToken: 't' });
    await z.schedule(id, startsAt, 50, { feedbackUrl: `https://forms.example.com/${id}` });
    const students = [1, 2].map((n) => ({ externalId: `${id}-${n}`, scheduleExternalId: id, student: { channel: 'school-a', lineUserId: userId(n) }, cancelled: false }));
    await upsertAppointments(z.database.db, z.clock, students, { rules: deliveryRules(z.config.current()) });
  };
  const links = () => z.database.db.selectFrom('deliveries').select(['kind', 'state', 'class_starts_at']).orderBy('id').execute();
  const verdictOf = (id: string) =>
    z.database.db.selectFrom('schedules').select(['meeting_state', 'monitor_state', 'monitor_reason', 'attendance', 'live_status']).where('external_id', '=', id).executeTakeFirstOrThrow();

  it('ends and deletes a meeting nobody started, so a late join cannot reopen it', async () => {
    const monitor = await open();
    await z.schedule('c1', '2026-12-01T12:00:00Z', 50, { minParticipants: 2 });
    await z.provisioner().runPass();
    const id = await meetingNumber('c1');
    await z.clock.set(new Date('2026-12-01T12:09:59Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({});
    await z.clock.set(new Date('2026-12-01T12:10:00Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ ended_empty: 1 });
    expect(await verdictOf('c1')).toMatchObject({ meeting_state: 'ended_empty', monitor_state: 'ended_empty', live_status: 'ended' });
    expect((await verdictOf('c1')).monitor_reason).toBe('no student present 10 minutes after the start (0 booked): nobody started the meeting; meeting ended and deleted');
    expect(z.em.meeting(id)?.deleted).toBe(true);
    expect(() => z.em.join(id, { name: 'late student' })).toThrow();
    // Checked once; the provisioner does not make a new meeting for it.
    expect((await monitor.runPass()).graceChecked).toEqual({});
    expect((await z.provisioner().runPass()).claimed).toBe(0);
  });

  it('a class ended as empty and then moved by the platform gets a new meeting and a new check', async () => {
    const monitor = await open();
    await z.schedule('c1', '2026-12-01T12:00:00Z', 50);
    await z.provisioner().runPass();
    await z.clock.set(new Date('2026-12-01T12:10:00Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ ended_empty: 1 });
    await z.schedule('c1', '2026-12-02T12:00:00Z', 50); // the platform reschedules it for tomorrow
    expect(await verdictOf('c1')).toMatchObject({ meeting_state: 'none', monitor_state: null, live_status: null });
    await z.clock.set(new Date('2026-12-01T13:00:00Z'));
    expect((await z.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    expect(z.em.meetings().filter((m) => !m.deleted)).toHaveLength(1);
    await z.clock.set(new Date('2026-12-02T12:10:00Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ ended_empty: 1 });
  });

  it('a class moved while its check is ending it gets a new meeting, keeps its new links and is checked at its new time', async () => {
    await open();
    await bookedClass('c1', '2026-12-01T12:00:00Z');
    await z.provisioner().runPass();
    const first = await meetingNumber('c1');
    let moves = 1;
    const client: ZoomClient = {
      ...z.client,
      // The platform moves the class to tomorrow while the check's Zoom calls are in flight.
      deleteMeeting: async (creds, meetingId) => {
        if (moves-- > 0) await z.schedule('c1', '2026-12-02T12:00:00Z', 50, { feedbackUrl: 'https://forms.example.com/c1' });
        return z.client.deleteMeeting(creds, meetingId);
      },
    };
    const monitor = monitorOf({ db: z.database.db, box: z.box, clock: z.clock, config: z.config, client, logger: silent });
    await z.clock.set(new Date('2026-12-01T12:10:00Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ moved: 1 });
    expect(z.em.meeting(first)?.deleted).toBe(true);
    expect(await verdictOf('c1')).toMatchObject({ meeting_state: 'none', monitor_state: null });
    const tomorrow = new Date('2026-12-02T12:00:00Z').getTime();
    expect((await links()).map((l) => [l.kind, l.state, new Date(l.class_starts_at ?? 0).getTime()])).toEqual([
      ['meeting_url', 'pending', tomorrow],
      ['feedback_url', 'pending', tomorrow],
      ['meeting_url', 'pending', tomorrow],
      ['feedback_url', 'pending', tomorrow],
    ]);
    await z.clock.set(new Date('2026-12-01T13:00:00Z'));
    expect((await z.provisioner().runPass()).outcomes).toEqual({ created: 1 });
    const second = await meetingNumber('c1');
    expect(second).not.toBe(first);
    expect(z.em.meeting(second)?.deleted).toBe(false);
    await z.clock.set(new Date('2026-12-02T12:10:00Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ ended_empty: 1 });
    expect(z.em.meeting(second)?.deleted).toBe(true);
  });

  it('a meeting deleted at Zoom just before a failure is settled as ended on the next check, not skipped', async () => {
    await open();
    await bookedClass('c1', '2026-12-01T12:00:00Z');
    await z.provisioner().runPass();
    const id = await meetingNumber('c1');
    let failures = 1;
    const client: ZoomClient = {
      ...z.client,
      deleteMeeting: async (creds, meetingId) => {
        await z.client.deleteMeeting(creds, meetingId);
        if (failures-- > 0) throw new Error('connection reset after the DELETE was accepted');
      },
    };
    const monitor = monitorOf({ db: z.database.db, box: z.box, clock: z.clock, config: z.config, client, logger: silent });
    await z.clock.set(new Date('2026-12-01T12:10:00Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ error: 1 });
    expect(z.em.meeting(id)?.deleted).toBe(true);
    expect(await verdictOf('c1')).toMatchObject({ meeting_state: 'ready' });
    // Zoom cannot be asked whether the meeting still exists: no verdict on it yet.
    const outage = z.em.faults.add({ method: 'GET', path: `/v2/meetings/${id}`, times: Infinity, fault: { status: 500, body: { code: 500, message: 'down' } } });
    await z.clock.set(new Date('2026-12-01T12:11:01Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ retry: 1 });
    expect(await verdictOf('c1')).toMatchObject({ meeting_state: 'ready' });
    outage.remove();
    await z.clock.set(new Date('2026-12-01T12:12:02Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ ended_empty: 1 });
    expect(await verdictOf('c1')).toMatchObject({ meeting_state: 'ended_empty', monitor_state: 'ended_empty', live_status: 'ended' });
    expect((await verdictOf('c1')).monitor_reason).toMatch(/^no student present 10 minutes after the start \(2 booked\): nobody started the meeting; /);
    expect((await links()).map((l) => [l.kind, l.state])).toEqual([
      ['meeting_url', 'cancelled'],
      ['feedback_url', 'cancelled'],
      ['meeting_url', 'cancelled'],
      ['feedback_url', 'cancelled'],
    ]);
  });

  it.each([
    ['by another replica once the lease runs out', {}, '2026-12-01T12:15:01Z'],
    ['after its class ended', {}, '2026-12-01T13:30:00Z'],
    ['with monitor.reconcile turned off meanwhile (Zoom is asked all the same)', { reconcile: false }, '2026-12-01T12:15:01Z'],
  ])('an end a crashed replica left after Zoom deleted the meeting is finished %s', async (_name, monitorChange, at) => {
    await open();
    await bookedClass('c1', '2026-12-01T12:00:00Z');
    await z.provisioner().runPass();
    const id = await meetingNumber('c1');
    const dying: ZoomClient = {
      ...z.client,
      deleteMeeting: async (creds, meetingId) => {
        await z.client.deleteMeeting(creds, meetingId);
        await new Promise<never>(() => undefined);
      },
    };
    await z.clock.set(new Date('2026-12-01T12:10:00Z'));
    void monitorOf({ db: z.database.db, box: z.box, clock: z.clock, config: z.config, client: dying, logger: silent }).runPass();
    await vi.waitFor(() => expect(z.em.meeting(id)?.deleted).toBe(true));
    const current = z.config.current();
    const config = createConfigStore({ ...current, monitor: { ...current.monitor, ...monitorChange } }, { env: {} }, z.clock);
    const survivor = monitorOf({ db: z.database.db, box: z.box, clock: z.clock, config, client: z.client, logger: silent });
    expect((await survivor.runPass()).graceChecked).toEqual({}); // the lease is still the dead replica's
    await z.clock.set(new Date(at));
    expect((await survivor.runPass()).graceChecked).toEqual({ ended_empty: 1 });
    expect(await verdictOf('c1')).toMatchObject({ meeting_state: 'ended_empty', monitor_state: 'ended_empty' });
    expect((await links()).every((l) => l.state === 'cancelled')).toBe(true);
  });

  it('ends a live meeting where only the host is (dashboard), then deletes it', async () => {
    const monitor = await open([{ label: 'h1', plan: 'licensed', zoomPlan: 'business' }], { monitor: { dashboardParticipants: true } });
    await z.schedule('c1', '2026-12-01T12:00:00Z', 50);
    await z.provisioner().runPass();
    const id = await meetingNumber('c1');
    z.em.join(id, { name: 'Host', userId: 'user-h1', role: 'host' });
    await z.clock.set(new Date('2026-12-01T12:10:00Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ ended_empty: 1 });
    expect(z.em.meeting(id)).toMatchObject({ deleted: true, state: 'ended' });
  });

  it('turns join-before-host off when Zoom refuses to delete an ended meeting (3007)', async () => {
    const monitor = await open([{ label: 'h1', plan: 'licensed', zoomPlan: 'business' }], { monitor: { dashboardParticipants: true } }, { deleteEndedMeetings: 'reject' });
    await z.schedule('c1', '2026-12-01T12:00:00Z', 50);
    await z.provisioner().runPass();
    const id = await meetingNumber('c1');
    z.em.join(id, { name: 'Host', userId: 'user-h1', role: 'host' });
    await z.clock.set(new Date('2026-12-01T12:10:00Z'));
    await monitor.runPass();
    expect(z.em.meeting(id)).toMatchObject({ deleted: false, settings: { join_before_host: false } });
    expect((await verdictOf('c1')).monitor_reason).toMatch(/refused to delete it \(3007\), so join before host was turned off/);
  });

  it('counts students by the dashboard: below the minimum is reported, at the minimum left alone', async () => {
    const monitor = await open([{ label: 'h1', plan: 'licensed', zoomPlan: 'business' }], { monitor: { dashboardParticipants: true } });
    await z.schedule('below', '2026-12-01T12:00:00Z', 50, { minParticipants: 3 });
    await z.schedule('at', '2026-12-01T14:00:00Z', 50, { minParticipants: 2 });
    await z.provisioner().runPass();
    const below = await meetingNumber('below');
    z.em.join(below, { name: 'Ann', email: 'ann@example.com' });
    z.em.join(below, { name: 'Host', userId: 'user-h1', role: 'host' });
    z.em.join(below, { name: 'Ben', email: 'ben@example.com' });
    await z.clock.set(new Date('2026-12-01T12:10:00Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ below_minimum: 1 });
    expect(await verdictOf('below')).toMatchObject({ monitor_state: 'below_minimum', meeting_state: 'ready', attendance: 2, live_status: 'started' });
    expect((await verdictOf('below')).monitor_reason).toBe('2 students present 10 minutes after the start, below the minimum of 3 (0 booked)');
    expect(z.em.meeting(below)?.deleted).toBe(false);

    z.em.endMeeting(below); // the class is over: the host is free again
    const at = await meetingNumber('at');
    z.em.join(at, { name: 'Cat' });
    z.em.join(at, { name: 'Dan' });
    await z.clock.set(new Date('2026-12-01T14:10:00Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ ok: 1 });
    expect(await verdictOf('at')).toMatchObject({ monitor_state: 'ok', attendance: 2 });
  });

  it('never ends a live meeting on missing join webhooks alone (no dashboard): reports it', async () => {
    const monitor = await open();
    await z.schedule('c1', '2026-12-01T12:00:00Z', 50);
    await z.provisioner().runPass();
    const id = await meetingNumber('c1');
    z.em.join(id, { name: 'Ann' });
    await z.clock.set(new Date('2026-12-01T12:10:00Z'));
    expect((await monitor.runPass()).graceChecked).toEqual({ below_minimum: 1 });
    expect(z.em.meeting(id)).toMatchObject({ deleted: false, state: 'started' });
    expect((await verdictOf('c1')).monitor_reason).toMatch(/no student join was received 10 minutes after the start, but a lost webhook cannot be ruled out; not ended/);
  });

  it('leaves the meetings alone when monitoring is off (the headcount check, which only reads bookings, still runs)', async () => {
    const monitor = await open(undefined, { monitor: { enabled: false } });
    await z.schedule('c1', '2026-12-01T12:00:00Z', 50);
    await z.provisioner().runPass();
    await z.clock.set(new Date('2026-12-01T12:10:00Z'));
    expect(await monitor.runPass()).toEqual({ headcountChecked: 0, graceChecked: {}, reconciled: 0, replayLinksOwed: 0 });
  });
});
