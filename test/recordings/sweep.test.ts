import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { dialects } from '../support/databases.ts';
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
});
