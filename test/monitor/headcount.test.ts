import { afterEach, describe, expect, it } from 'vitest';
import type { DeliveryEngine } from '../../src/deliveries/loop.ts';
import { deliveryRules } from '../../src/deliveries/settings.ts';
import { checkHeadcount, type MinimumPolicy } from '../../src/monitor/headcount.ts';
import { insertLineChannel } from '../../src/line/channels.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { dialects } from '../support/databases.ts';
import { openEngineWorld, userId, type EngineWorld } from '../deliveries/world.ts';
import { openZoomWorld, silent, type ZoomWorld } from '../zoom/world.ts';
import { monitorOf } from './support.ts';

describe.each(dialects)('minimum headcount on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });

  const monitorFor = (world: EngineWorld, engine?: DeliveryEngine) =>
    monitorOf({ db: world.h.database.db, box: world.h.box, clock: world.h.clock, config: world.h.config, logger: world.h.logger }, engine ? (ids) => engine.notifyChanged(ids) : undefined);
  const schedule = (world: EngineWorld, id: string) =>
    world.h.database.db.selectFrom('schedules').select(['cancelled', 'headcount_state', 'headcount_reason', 'headcount_stage', 'version']).where('external_id', '=', id).executeTakeFirstOrThrow();
  const deliveries = (world: EngineWorld) =>
    world.h.database.db.selectFrom('deliveries').select(['kind', 'state', 'last_error']).orderBy('id').execute();

  it('notify-only (the default): reports a class below its minimum and still sends its links', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1, 2], { minParticipants: 3 });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:49:00Z');
    const report = await monitorFor(w).runPass();
    expect(report.headcountChecked).toBe(1);
    expect(await schedule(w, 'c1')).toMatchObject({ cancelled: dialect === 'postgres' ? false : 0, headcount_state: 'below_minimum', headcount_stage: 'send' });
    expect((await schedule(w, 'c1')).headcount_reason).toBe('2 booked, below the minimum of 3 (checked before sending the meeting link)');
    expect(w.h.logs.some((l) => l.includes('below its minimum headcount'))).toBe(true);
    await w.at('2026-12-01T11:50:00Z');
    expect(w.received().map((r) => r.to).sort()).toEqual([userId(1), userId(2)].sort());
  });

  it('cancel: calls the class off once, cancels its links and tells each booked student once', async () => {
    w = await openEngineWorld(dialect, { monitor: { minimumPolicy: 'cancel' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1, 2], { minParticipants: 3 });
    await w.klass('c2', '2026-12-01T12:00:00Z', 50, [3, 4, 5], { minParticipants: 3 });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:49:00Z');
    const monitor = monitorFor(w, engine);
    await monitor.runPass();
    await monitor.runPass(); // checked once: the second pass changes nothing
    await w.advance(1000);
    expect(await schedule(w, 'c1')).toMatchObject({ headcount_state: 'cancelled', version: 2 });
    expect(await schedule(w, 'c2')).toMatchObject({ headcount_state: 'ok' });
    const notices = w.received().filter((r) => r.text.includes('停課通知'));
    expect(notices.map((r) => r.to).sort()).toEqual([userId(1), userId(2)].sort());
    expect(notices[0]?.text).toContain('Class c1');

    // The platform sends the class again as not cancelled: it stays called off, and nobody is told twice.
    const rules = deliveryRules(w.h.config.current());
    await upsertSchedules(w.h.database.db, w.h.clock, [{ externalId: 'c1', title: 'Class c1 (renamed)', startsAt: new Date('2026-12-01T12:00:00Z'), endsAt: new Date('2026-12-01T12:50:00Z'), trial: false, minParticipants: 3, feedbackUrl: null, cancelled: false }], { rules });
    await upsertAppointments(w.h.database.db, w.h.clock, [{ externalId: 'c1-9', scheduleExternalId: 'c1', student: { channel: 'school-a', lineUserId: userId(9) }, cancelled: false }], { rules });
    await w.at('2026-12-01T12:45:00Z');
    const received = w.received();
    expect(received.filter((r) => r.text.includes('停課通知'))).toHaveLength(2);
    expect(received.filter((r) => r.text.includes('zoom.example.com/j/c1'))).toHaveLength(0);
    expect(received.filter((r) => r.text.includes('zoom.example.com/j/c2'))).toHaveLength(3);
    const ofClass = () =>
      w.h.database.db
        .selectFrom('deliveries')
        .innerJoin('appointments', 'appointments.id', 'deliveries.appointment_id')
        .innerJoin('schedules', 'schedules.id', 'appointments.schedule_id')
        .select(['deliveries.kind', 'deliveries.state', 'deliveries.due_at'])
        .where('schedules.external_id', '=', 'c1')
        .execute();
    const c1 = await ofClass();
    expect(c1.filter((d) => d.kind === 'meeting_url').every((d) => d.state === 'cancelled')).toBe(true);
    expect(c1.filter((d) => d.kind === 'class_cancelled').map((d) => d.state)).toEqual(['sent', 'sent']);

    // Moved to the next day and sent as on: the platform rescheduled it. A class again, to be checked anew.
    await upsertSchedules(w.h.database.db, w.h.clock, [{ externalId: 'c1', title: 'Class c1', startsAt: new Date('2026-12-02T12:00:00Z'), endsAt: new Date('2026-12-02T12:50:00Z'), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false }], { rules });
    expect(await schedule(w, 'c1')).toMatchObject({ cancelled: dialect === 'postgres' ? false : 0, headcount_state: null, headcount_stage: null });
    const moved = (await ofClass()).filter((d) => d.kind === 'meeting_url');
    expect(moved.map((d) => [d.state, new Date(d.due_at).toISOString()])).toEqual(Array.from({ length: 3 }, () => ['pending', '2026-12-02T11:50:00.000Z']));
  });

  it('cancel with the Zoom monitor turned off: the class is still called off and its students told, before the link goes out', async () => {
    // The headcount is a scheduling rule on the bookings; monitor.enabled only stops watching Zoom.
    w = await openEngineWorld(dialect, { monitor: { minimumPolicy: 'cancel', enabled: false } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1, 2], { minParticipants: 3 });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:49:00Z');
    expect(await monitorFor(w, engine).runPass()).toEqual({ headcountChecked: 1, graceChecked: {}, reconciled: 0, replayLinksOwed: 0 });
    await w.at('2026-12-01T11:55:00Z');
    expect(await schedule(w, 'c1')).toMatchObject({ headcount_state: 'cancelled', headcount_stage: 'send', version: 2 });
    const received = w.received();
    expect(received.filter((r) => r.text.includes('停課通知')).map((r) => r.to).sort()).toEqual([userId(1), userId(2)].sort());
    expect(received.filter((r) => r.text.includes('zoom.example.com/j/c1'))).toHaveLength(0);
  });

  it('leaves a class at its minimum alone, and a class with no minimum unchecked', async () => {
    w = await openEngineWorld(dialect, { monitor: { minimumPolicy: 'cancel' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1, 2, 3], { minParticipants: 3 });
    await w.klass('c2', '2026-12-01T12:00:00Z', 50, [4]);
    const result = await checkHeadcount(w.h.database.db, w.h.clock, { scheduleId: 1, stage: 'provision', policy: 'cancel', rules: deliveryRules(w.h.config.current()) });
    expect(result).toMatchObject({ state: 'ok', booked: 3, touched: [] });
    await w.at('2026-12-01T11:49:00Z');
    expect((await monitorFor(w).runPass()).headcountChecked).toBe(1);
    expect(await schedule(w, 'c2')).toMatchObject({ headcount_state: null });
    expect((await deliveries(w)).every((d) => d.state === 'pending')).toBe(true);
  });
});

describe.each(dialects)('minimum headcount before provisioning on %s', (dialect) => {
  let z: ZoomWorld;
  afterEach(async () => {
    await z?.close();
  });

  const open = async (policy: MinimumPolicy) => {
    // Two hosts: the last test's two classes share one start.
    z = await openZoomWorld(dialect, [{ label: 'h1', plan: 'licensed' }, { label: 'h2', plan: 'licensed' }], { config: { monitor: { minimumPolicy: policy } } });
    await insertLineChannel(z.database.db, z.box, z.clock, { label: 'OA', slug: 'school-a', channelId: '1', channelSecret: 's', channelAccessToken: 't' });
  };
  const row = (id: string) =>
    z.database.db.selectFrom('schedules').select(['cancelled', 'headcount_state', 'headcount_stage', 'meeting_state']).where('external_id', '=', id).executeTakeFirstOrThrow();
  const book = (id: string, students: number[]) =>
    upsertAppointments(
      z.database.db,
      z.clock,
      students.map((n) => ({ externalId: `${id}-${n}`, scheduleExternalId: id, student: { channel: 'school-a', lineUserId: userId(n) }, cancelled: false })),
      { rules: deliveryRules(z.config.current()) },
    );
  const notices = () => z.database.db.selectFrom('deliveries').select('id').where('kind', '=', 'class_cancelled').execute();

  it.each(['notify-only', 'cancel'] as const)('%s: reports a class short when its meeting is made, and makes the meeting', async (policy) => {
    await open(policy);
    await z.schedule('short', '2026-12-01T12:00:00Z', 50, { minParticipants: 2 });
    await z.schedule('free', '2026-12-01T14:00:00Z', 50);
    const report = await z.provisioner().runPass();
    expect(report.outcomes).toEqual({ created: 2 });
    const short = await row('short');
    expect(short).toMatchObject({ headcount_state: 'below_minimum', headcount_stage: 'provision', meeting_state: 'ready' });
    expect(Boolean(short.cancelled)).toBe(false);
    expect(z.em.meetings()).toHaveLength(2);
    expect(await notices()).toHaveLength(0);
  });

  // A class enters the horizon 48 h ahead, usually before its bookings: calling it off then was final.
  it('cancel: a class made before its bookings arrive is judged before its link goes out', async () => {
    await open('cancel');
    await z.schedule('filled', '2026-12-02T20:00:00Z', 50, { minParticipants: 2 });
    await z.schedule('short', '2026-12-02T20:00:00Z', 50, { minParticipants: 2 });
    expect((await z.provisioner().runPass()).outcomes).toEqual({ created: 2 });
    for (const id of ['filled', 'short']) expect(Boolean((await row(id)).cancelled)).toBe(false);
    expect(await notices()).toHaveLength(0);

    await book('filled', [1, 2]);
    await book('short', [3]);
    await z.clock.set(new Date('2026-12-02T19:49:00Z'));
    const monitor = monitorOf({ db: z.database.db, box: z.box, clock: z.clock, config: z.config, logger: silent, client: z.client });
    expect((await monitor.runPass()).headcountChecked).toBe(2);
    expect(await row('filled')).toMatchObject({ headcount_state: 'ok', headcount_stage: 'send', meeting_state: 'ready' });
    expect(await row('short')).toMatchObject({ headcount_state: 'cancelled', headcount_stage: 'send' });
    expect(await notices()).toHaveLength(1); // the one student booked on the class called off

    expect((await z.provisioner().runPass()).outcomes).toEqual({ deleted: 1 });
    expect(await row('short')).toMatchObject({ meeting_state: 'deleted' });
    expect(z.em.meetings().filter((m) => !m.deleted)).toHaveLength(1);
  });
});
