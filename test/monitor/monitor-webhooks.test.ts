import { afterEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { breakParticipantInserts, eventRows, HOSTS, liveOf, monitorOf, openMonitorHarness, type MonitorHarness, type MonitorHarnessOptions } from './support.ts';

/** Webhooks and the monitor together: Zoom's signed events over HTTP, then the grace-time check. */
describe.each(dialects)('monitoring with webhooks on %s', (dialect) => {
  let h: MonitorHarness;
  afterEach(async () => {
    await h?.close();
  });

  const open = async (options: MonitorHarnessOptions = {}) => {
    h = await openMonitorHarness(dialect, options);
    return monitorOf({ db: h.database.db, box: h.box, clock: h.clock, config: h.config, client: h.client, logger: h.logger });
  };
  const stateOf = (id: number) => h.database.db.selectFrom('schedules').select(['meeting_state', 'monitor_state', 'monitor_reason']).where('id', '=', id).executeTakeFirstOrThrow();
  const unappliedJoins = async () => (await eventRows(h)).filter((r) => r.event === 'meeting.participant_joined' && r.processed_at === null).length;
  // Timer by timer, letting each webhook land before time moves on (Zoom waits 3 s for an answer).
  const at = async (iso: string) => {
    const target = new Date(iso).getTime();
    await h.settle();
    for (let next = h.clock.nextTimerAt()?.getTime(); next !== undefined && next <= target; next = h.clock.nextTimerAt()?.getTime()) {
      await h.clock.set(new Date(Math.max(next, h.clock.now().getTime())));
      await h.settle();
    }
    await h.clock.set(new Date(target));
    await h.settle();
  };

  it('ends early and deletes a class where only the host showed up', async () => {
    const monitor = await open();
    const c = await h.schedule('c1', '2026-12-01T01:00:00Z');
    h.em.script(c.meetingId, [{ atMinute: -3, join: { name: 'Teacher', userId: HOSTS.t1.id, email: HOSTS.t1.email, role: 'host' } }]);
    await at('2026-12-01T01:10:00Z');
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ status: 'started', attendance: 0, peak: 0 });
    expect((await monitor.runPass()).graceChecked).toEqual({ ended_empty: 1 });
    await h.settle();
    expect(await stateOf(c.scheduleId)).toMatchObject({ meeting_state: 'ended_empty', monitor_state: 'ended_empty' });
    expect((await stateOf(c.scheduleId)).monitor_reason).toBe('no student present 10 minutes after the start (0 booked): only the host or our staff joined; meeting ended and deleted');
    expect(h.em.meeting(c.meetingId)?.deleted).toBe(true);
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ status: 'ended', attendance: 0 });
  });

  it('never ends a class whose students left before the check: they may come back', async () => {
    const monitor = await open();
    const c = await h.schedule('c1', '2026-12-01T01:00:00Z');
    h.em.script(c.meetingId, [
      { atMinute: -3, join: { name: 'Teacher', userId: HOSTS.t1.id, email: HOSTS.t1.email, role: 'host' } },
      { atMinute: 2, join: { name: 'Ann', email: 'ann@example.com' } },
      { atMinute: 5, leave: 'Ann' },
    ]);
    await at('2026-12-01T01:10:00Z');
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ status: 'started', attendance: 0, peak: 1 });
    expect((await monitor.runPass()).graceChecked).toEqual({ below_minimum: 1 });
    expect((await stateOf(c.scheduleId)).monitor_reason).toBe('no student present 10 minutes after the start, though 1 attended earlier; not ended');
    expect(h.em.meeting(c.meetingId)).toMatchObject({ deleted: false, state: 'started' });
  });

  it("a student's join stored but not applied yet (a backlog) keeps a host-only class from being ended; judged again once applied", async () => {
    const monitor = await open();
    const c = await h.schedule('c1', '2026-12-01T01:00:00Z');
    h.em.script(c.meetingId, [{ atMinute: -3, join: { name: 'Teacher', userId: HOSTS.t1.id, email: HOSTS.t1.email, role: 'host' } }]);
    await at('2026-12-01T01:10:00Z');
    // Ann joins just as the check runs: her join is stored (acknowledged), the processor has not run yet.
    h.em.join(c.meetingId, { name: 'Ann', email: 'ann@example.com' });
    await h.em.webhooks.settle();
    expect(await unappliedJoins()).toBe(1);
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ status: 'started', attendance: 0, peak: 0 });
    expect((await monitor.runPass()).graceChecked).toEqual({ retry: 1 });
    expect(h.em.meeting(c.meetingId)).toMatchObject({ deleted: false, state: 'started' });
    expect(await stateOf(c.scheduleId)).toMatchObject({ meeting_state: 'ready', monitor_state: 'pending' });
    expect((await stateOf(c.scheduleId)).monitor_reason).toBe(
      'no student seen 10 minutes after the start, but 1 participant event of this meeting is stored and not applied yet: a join may be among them; not ended; checking again',
    );
    await at('2026-12-01T01:11:01Z'); // after the retry lease of a minute
    expect((await monitor.runPass()).graceChecked).toEqual({ ok: 1 });
    expect(await stateOf(c.scheduleId)).toMatchObject({ meeting_state: 'ready', monitor_state: 'ok', monitor_reason: '1 student present 10 minutes after the start' });
  });

  it('with no time for another check before the class ends, a join not applied yet is reported, not ended and not left pending', async () => {
    const monitor = await open();
    const c = await h.schedule('c1', '2026-12-01T01:00:00Z', 11);
    h.em.script(c.meetingId, [{ atMinute: -3, join: { name: 'Teacher', userId: HOSTS.t1.id, email: HOSTS.t1.email, role: 'host' } }]);
    await at('2026-12-01T01:10:00Z');
    h.em.join(c.meetingId, { name: 'Ann', email: 'ann@example.com' });
    await h.em.webhooks.settle();
    expect(await unappliedJoins()).toBe(1);
    expect((await monitor.runPass()).graceChecked).toEqual({ below_minimum: 1 });
    expect(h.em.meeting(c.meetingId)).toMatchObject({ deleted: false, state: 'started' });
    expect(await stateOf(c.scheduleId)).toMatchObject({
      meeting_state: 'ready',
      monitor_state: 'below_minimum',
      monitor_reason: 'no student seen 10 minutes after the start, but 1 participant event of this meeting is stored and not applied yet: a join may be among them; not ended',
    });
  });

  it("a student's join whose application keeps failing (retry backoff) keeps a host-only class from being ended", async () => {
    // Backoff 0.5 of the ceiling: Ann's join is tried at 01:02:00, +2.5 s, +7.5 s, … +457.5 s, +607.5 s.
    const monitor = await open({ random: () => 0.5 });
    const c = await h.schedule('c1', '2026-12-01T01:00:00Z');
    h.em.script(c.meetingId, [{ atMinute: -3, join: { name: 'Teacher', userId: HOSTS.t1.id, email: HOSTS.t1.email, role: 'host' } }]);
    await at('2026-12-01T01:00:00Z');
    const heal = await breakParticipantInserts(h);
    h.em.script(c.meetingId, [{ atMinute: 2, join: { name: 'Ann', email: 'ann@example.com' } }]);
    await at('2026-12-01T01:10:00Z');
    expect(await unappliedJoins()).toBe(1);
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ status: 'started', attendance: 0, peak: 0 });
    expect((await monitor.runPass()).graceChecked).toEqual({ retry: 1 });
    expect(h.em.meeting(c.meetingId)).toMatchObject({ deleted: false, state: 'started' });
    await heal();
    await at('2026-12-01T01:13:00Z');
    expect(await unappliedJoins()).toBe(0);
    expect((await monitor.runPass()).graceChecked).toEqual({ ok: 1 });
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ attendance: 1, peak: 1 });
    expect(h.em.meeting(c.meetingId)).toMatchObject({ deleted: false, state: 'started' });
  });

  it('a student seen only leaving (the join lost) came and left: the stopped meeting is not ended, so they can rejoin', async () => {
    const monitor = await open();
    const c = await h.schedule('c1', '2026-12-01T01:00:00Z');
    h.em.webhooks.drop({ event: 'meeting.participant_joined', times: 1 });
    // Ann starts the meeting (join before host), then drops: the last leave ends it.
    h.em.script(c.meetingId, [
      { atMinute: 2, join: { name: 'Ann', email: 'ann@example.com' } },
      { atMinute: 5, leave: 'Ann' },
    ]);
    await at('2026-12-01T01:10:00Z');
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ status: 'ended', attendance: 0, peak: 0 });
    expect((await monitor.runPass()).graceChecked).toEqual({ below_minimum: 1 });
    expect((await stateOf(c.scheduleId)).monitor_reason).toBe('no student present 10 minutes after the start, though 1 attended earlier; not ended');
    expect(h.em.meeting(c.meetingId)?.deleted).toBe(false);
    expect(() => h.em.join(c.meetingId, { name: 'Ann', email: 'ann@example.com' })).not.toThrow();
  });

  it('a lost participant_joined is corrected by the dashboard poll, and the class is not ended', async () => {
    const monitor = await open({ schoolPlan: 'business', config: { monitor: { dashboardParticipants: true } } });
    const c = await h.schedule('c1', '2026-12-01T01:00:00Z');
    h.em.webhooks.drop({ event: 'meeting.participant_joined', times: 1 });
    h.em.join(c.meetingId, { name: 'Ann', email: 'ann@example.com' });
    h.em.join(c.meetingId, { name: 'Ben', email: 'ben@example.com' });
    await at('2026-12-01T01:10:00Z');
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ status: 'started', attendance: 1 });
    expect((await monitor.runPass()).graceChecked).toEqual({ ok: 1 });
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ attendance: 2, peak: 2 });
    expect(h.em.meeting(c.meetingId)).toMatchObject({ deleted: false, state: 'started' });
    // The webhooks go on from the corrected state: one leaves, one is left.
    h.em.leave(c.meetingId, h.em.participants(c.meetingId).find((p) => p.name === 'Ann')?.uuid ?? '');
    await h.settle();
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ attendance: 1 });
  });

  it('a dashboard that answers 404/3001 (lagging) counts as unknown: the live class is judged, not skipped', async () => {
    const monitor = await open({ schoolPlan: 'business', config: { monitor: { dashboardParticipants: true } } });
    const c = await h.schedule('c1', '2026-12-01T01:00:00Z');
    h.em.script(c.meetingId, [{ atMinute: 1, join: { name: 'Ann', email: 'ann@example.com' } }]);
    await at('2026-12-01T01:10:00Z');
    const lag = h.em.faults.add({ method: 'GET', path: /\/metrics\/meetings\//, fault: { status: 404, body: { code: 3001, message: 'Meeting ID is invalid or has not ended.' } } });
    expect((await monitor.runPass()).graceChecked).toEqual({ ok: 1 });
    expect(lag.hits()).toBe(1);
    expect(await stateOf(c.scheduleId)).toMatchObject({ meeting_state: 'ready', monitor_state: 'ok', monitor_reason: '1 student present 10 minutes after the start' });
    expect(h.em.meeting(c.meetingId)).toMatchObject({ deleted: false, state: 'started' });
  });

  it('with the status poll off, a meeting.started but a lost join is reported, never ended', async () => {
    const monitor = await open({ config: { monitor: { reconcile: false } } });
    const c = await h.schedule('c1', '2026-12-01T01:00:00Z');
    h.em.webhooks.drop({ event: 'meeting.participant_joined', times: 1 });
    h.em.join(c.meetingId, { name: 'Ann', email: 'ann@example.com' });
    await at('2026-12-01T01:10:00Z');
    expect(await liveOf(h, c.scheduleId)).toMatchObject({ status: 'started', attendance: 0 });
    expect((await monitor.runPass()).graceChecked).toEqual({ below_minimum: 1 });
    expect(h.em.meeting(c.meetingId)).toMatchObject({ deleted: false, state: 'started' });
    expect(h.em.requests().filter((r) => r.method !== 'POST' && r.path.startsWith('/v2/meetings/'))).toEqual([]);
  });

  it('without the dashboard, a live meeting whose only join was lost is reported, never ended', async () => {
    const monitor = await open();
    const c = await h.schedule('c1', '2026-12-01T01:00:00Z');
    h.em.webhooks.drop({ event: 'meeting.participant_joined', times: 1 });
    h.em.join(c.meetingId, { name: 'Ann', email: 'ann@example.com' });
    await at('2026-12-01T01:10:00Z');
    expect((await monitor.runPass()).graceChecked).toEqual({ below_minimum: 1 });
    expect(h.em.meeting(c.meetingId)).toMatchObject({ deleted: false, state: 'started' });
  });
});
