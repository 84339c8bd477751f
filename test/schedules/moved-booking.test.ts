import { afterEach, describe, expect, it } from 'vitest';
import type { DeliveryEngine } from '../../src/deliveries/loop.ts';
import { deliveryRules } from '../../src/deliveries/settings.ts';
import { checkHeadcount } from '../../src/monitor/headcount.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { dialects } from '../support/databases.ts';
import { openEngineWorld, userId, type EngineWorld } from '../deliveries/world.ts';

/** A booking the platform moves to another class: what it is owed follows it, and only it. */
describe.each(dialects)('a booking moved to another class on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });

  const moveTo = (schedule: string, engine?: DeliveryEngine) =>
    upsertAppointments(w.h.database.db, w.h.clock, [{ externalId: 'c1-1', scheduleExternalId: schedule, student: { channel: 'school-a', lineUserId: userId(1) }, cancelled: false }], {
      rules: deliveryRules(w.h.config.current()),
      ...(engine ? { onDeliveriesChanged: (ids: number[]) => engine.notifyChanged(ids) } : {}),
    });
  /** The minimum-headcount policy calls the class off (as the monitor does before the link goes out). */
  const callOff = async (schedule: string, engine?: DeliveryEngine) => {
    const { id } = await w.h.database.db.selectFrom('schedules').select('id').where('external_id', '=', schedule).executeTakeFirstOrThrow();
    const result = await checkHeadcount(w.h.database.db, w.h.clock, { scheduleId: id, stage: 'send', policy: 'cancel', rules: deliveryRules(w.h.config.current()) });
    expect(result?.state).toBe('cancelled');
    if (engine && result) engine.notifyChanged(result.touched);
  };
  /** To whom, in which minute, and the notice's first words (naming the class). */
  const sentAt = (r: { to: string; at: string; text: string }) => [r.to, r.at.slice(0, 16), r.text.split('（')[0]];
  const notices = async () =>
    (await w.h.database.db.selectFrom('deliveries').select(['state', 'last_error']).where('kind', '=', 'class_cancelled').orderBy('id').execute()).map((r) => [r.state, r.last_error]);

  it('after the new class link was due but before the class: the student gets the new class link at once', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    await w.klass('c2', '2026-12-01T12:05:00Z', 50, [], { feedbackUrl: null });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:51:00Z');
    // At 11:57 the booking moves to c2, whose link was due at 11:55.
    await w.at('2026-12-01T11:57:00Z');
    await moveTo('c2', engine);
    await w.at('2026-12-01T12:10:00Z');
    expect(w.received().map((r) => [r.to, r.at, r.text.split('\n')[0]])).toEqual([
      [userId(1), '2026-12-01T11:50:00.000Z', '【上課提醒】Class c1'],
      [userId(1), expect.stringMatching(/^2026-12-01T11:57:00/), '【上課提醒】Class c2'],
    ]);
  });

  it("leaves the old class's waiting cancellation notice behind, and gets the new class's own when that one is called off", async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null, minParticipants: 2 });
    await w.klass('c2', '2026-12-01T14:00:00Z', 50, [], { feedbackUrl: null, minParticipants: 2 });
    // c1 is called off; before its notice goes out the platform re-books the student into c2.
    await callOff('c1');
    await moveTo('c2');
    expect(await notices()).toEqual([['cancelled', 'the booking moved to another class']]);
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T10:05:00Z');
    // Not told that c2 (which is on) is cancelled.
    expect(w.received()).toEqual([]);
    // Later c2 is called off too: that notice is owed, and goes out.
    await callOff('c2', engine);
    await w.at('2026-12-01T10:10:00Z');
    expect(w.received().map(sentAt)).toEqual([[userId(1), '2026-12-01T10:05', '【停課通知】Class c2']]);
    expect((await notices()).map(([state]) => state)).toEqual(['sent']);
  });

  it("a notice of the old class already sent does not stop the new class's", async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null, minParticipants: 2 });
    await w.klass('c2', '2026-12-01T14:00:00Z', 50, [], { feedbackUrl: null, minParticipants: 2 });
    const engine = w.engine();
    await engine.start();
    await callOff('c1', engine);
    await w.at('2026-12-01T10:01:00Z');
    await moveTo('c2', engine);
    await w.at('2026-12-01T10:05:00Z');
    await callOff('c2', engine);
    await w.at('2026-12-01T10:06:00Z');
    expect(w.received().map(sentAt)).toEqual([
      [userId(1), '2026-12-01T10:00', '【停課通知】Class c1'],
      [userId(1), '2026-12-01T10:05', '【停課通知】Class c2'],
    ]);
    // One row per booking and kind: re-armed as a new message for c2 (a new key, attempts from 1).
    const rows = await w.h.database.db.selectFrom('deliveries').select(['state', 'attempts', 'last_error']).where('kind', '=', 'class_cancelled').execute();
    expect(rows).toEqual([{ state: 'sent', attempts: 1, last_error: null }]);
  });
});
