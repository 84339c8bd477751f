import { afterEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { openEngineWorld, type EngineWorld } from '../deliveries/world.ts';
import { toDate } from '../../src/db/row.ts';
import { monitorOf } from './support.ts';

/** A crash between storing a recording and owing its replay links: the monitor's catch-up owes them. */
describe.each(dialects)('replay links catch-up on %s', (dialect) => {
  let w: EngineWorld;
  afterEach(async () => {
    await w?.close();
  });

  const storedRecording = async (scheduleId: number, fileType: string, state: 'stored' | 'pending', at: Date) => {
    await w.h.database.db
      .insertInto('recordings')
      .values({ schedule_id: scheduleId, meeting_id: '1', meeting_uuid: 'u1', file_id: `f-${fileType}-${state}`, file_type: fileType, state, attempts: 0, stored_at: state === 'stored' ? at : null, created_at: at, updated_at: at })
      .execute();
  };
  const replayRows = () => w.h.database.db.selectFrom('deliveries').select(['appointment_id', 'state']).where('kind', '=', 'replay_url').execute();

  it('owes each booked student one replay link, once, and waits for an MP4 still downloading', async () => {
    w = await openEngineWorld(dialect, { notifications: { replayUrl: { enabled: true } } });
    await w.klass('c1', '2026-12-01T09:00:00Z', 50, [1, 2, 3]);
    await w.klass('c2', '2026-12-01T09:00:00Z', 50, [4]);
    await w.h.database.db.updateTable('appointments').set({ cancelled: true }).where('external_id', '=', 'c1-3').execute();
    const monitor = monitorOf({ db: w.h.database.db, box: w.h.box, clock: w.h.clock, config: w.h.config, logger: w.h.logger });
    const now = w.h.clock.now();
    await storedRecording(1, 'MP4', 'stored', now);
    await storedRecording(2, 'M4A', 'stored', now);
    await storedRecording(2, 'MP4', 'pending', now);
    expect((await monitor.runPass()).replayLinksOwed).toBe(2);
    expect((await replayRows()).map((r) => r.appointment_id).sort()).toEqual([1, 2]);
    expect((await monitor.runPass()).replayLinksOwed).toBe(0);

    // Out of the late window: nothing is owed any more.
    await w.h.database.db.updateTable('recordings').set({ state: 'stored', stored_at: now }).where('file_id', '=', 'f-MP4-pending').execute();
    expect((await monitor.runPass()).replayLinksOwed).toBe(1);
    await w.h.database.db.deleteFrom('deliveries').where('kind', '=', 'replay_url').execute();
    await w.h.clock.set(new Date(now.getTime() + 25 * 3_600_000));
    expect((await monitor.runPass()).replayLinksOwed).toBe(0);
  });

  it('owed late by the catch-up, may still go only until lateWindow after the recording was stored', async () => {
    // README: lateWindow is "how late after the recording is stored the message may still go".
    w = await openEngineWorld(dialect, { notifications: { replayUrl: { enabled: true, lateWindow: '24h' } } });
    await w.klass('c1', '2026-12-01T09:00:00Z', 50, [1]);
    const storedAt = w.h.clock.now();
    await storedRecording(1, 'M4A', 'stored', new Date(storedAt.getTime() - 2 * 3_600_000));
    await storedRecording(1, 'MP4', 'stored', storedAt); // the latest playable file
    // The process died before owing the links, and the monitor comes back 23 hours later.
    await w.h.clock.set(new Date(storedAt.getTime() + 23 * 3_600_000));
    const monitor = monitorOf({ db: w.h.database.db, box: w.h.box, clock: w.h.clock, config: w.h.config, logger: w.h.logger });
    expect((await monitor.runPass()).replayLinksOwed).toBe(1);
    const row = await w.h.database.db.selectFrom('deliveries').select('not_after').where('kind', '=', 'replay_url').executeTakeFirstOrThrow();
    expect(toDate(row.not_after).toISOString()).toBe(new Date(storedAt.getTime() + 24 * 3_600_000).toISOString());
  });
});
