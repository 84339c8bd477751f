import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { sweepRecordings } from '../../src/recordings/sweep.ts';
import { dialects } from '../support/databases.ts';
import { silent } from '../zoom/world.ts';
import { file, openRecordingWorld, type RecordingWorld } from './world.ts';

describe.each(dialects)('recording sweep and loop (%s)', (dialect) => {
  let w: RecordingWorld;
  beforeEach(async () => {
    w = await openRecordingWorld(dialect);
  });
  afterEach(() => w.close());

  it('asks nothing about meetings not made to record to the cloud', async () => {
    await w.close();
    w = await openRecordingWorld(dialect, {}, 'none');
    await w.clock.set(new Date('2026-12-01T02:10:00Z'));
    expect(await w.recordings().sweep()).toEqual({ checked: 0, found: 0, none: 0, errors: 0 });
    expect(w.em.requests().filter((r) => r.path.endsWith('/recordings'))).toEqual([]);
  });

  it('finds a recording whose webhook was lost, once the class has ended', async () => {
    const rec = w.recordings();
    expect(await rec.sweep()).toEqual({ checked: 0, found: 0, none: 0, errors: 0 }); // the class has not ended
    await w.clock.set(new Date('2026-12-01T02:10:00Z'));
    expect(await rec.sweep()).toEqual({ checked: 1, found: 0, none: 1, errors: 0 }); // 404 3301: none yet

    const lost = w.em.webhooks.drop({ event: 'recording.completed' });
    w.em.addRecording(w.meetingNumber, [file('swept-mp4', 'MP4', 20_000), file('swept-m4a', 'M4A', 5_000)]);
    lost.remove();
    expect(w.em.webhooks.deliveries({ event: 'recording.completed' })).toEqual([]);
    expect(await rec.sweep()).toMatchObject({ checked: 0 }); // asked a moment ago: not before sweepInterval
    await w.clock.advance(30 * 60_000);
    expect(await rec.sweep()).toEqual({ checked: 1, found: 1, none: 0, errors: 0 });
    expect((await w.rows()).map((r) => [r.fileId, r.state, r.downloadToken])).toEqual([
      ['swept-mp4', 'pending', null],
      ['swept-m4a', 'pending', null],
    ]);
    expect(await rec.sweep()).toMatchObject({ checked: 0 }); // it has rows now
    expect(await rec.runOnce()).toEqual({ claimed: 2, outcomes: { stored: 2 } });
    expect((await w.rows()).every((r) => r.checksumSha256 === w.em.recordingFile(r.fileId)?.sha256)).toBe(true);

    // Past the lookback the class is no longer asked about.
    await w.database.db.deleteFrom('recordings').execute();
    await w.clock.set(new Date('2026-12-04T02:01:00Z'));
    expect(await rec.sweep()).toMatchObject({ checked: 0 });
  });

  it('asks Zoom by the instance the class ran as, not by the one its meeting was created as', async () => {
    const startAndEnd = async (at: string, minutes: number): Promise<string> => {
      await w.clock.set(new Date(at));
      const started = w.em.startMeeting(w.meetingNumber, { by: 'host' });
      if (!started.started) throw new Error(`not started: ${started.reason}`);
      await storeEvent('meeting.started', started.uuid);
      await w.clock.advance(minutes * 60_000);
      w.em.endMeeting(w.meetingNumber);
      await storeEvent('meeting.ended', started.uuid);
      return started.uuid;
    };
    // As the monitor stores Zoom's meeting webhooks.
    const storeEvent = async (event: string, uuid: string): Promise<void> => {
      const now = w.clock.now();
      await w.database.db
        .insertInto('meeting_events')
        .values({ account_id: 'acc-pro', event_key: `${event}:${uuid}`, event, meeting_id: String(w.meetingNumber), meeting_uuid: uuid, event_at: now, payload: '{}', received_at: now, processed_at: now })
        .execute();
    };
    // The host tried the room out at midnight (the meeting's first instance, the UUID it was created
    // with); the class ran as a second instance from 00:55 to 02:00.
    const tryOut = await startAndEnd('2026-12-01T00:00:00Z', 5);
    const lesson = await startAndEnd('2026-12-01T00:55:00Z', 65);
    const created = await w.database.db.selectFrom('schedules').select('meeting_uuid').where('id', '=', w.scheduleId).executeTakeFirstOrThrow();
    expect(created.meeting_uuid).toBe(tryOut);
    expect(lesson).not.toBe(tryOut);
    const lost = w.em.webhooks.drop({ event: 'recording.completed' });
    w.em.addRecording(w.meetingNumber, [file('lesson-mp4', 'MP4', 20_000)]);
    lost.remove();

    await w.clock.set(new Date('2026-12-01T02:10:00Z'));
    expect(await w.recordings().sweep()).toEqual({ checked: 1, found: 1, none: 0, errors: 0 });
    const decoded = (segment: string): string => (segment.includes('%') ? decoded(decodeURIComponent(segment)) : segment);
    const asked = w.em.requests().filter((r) => r.path.endsWith('/recordings')).map((r) => decoded(r.path.split('/').at(-2) ?? ''));
    expect(asked).toEqual([lesson]);
    expect((await w.rows()).map((r) => [r.fileId, r.state])).toEqual([['lesson-mp4', 'pending']]);
  });

  it('an instance UUID that starts with "/" or holds "//" is asked for double-encoded', async () => {
    const uuid = '/Zm9v//YmFyYmF6cXV4==';
    const at = new Date('2026-12-01T01:00:00Z');
    await w.database.db
      .insertInto('meeting_events')
      .values({ account_id: 'acc-pro', event_key: 'started', event: 'meeting.started', meeting_id: String(w.meetingNumber), meeting_uuid: uuid, event_at: at, payload: '{}', received_at: at, processed_at: at })
      .execute();
    await w.clock.set(new Date('2026-12-01T02:10:00Z'));
    expect(await w.recordings().sweep()).toEqual({ checked: 1, found: 0, none: 1, errors: 0 });
    const asked = w.em.requests().filter((r) => r.path.endsWith('/recordings')).map((r) => r.path);
    expect(asked).toEqual([`/v2/meetings/${encodeURIComponent(encodeURIComponent(uuid))}/recordings`]);
  });

  it('runs on its own: an ingest wakes the loop, stop hands back nothing half-done', async () => {
    const rec = w.recordings();
    rec.start();
    const outcome = await rec.ingest(await w.record([file('loop-mp4', 'MP4', 30_000)]));
    expect(outcome).toBe('recordings: 1 new, 0 refreshed, 0 already stored');
    // The loop runs on real HTTP: wait (in real time) for the download and the onStored call after it.
    await vi.waitFor(() => expect(w.stored).toHaveLength(1), { timeout: 5000, interval: 20 });
    await rec.stop();
    expect((await w.rows())[0]).toMatchObject({ state: 'stored', leaseToken: null });
  });

  it('refreshes the URL and token of a file not stored yet and revives a failed one', async () => {
    const rec = w.recordings();
    const event = await w.record([file('again', 'MP4', 10_000)]);
    await rec.ingest({ ...event, downloadToken: null });
    await w.database.db.updateTable('recordings').set({ state: 'failed', attempts: 3, last_error: 'gave up' }).execute();
    expect(await rec.ingest(event)).toBe('recordings: 0 new, 1 refreshed, 0 already stored');
    const [row] = await w.rows();
    expect(row).toMatchObject({ state: 'pending', attempts: 0 });
    expect(row?.downloadToken).not.toBeNull();
    expect(row?.downloadTokenExpiresAt?.getTime()).toBe(w.clock.now().getTime() + 24 * 3_600_000);
    expect(await rec.runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
  });

  it('asks about each class at most once per sweepInterval, so a backlog cannot starve newer classes', async () => {
    await w.schedule('c2', '2026-12-01T03:00:00Z', 60);
    await w.schedule('c3', '2026-12-01T05:00:00Z', 60);
    await w.provisioner().runPass();
    await w.clock.set(new Date('2026-12-01T06:10:00Z'));
    // Two per sweep, as if 500 classes without a recording were ahead of the newest one.
    const sweep = () => sweepRecordings(w.database.db, { clock: w.clock, box: w.box, config: w.config, client: w.client, logger: silent, limit: 2 });
    const asked = async () => {
      const rows = await w.database.db.selectFrom('schedules').select(['external_id', 'recording_swept_at']).orderBy('external_id').execute();
      return rows.map((r) => [r.external_id, r.recording_swept_at === null ? null : new Date(r.recording_swept_at).toISOString()]);
    };
    expect(await sweep()).toEqual({ checked: 2, found: 0, none: 2, errors: 0 });
    expect(await sweep()).toEqual({ checked: 1, found: 0, none: 1, errors: 0 }); // c3, not c1 and c2 again
    expect(await asked()).toEqual([
      ['c1', '2026-12-01T06:10:00.000Z'],
      ['c2', '2026-12-01T06:10:00.000Z'],
      ['c3', '2026-12-01T06:10:00.000Z'],
    ]);
    expect(await sweep()).toMatchObject({ checked: 0 });
    await w.clock.advance(30 * 60_000 - 1);
    expect(await sweep()).toMatchObject({ checked: 0 });
    await w.clock.advance(1);
    expect(await sweep()).toMatchObject({ checked: 2 });
    expect(await sweep()).toMatchObject({ checked: 1 });
  });

  it('recordings.enabled is live: off at start, on later, and the loop downloads at once', async () => {
    const live = w.liveConfig({ enabled: false });
    const rec = w.recordings({ config: live.config });
    rec.start();
    const event = await w.record([file('later', 'MP4', 30_000)]);
    expect(await rec.ingest(event)).toMatch(/^ignored: recordings are off/);
    await w.recordings().ingest(event); // another replica, with recordings on, records the file
    expect(live.set({ enabled: true })).toMatchObject({ status: 'applied', changed: ['recordings.enabled'] });
    // No clock advance: turning the key on wakes the loop. Real HTTP: wait in real time.
    await vi.waitFor(() => expect(w.stored).toHaveLength(1), { timeout: 5000, interval: 20 });
    await rec.stop();
    expect((await w.rows())[0]).toMatchObject({ state: 'stored' });
  });

  it('recordings.enabled is live: turned off, the loop claims nothing and the sweep asks Zoom nothing', async () => {
    const live = w.liveConfig({ enabled: true });
    const rec = w.recordings({ config: live.config });
    rec.start();
    expect(live.set({ enabled: false })).toMatchObject({ status: 'applied', changed: ['recordings.enabled'] });
    await w.clock.set(new Date('2026-12-01T02:40:00Z')); // the class ended at 02:00; sweeps ran at 02:00 and 02:30
    expect(await rec.sweep()).toEqual({ checked: 0, found: 0, none: 0, errors: 0 }); // the sweep itself checks the key
    await w.recordings().ingest(await w.record([file('off', 'MP4', 10_000)])); // another replica
    await w.clock.advance(3 * 60_000); // the loop's idle polls
    await rec.stop();
    expect(w.em.requests().filter((r) => r.path.endsWith('/recordings'))).toEqual([]);
    expect(w.em.downloads.requests()).toEqual([]);
    expect((await w.rows())[0]).toMatchObject({ state: 'pending', attempts: 0 });
  });

  it('starts no download for a claim that lands while stop() runs', async () => {
    const rec = w.recordings();
    await rec.ingest(await w.record([file('late', 'MP4', 10_000)])); // not started: nothing claims it yet
    rec.start(); // the loop's claim is in flight now
    await rec.stop();
    await rec.stop(); // waits for anything the first one let through
    expect(w.em.downloads.requests()).toEqual([]);
    expect((await w.rows())[0]).toMatchObject({ state: 'pending', attempts: 0, leaseToken: null });
    expect(await w.recordings().runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
  });
});
