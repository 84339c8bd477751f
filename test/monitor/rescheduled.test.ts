import { afterEach, describe, expect, it } from 'vitest';
import { deliveryRules } from '../../src/deliveries/settings.ts';
import { upsertAppointments } from '../../src/schedules/appointments.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { dialects } from '../support/databases.ts';
import { openEngineWorld, userId, type EngineWorld } from '../deliveries/world.ts';
import { monitorOf } from '../monitor/support.ts';

describe.each(dialects)('a class called off, rescheduled, then called off again, on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });
  it('tells every booked student the rescheduled class is off too', async () => {
    w = await openEngineWorld(dialect, { monitor: { minimumPolicy: 'cancel' } });
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1, 2], { minParticipants: 3 });
    const engine = w.engine();
    await engine.start();
    const monitor = monitorOf({ db: w.h.database.db, box: w.h.box, clock: w.h.clock, config: w.h.config, logger: w.h.logger }, (ids) => engine.notifyChanged(ids));
    await w.at('2026-12-01T11:49:00Z');
    await monitor.runPass();
    await w.advance(1000);
    const notices = () => w.received().filter((r) => r.text.includes('停課通知'));
    expect(notices().map((r) => r.to).sort()).toEqual([userId(1), userId(2)].sort());
    const rules = deliveryRules(w.h.config.current());
    // Platform reschedules to the next day (sent as on); a third student books.
    await upsertSchedules(w.h.database.db, w.h.clock, [{ externalId: 'c1', title: 'Class c1', startsAt: new Date('2026-12-02T12:00:00Z'), endsAt: new Date('2026-12-02T12:50:00Z'), trial: false, minParticipants: 4, feedbackUrl: null, cancelled: false }], { rules });
    await upsertAppointments(w.h.database.db, w.h.clock, [{ externalId: 'c1-9', scheduleExternalId: 'c1', student: { channel: 'school-a', lineUserId: userId(9) }, cancelled: false }], { rules });
    await w.meetingMoved('c1');
    await w.at('2026-12-02T11:49:00Z');
    await monitor.runPass();
    await w.advance(1000);
    expect(await w.h.database.db.selectFrom('schedules').select('headcount_state').where('external_id', '=', 'c1').executeTakeFirstOrThrow()).toEqual({ headcount_state: 'cancelled' });
    const second = notices().slice(2).map((r) => r.to).sort();
    expect(second).toEqual([userId(1), userId(2), userId(9)].sort());
    // A second pass (or a replica) repeating the same call-off tells nobody again.
    await monitor.runPass();
    await w.advance(60_000);
    expect(notices()).toHaveLength(5);
  });
});
