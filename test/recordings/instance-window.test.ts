import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dialects } from '../support/databases.ts';
import { file, openRecordingWorld, type RecordingWorld } from './world.ts';

/**
 * Zoom files recordings under each instance of a meeting id (each start is a new UUID). The class runs
 * 01:00–02:00 (the world's clock starts at 00:00); an instance recorded outside its host window (the
 * host trying the room out, or starting it again later) is not the class's recording.
 */
describe.each(dialects)('recordings of instances outside the class (%s)', (dialect) => {
  let w: RecordingWorld;
  beforeEach(async () => {
    w = await openRecordingWorld(dialect);
  });
  afterEach(() => w.close());

  const uuidOf = (event: { object: unknown }): string => (event.object as { uuid: string }).uuid;
  /** The host has the room open, alone, for `minutes` from now (one instance of the meeting). */
  const hostRuns = async (minutes: number): Promise<void> => {
    const host = w.em.join(w.meetingNumber, { name: 'Teacher', role: 'host' });
    await w.clock.advance(minutes * 60_000);
    w.em.leave(w.meetingNumber, host);
  };

  it('a host test run before the class is not the class recording, and the replay link points at the class', async () => {
    const rec = w.recordings();
    // 00:00 the host tries the meeting out for five minutes; Zoom records that instance.
    await hostRuns(5);
    const testRun = await w.record([file('test-run-mp4', 'MP4', 10_000)]);
    // The host window is 00:50–02:10 (10 minutes' early join, 10 after the class).
    expect(await rec.ingest(testRun)).toBe(
      `ignored: instance ${uuidOf(testRun)} was recorded 2026-12-01T00:00:00.000Z–2026-12-01T00:05:00.000Z, outside the host window 2026-12-01T00:50:00.000Z–2026-12-01T02:10:00.000Z of schedule ${w.scheduleId}`,
    );
    expect(await rec.runOnce()).toEqual({ claimed: 0, outcomes: {} });

    // 01:00–02:00 the class itself, recorded too.
    await w.clock.advance(55 * 60_000);
    const host = w.em.join(w.meetingNumber, { name: 'Teacher', role: 'host' });
    const student = w.em.join(w.meetingNumber, { name: 'Student', email: 's@example.com' });
    await w.clock.advance(60 * 60_000);
    w.em.leave(w.meetingNumber, student);
    w.em.leave(w.meetingNumber, host);
    const lesson = await w.record([file('class-mp4', 'MP4', 20_000)]);
    expect(uuidOf(lesson)).not.toBe(uuidOf(testRun));
    expect(await rec.ingest(lesson)).toBe('recordings: 1 new, 0 refreshed, 0 already stored');
    await rec.runOnce();

    const rows = await w.rows();
    expect(rows.map((r) => [r.fileId, r.state, r.meetingUuid])).toEqual([['class-mp4', 'stored', uuidOf(lesson)]]);
    // The replay link is owed once per booking, when the first playable file is stored: the class's.
    expect(w.stored.map((s) => s.id)).toEqual([rows[0]?.id]);
  });

  it('of an instance, only the files recorded within the host window are kept', async () => {
    const rec = w.recordings();
    await w.clock.set(new Date('2026-12-01T01:00:00Z'));
    await hostRuns(60);
    const lesson = await w.record([file('class-mp4', 'MP4', 20_000), file('late-m4a', 'M4A', 5_000)]);
    // The host kept the room open and recorded the audio again from 03:00 (the window has long ended).
    const object = lesson.object as { recording_files: Record<string, unknown>[] };
    const files = object.recording_files.map((f) => (f['id'] === 'late-m4a' ? { ...f, recording_start: '2026-12-01T03:00:00Z', recording_end: '2026-12-01T03:10:00Z' } : f));
    expect(await rec.ingest({ ...lesson, object: { ...object, recording_files: files } })).toBe('recordings: 1 new, 0 refreshed, 0 already stored, 1 recorded outside the host window left out');
    expect((await w.rows()).map((r) => r.fileId)).toEqual(['class-mp4']);
  });

  it('the sweep, asking by the meeting id, does not take a later restart for the class', async () => {
    const rec = w.recordings();
    // The class ran 01:00–02:00, but its recording.completed was lost and no meeting event is stored,
    // so the sweep asks by the meeting id: Zoom answers with the latest instance.
    await w.clock.set(new Date('2026-12-01T01:00:00Z'));
    await hostRuns(60);
    // 02:20 the host starts the room again for five minutes, and that instance is recorded.
    await w.clock.set(new Date('2026-12-01T02:20:00Z'));
    await hostRuns(5);
    const lost = w.em.webhooks.drop({ event: 'recording.completed' });
    w.em.addRecording(w.meetingNumber, [file('restart-mp4', 'MP4', 10_000)]);
    lost.remove();

    await w.clock.set(new Date('2026-12-01T02:30:00Z'));
    expect(await rec.sweep()).toEqual({ checked: 1, found: 0, none: 1, errors: 0 });
    expect(w.em.requests().filter((r) => r.path.endsWith('/recordings'))).toHaveLength(1);
    expect(await w.rows()).toEqual([]);
  });
});
