import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { storageKeyFor } from '../../src/recordings/parse.ts';
import { dialects } from '../support/databases.ts';
import { file, openRecordingWorld, replayApp, type RecordingWorld } from './world.ts';

describe.each(dialects)('recording downloads (%s)', (dialect) => {
  let w: RecordingWorld;
  beforeEach(async () => {
    w = await openRecordingWorld(dialect);
  });
  afterEach(() => w.close());

  const fileSteps = (fileId: string) => w.em.downloads.requests().filter((r) => r.fileId === fileId && r.step === 'file');

  it('downloads each file once through the 302, verifies it, and tells the lead about the MP4', async () => {
    const rec = w.recordings();
    const event = await w.record();
    expect(await rec.ingest(event)).toBe('recordings: 2 new, 0 refreshed, 0 already stored');
    const report = await rec.runOnce();
    expect(report).toEqual({ claimed: 2, outcomes: { stored: 2 } });

    const rows = await w.rows();
    for (const row of rows) {
      const served = w.em.recordingFile(row.fileId);
      expect(row).toMatchObject({ state: 'stored', checksumSha256: served?.sha256, contentType: served?.contentType, bytesStored: served?.bytes.length, lastError: null, attempts: 1 });
      expect(await readFile(join(w.dir, row.storageKey ?? ''))).toEqual(served?.bytes);
      const steps = w.em.downloads.requests().filter((r) => r.fileId === row.fileId);
      expect(steps.map((s) => [s.step, s.status, s.auth])).toEqual([['download', 302, 'bearer'], ['file', 200, 'none']]);
    }
    const mp4 = rows.find((r) => r.fileType === 'MP4');
    expect(w.stored).toEqual([{ id: mp4?.id, scheduleId: w.scheduleId, fileType: 'MP4' }]);

    // A redelivered webhook changes nothing; nothing is downloaded twice.
    expect(await rec.ingest(event)).toBe('recordings: 0 new, 0 refreshed, 2 already stored');
    expect(await rec.runOnce()).toEqual({ claimed: 0, outcomes: {} });
    expect(await rec.ingest({ ...event, object: { ...(event.object as object), id: 999 } })).toBe('ignored: not our meeting');
  });

  it('keeps nothing of a class ended early as empty', async () => {
    const rec = w.recordings();
    const event = await w.record([file('empty-room', 'MP4', 10_000)]);
    await w.database.db.updateTable('schedules').set({ meeting_state: 'ended_empty' }).where('id', '=', w.scheduleId).execute();
    expect(await rec.ingest(event)).toBe('ignored: the class was ended early as empty');
    expect(await w.rows()).toEqual([]);
  });

  it('resumes a truncated download with Range and re-hashes what it had', async () => {
    const rec = w.recordings();
    const event = await w.record([file('mp4-trunc', 'MP4', 300_000)]);
    await rec.ingest(event);
    w.em.downloads.add({ fileId: 'mp4-trunc', kind: 'truncate', afterBytes: 120_000 });
    expect(await rec.runOnce()).toEqual({ claimed: 1, outcomes: { retry: 1 } });
    const [row] = await w.rows();
    expect(row?.state).toBe('pending');
    expect(row?.bytesStored).toBe(120_000);
    expect(row?.lastError).toMatch(/interrupted after 120000 of 300000 bytes/);

    expect(await rec.runOnce()).toEqual({ claimed: 0, outcomes: {} }); // backoff: 1 min
    await w.clock.advance(60_000);
    expect(await rec.runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    const [done] = await w.rows();
    expect(done?.checksumSha256).toBe(w.em.recordingFile('mp4-trunc')?.sha256);
    expect(fileSteps('mp4-trunc').map((s) => [s.range, s.status])).toEqual([[null, 200], ['bytes=120000-', 206]]);
  });

  it('takes over a file whose worker died mid-download (expired lease) and resumes its partial', async () => {
    const rec = w.recordings();
    await rec.ingest(await w.record([file('mp4-crash', 'MP4', 200_000)]));
    w.em.downloads.add({ fileId: 'mp4-crash', kind: 'truncate', afterBytes: 50_000 });
    await rec.runOnce();
    // As if a worker had claimed it again and died: state downloading, lease running out.
    const lease = new Date(w.clock.now().getTime() + 120_000);
    await w.database.db.updateTable('recordings').set({ state: 'downloading', lease_owner: 'dead-host#1', lease_expires_at: lease, available_at: w.clock.now() }).execute();
    expect((await rec.runOnce()).claimed).toBe(0); // its lease still holds
    await w.clock.set(new Date(lease.getTime() + 1));
    expect(await rec.runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    expect((await w.rows())[0]).toMatchObject({ state: 'stored', attempts: 2, checksumSha256: w.em.recordingFile('mp4-crash')?.sha256 });
    expect(fileSteps('mp4-crash').map((r) => r.range)).toEqual([null, 'bytes=50000-']);
  });

  it('fails on an HTML page with Zoom\'s words, then succeeds', async () => {
    const rec = w.recordings();
    const event = await w.record([file('mp4-html', 'MP4', 50_000)]);
    await rec.ingest({ ...event, downloadToken: null }); // only the S2S token
    w.em.downloads.add({ kind: 'html', times: 1 });
    expect(await rec.runOnce()).toEqual({ claimed: 1, outcomes: { retry: 1 } });
    const [row] = await w.rows();
    expect(row?.lastError).toMatch(/^Zoom refused the download: Bearer token: an HTML page \(status 200\) instead of the file: ".*Only the host can download this recording/);
    const [partial] = await rec.store.partialsOf(storageKeyFor(String(w.meetingNumber), 'mp4-html', 'MP4', 'MP4'));
    expect(partial === undefined || (await rec.store.partialSize(partial)) === 0).toBe(true); // the page was not saved
    await w.clock.advance(60_000);
    expect(await rec.runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
  });

  it('falls back to the webhook download_token when the Bearer token is refused', async () => {
    const rec = w.recordings();
    await rec.ingest(await w.record([file('mp4-fallback', 'MP4', 10_000)]));
    w.em.downloads.add({ kind: 'html', times: 1 });
    expect(await rec.runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    const auths = w.em.downloads.requests().filter((r) => r.step === 'download').map((r) => [r.auth, r.status]);
    expect(auths).toEqual([['bearer', 200], ['query', 302]]);
  });

  it('retries with backoff, then gives up with the reason', async () => {
    const rec = w.recordings();
    await rec.ingest(await w.record([file('mp4-500', 'MP4', 10_000)]));
    w.em.downloads.add({ kind: 'status', status: 500, times: 10 });
    const t0 = w.clock.now().getTime();
    expect((await rec.runOnce()).outcomes).toEqual({ retry: 1 });
    expect((await w.rows())[0]?.availableAt?.getTime()).toBe(t0 + 60_000); // base·2⁰ (random = 1)
    await w.clock.advance(60_000);
    expect((await rec.runOnce()).outcomes).toEqual({ retry: 1 });
    expect((await w.rows())[0]?.availableAt?.getTime()).toBe(t0 + 60_000 + 120_000); // base·2¹
    await w.clock.advance(119_999);
    expect((await rec.runOnce()).claimed).toBe(0);
    await w.clock.advance(1);
    expect((await rec.runOnce()).outcomes).toEqual({ failed: 1 });
    const [row] = await w.rows();
    expect(row).toMatchObject({ state: 'failed', attempts: 3, lastError: 'gave up after 3 attempts: download answered HTTP 500', availableAt: null });
  });

  it('a failed recording is sent back to be downloaded by an operator (admin API), and only a failed one', async () => {
    const rec = w.recordings();
    await rec.ingest(await w.record([file('mp4-again', 'MP4', 10_000)]));
    w.em.downloads.add({ kind: 'status', status: 500, times: 3 });
    for (let i = 0; i < 3; i++) {
      await rec.runOnce();
      await w.clock.advance(10 * 60_000);
    }
    const [failed] = await w.rows();
    expect(failed).toMatchObject({ state: 'failed', attempts: 3 });
    const app = await replayApp(w, rec.store);
    const retry = (id: number) => app.inject({ method: 'POST', url: `/api/recordings/${id}/retry`, headers: { authorization: 'Bearer admin' } });
    const sent = await retry(failed?.id ?? 0);
    expect([sent.statusCode, sent.json()]).toEqual([202, { id: failed?.id, state: 'pending' }]);
    expect(await rec.runOnce()).toEqual({ claimed: 1, outcomes: { stored: 1 } });
    const again = await retry(failed?.id ?? 0);
    expect([again.statusCode, again.json().message]).toEqual([409, expect.stringMatching(/is stored: only a failed recording/)]);
    expect((await retry(999_999)).statusCode).toBe(404);
    await app.close();
  });

  it('never downloads one file twice with two workers at once', async () => {
    const a = w.recordings({ owner: 'worker-a' });
    const b = w.recordings({ owner: 'worker-b' });
    const files = [1, 2, 3, 4, 5, 6].map((n) => file(`f${n}`, n % 2 ? 'MP4' : 'M4A', 40_000 + n));
    await a.ingest(await w.record(files));
    const reports = await Promise.all([a.runOnce(), b.runOnce(), a.runOnce(), b.runOnce()]);
    expect(reports.reduce((n, r) => n + r.claimed, 0)).toBe(6);
    // Whatever the split, every file is fetched once and stored once.
    while ((await w.rows()).some((r) => r.state !== 'stored')) await Promise.all([a.runOnce(), b.runOnce()]);
    for (const f of files) expect(fileSteps(f.id)).toHaveLength(1);
    // onStored is at least once: two MP4s stored at the same moment by two workers may both announce.
    expect(w.stored.length).toBeGreaterThanOrEqual(1);
    expect(new Set(w.stored.map((s) => `${s.scheduleId}:${s.fileType}`))).toEqual(new Set([`${w.scheduleId}:MP4`]));
  });
});
