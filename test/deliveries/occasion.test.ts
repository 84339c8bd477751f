import { sql, type Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { up as addOccasion } from '../../src/db/migrations/0008-delivery-occasion.ts';
import { resyncDriftedDeliveries } from '../../src/deliveries/outbox.ts';
import { deliveryRules } from '../../src/deliveries/settings.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { dialects } from '../support/databases.ts';
import { openEngineWorld, userId, watchClaims, type EngineWorld } from './world.ts';

/** A message is owed once per occasion: the class times it was made for, stored on the row. */
describe.each(dialects)('the occasion of a delivery on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });

  it('a lead time changed after a link went out, then the class edited without moving: the link is not sent again', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    const engine = w.engine();
    await engine.start();
    await w.at('2026-12-01T11:51:00Z');
    expect(w.received()).toHaveLength(1);
    // The settings now want the link 5 minutes before the start (11:55, still ahead); the class
    // becomes a trial lesson (a new version, the same times) and its meeting is re-made for it.
    const rules = { ...deliveryRules(w.h.config.current()), meetingLeadMs: 5 * 60_000 };
    const edit = (startsAt: string, endsAt: string) =>
      upsertSchedules(
        w.h.database.db,
        w.h.clock,
        [{ externalId: 'c1', title: 'Class c1', startsAt: new Date(startsAt), endsAt: new Date(endsAt), trial: true, minParticipants: 0, feedbackUrl: null, cancelled: false }],
        { rules, onDeliveriesChanged: (ids) => engine.notifyChanged(ids) },
      );
    await edit('2026-12-01T12:00:00Z', '2026-12-01T12:50:00Z');
    await w.meetingMoved('c1');
    await w.at('2026-12-01T11:58:00Z');
    expect(w.received()).toHaveLength(1);
    // Moved for real (to 12:30): owed again, at 12:25 under the new lead time.
    await edit('2026-12-01T12:30:00Z', '2026-12-01T13:20:00Z');
    await w.meetingMoved('c1');
    await w.at('2026-12-01T12:26:00Z');
    expect(w.received().map((r) => [r.to, r.at])).toEqual([
      [userId(1), '2026-12-01T11:50:00.000Z'],
      [userId(1), '2026-12-01T12:25:00.000Z'],
    ]);
  });

  it('a row left behind by a move (made for an older version) is re-synced at its claim and goes out at the new time, without a claim loop', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1], { feedbackUrl: null });
    // The class moved to 13:00 and its meeting with it, but the booking's row was not re-timed (a
    // move whose sync could not see the booking): it is still due 11:50, for version 1.
    await w.h.database.db
      .updateTable('schedules')
      .set((eb) => ({ starts_at: new Date('2026-12-01T13:00:00Z'), ends_at: new Date('2026-12-01T13:50:00Z'), version: eb('version', '+', 1), meeting_version: eb('version', '+', 1) }))
      .execute();
    const claims = watchClaims(w.h.database.db);
    await w.engine(undefined, claims.db).start();
    await w.at('2026-12-01T11:49:59Z');
    const before = claims.count();
    await w.at('2026-12-01T11:51:00Z');
    expect(w.received()).toEqual([]);
    expect(claims.count() - before).toBeLessThan(10);
    expect(await w.h.database.db.selectFrom('deliveries').select(['state', 'schedule_version']).executeTakeFirstOrThrow()).toEqual({ state: 'pending', schedule_version: 2 });
    await w.at('2026-12-01T12:51:00Z');
    expect(w.received().map((r) => r.at)).toEqual(['2026-12-01T12:50:00.000Z']);
  });

  it('new lead times (a reload, or a restart with new settings) re-time the waiting deliveries timed by the old ones, and only those', async () => {
    w = await openEngineWorld(dialect);
    await w.klass('c1', '2026-12-01T12:00:00Z', 50, [1, 2]);
    await w.klass('c2', '2026-12-01T14:00:00Z', 50, [3], { feedbackUrl: null });
    const rules = deliveryRules(w.h.config.current());
    expect(await resyncDriftedDeliveries(w.h.database.db, w.h.clock, () => rules)).toEqual([]);
    const touched = await resyncDriftedDeliveries(w.h.database.db, w.h.clock, () => ({ ...rules, meetingLeadMs: 5 * 60_000 }));
    const rows = await w.h.database.db.selectFrom('deliveries').select(['id', 'kind', 'due_at', 'available_at']).orderBy('id').execute();
    const iso = (v: Date | string) => new Date(v).toISOString();
    expect(rows.map((r) => [r.kind, iso(r.due_at), iso(r.available_at)])).toEqual([
      ['meeting_url', '2026-12-01T11:55:00.000Z', '2026-12-01T11:55:00.000Z'],
      ['feedback_url', '2026-12-01T12:40:00.000Z', '2026-12-01T12:40:00.000Z'],
      ['meeting_url', '2026-12-01T11:55:00.000Z', '2026-12-01T11:55:00.000Z'],
      ['feedback_url', '2026-12-01T12:40:00.000Z', '2026-12-01T12:40:00.000Z'],
      ['meeting_url', '2026-12-01T13:55:00.000Z', '2026-12-01T13:55:00.000Z'],
    ]);
    expect(touched.sort((a, b) => a - b)).toEqual(rows.filter((r) => r.kind === 'meeting_url').map((r) => r.id));
    // A sent link stays as it was sent.
    await w.h.database.db.updateTable('deliveries').set({ state: 'sent' }).where('kind', '=', 'meeting_url').execute();
    expect(await resyncDriftedDeliveries(w.h.database.db, w.h.clock, () => rules)).toEqual([]);
    // The feedback link's late window; a class shorter than the feedback lead (its link due at the
    // start) is not taken for drifted.
    expect(await resyncDriftedDeliveries(w.h.database.db, w.h.clock, () => ({ ...rules, feedbackLateWindowMs: 3_600_000 }))).toHaveLength(2);
    await w.klass('short', '2026-12-01T15:00:00Z', 5, [4]);
    expect(await resyncDriftedDeliveries(w.h.database.db, w.h.clock, () => rules)).toHaveLength(2);
    expect(await resyncDriftedDeliveries(w.h.database.db, w.h.clock, () => rules)).toEqual([]);
    // Rows from before the class times were stored are re-synced once, and carry them from then on.
    await w.h.database.db.updateTable('deliveries').set({ class_starts_at: null, class_ends_at: null }).where('kind', '=', 'feedback_url').execute();
    expect(await resyncDriftedDeliveries(w.h.database.db, w.h.clock, () => rules)).toHaveLength(3);
    expect(await resyncDriftedDeliveries(w.h.database.db, w.h.clock, () => rules)).toEqual([]);
  });

  it('the migration fills in the class times of rows still useful and made for the class as it is now, and leaves the others unknown', async () => {
    // The migration runs on the database's real clock: classes far ahead, and one long past.
    w = await openEngineWorld(dialect);
    await w.klass('now', '2099-12-01T12:00:00Z', 50, [1]);
    await w.klass('older', '2099-12-01T14:00:00Z', 50, [2], { feedbackUrl: null });
    await w.klass('past', '2020-12-01T12:00:00Z', 50, [3], { feedbackUrl: null });
    // A row made for an earlier version of its class: the times it was made for are not known.
    const olderIds = w.h.database.db.selectFrom('appointments').select('id').where('external_id', '=', 'older-2');
    await w.h.database.db.updateTable('deliveries').set({ schedule_version: 0 }).where('appointment_id', 'in', olderIds).execute();
    for (const column of ['class_starts_at', 'class_ends_at']) await sql`alter table deliveries drop column ${sql.ref(column)}`.execute(w.h.database.db);
    await addOccasion(w.h.database.db as unknown as Kysely<unknown>, dialect);
    const rows = await w.h.database.db.selectFrom('deliveries').select(['kind', 'schedule_version', 'class_starts_at', 'class_ends_at']).orderBy('id').execute();
    const iso = (v: Date | string | null) => (v === null ? null : new Date(v).toISOString());
    expect(rows.map((r) => [r.kind, r.schedule_version, iso(r.class_starts_at), iso(r.class_ends_at)])).toEqual([
      ['meeting_url', 1, '2099-12-01T12:00:00.000Z', '2099-12-01T12:50:00.000Z'],
      ['feedback_url', 1, '2099-12-01T12:00:00.000Z', '2099-12-01T12:50:00.000Z'],
      ['meeting_url', 0, null, null],
      ['meeting_url', 1, null, null], // history: left alone
    ]);
  });
});
