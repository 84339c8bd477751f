import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ZoomEmulatorOptions } from '../../../src/sandbox/zoom/index.ts';
import { FREE, type Harness, PRO, call, createMeeting, requestToken, start } from './helpers.ts';
import { type Receiver, SECRET, startReceiver } from './receiver.ts';

let h: Harness;
let rx: Receiver;
afterEach(async () => {
  await h.em.close();
  await rx.close();
});

const recordingShape = z.object({ recording_files: z.array(z.object({ id: z.string(), file_type: z.string(), file_size: z.number(), download_url: z.string() })) });

async function setup(options: ZoomEmulatorOptions = {}): Promise<{ token: string; meetingId: number }> {
  h = await start(options);
  rx = await startReceiver();
  h.em.webhooks.subscribe({ accountId: PRO.accountId, url: rx.url, secretToken: SECRET, events: ['recording.completed'] });
  const token = await requestToken(h.em, PRO);
  const m = await createMeeting(h.em, token, 'host-a', { settings: { auto_recording: 'cloud', join_before_host: true } });
  return { token, meetingId: m.id };
}

async function recorded(token: string, meetingId: number): Promise<z.infer<typeof recordingShape>['recording_files']> {
  h.em.addRecording(meetingId);
  const res = await call(h.em, token, 'GET', `/meetings/${meetingId}/recordings`);
  return recordingShape.parse(res.body).recording_files;
}

const get = (url: string, headers: Record<string, string> = {}): Promise<Response> => fetch(url, { headers, redirect: 'manual' });

describe('Zoom emulator: recording downloads', () => {
  it('redirects an authorised download (302) to the file: deterministic bytes, type, length, ranges', async () => {
    const { token, meetingId } = await setup();
    const [mp4, m4a] = await recorded(token, meetingId);
    if (!mp4 || !m4a) throw new Error('no files');
    const first = await get(mp4.download_url, { Authorization: `Bearer ${token}` });
    expect(first.status).toBe(302);
    const location = first.headers.get('location') ?? '';
    expect(location.startsWith(`${h.em.url}/rec/file/${mp4.id}?`)).toBe(true);

    const file = h.em.recordingFile(mp4.id);
    if (!file) throw new Error('no file');
    expect(file.bytes.length).toBe(307_200);
    expect(file.sha256).toBe(createHash('sha256').update(file.bytes).digest('hex'));
    expect(h.em.recordingFile(mp4.id)?.sha256).toBe(file.sha256);

    const full = await fetch(mp4.download_url, { headers: { Authorization: `Bearer ${token}` } });
    expect(full.status).toBe(200);
    expect(full.headers.get('content-type')).toBe('video/mp4');
    expect(full.headers.get('content-length')).toBe('307200');
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    expect(Buffer.from(await full.arrayBuffer()).equals(file.bytes)).toBe(true);

    const partial = await get(location, { Range: 'bytes=300000-' });
    expect(partial.status).toBe(206);
    expect(partial.headers.get('content-range')).toBe('bytes 300000-307199/307200');
    expect(Buffer.from(await partial.arrayBuffer()).equals(file.bytes.subarray(300_000))).toBe(true);
    expect((await get(location, { Range: 'bytes=400000-' })).status).toBe(416);

    const audio = await fetch(m4a.download_url, { headers: { Authorization: `Bearer ${token}` } });
    expect(audio.headers.get('content-type')).toBe('audio/mp4');
    expect((await audio.arrayBuffer()).byteLength).toBe(102_400);
    expect(h.em.recordingFile('nope')).toBeUndefined();
    expect(h.em.downloads.requests().slice(0, 4)).toEqual([
      { fileId: mp4.id, range: null, status: 302, at: '2026-03-02T08:00:00.000Z', auth: 'bearer', step: 'download' },
      { fileId: mp4.id, range: null, status: 302, at: '2026-03-02T08:00:00.000Z', auth: 'bearer', step: 'download' },
      { fileId: mp4.id, range: null, status: 200, at: '2026-03-02T08:00:00.000Z', auth: 'none', step: 'file' },
      { fileId: mp4.id, range: 'bytes=300000-', status: 206, at: '2026-03-02T08:00:00.000Z', auth: 'none', step: 'file' },
    ]);
  });

  it("answers bad or missing auth with Zoom's 200 HTML page", async () => {
    const { token, meetingId } = await setup();
    const [mp4] = await recorded(token, meetingId);
    if (!mp4) throw new Error('no file');
    const foreign = await requestToken(h.em, FREE);
    for (const res of [await get(mp4.download_url), await get(mp4.download_url, { Authorization: 'Bearer nope' }), await get(mp4.download_url, { Authorization: `Bearer ${foreign}` }), await get(`${mp4.download_url}?access_token=nope`)]) {
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await res.text()).toContain('Only the host can download this recording');
    }
    expect(h.em.downloads.requests().map((r) => r.auth)).toEqual(['none', 'bearer', 'bearer', 'query']);
    expect((await get(`${mp4.download_url}?access_token=${token}`)).status).toBe(302);
    const location = (await get(mp4.download_url, { Authorization: `Bearer ${token}` })).headers.get('location') ?? '';
    expect((await get(location.replace(/sig=[0-9a-f]+/, 'sig=00'))).status).toBe(403);
  });

  it("accepts the webhook's download_token for 24 hours on the emulator clock", async () => {
    const { token, meetingId } = await setup();
    const [mp4] = await recorded(token, meetingId);
    await h.em.webhooks.settle();
    const downloadToken = rx.received[0]?.json.download_token;
    if (!mp4 || !downloadToken) throw new Error('no recording.completed');
    expect((await get(`${mp4.download_url}?access_token=${downloadToken}`)).status).toBe(302);
    await h.clock.advance(24 * 3_600_000);
    const late = await get(`${mp4.download_url}?access_token=${downloadToken}`);
    expect(late.status).toBe(200);
    expect(late.headers.get('content-type')).toMatch(/^text\/html/);
  });

  it('injects download faults: error status, the HTML page, a truncated body', async () => {
    const { token, meetingId } = await setup();
    const [mp4, m4a] = await recorded(token, meetingId);
    if (!mp4 || !m4a) throw new Error('no files');
    const auth = { Authorization: `Bearer ${token}` };
    h.em.downloads.add({ kind: 'status', status: 500, fileId: mp4.id });
    h.em.downloads.add({ kind: 'html', fileId: mp4.id });
    h.em.downloads.add({ kind: 'truncate', afterBytes: 1000, fileId: m4a.id });
    expect((await get(mp4.download_url, auth)).status).toBe(500);
    const page = await get(mp4.download_url, auth);
    expect([page.status, page.headers.get('content-type')]).toEqual([200, 'text/html;charset=utf-8']);
    expect((await get(mp4.download_url, auth)).status).toBe(302);

    const cut = await fetch(m4a.download_url, { headers: auth });
    expect(cut.status).toBe(200);
    expect(cut.headers.get('content-length')).toBe('102400');
    await expect(cut.arrayBuffer()).rejects.toThrow();
    const whole = await fetch(m4a.download_url, { headers: auth });
    expect((await whole.arrayBuffer()).byteLength).toBe(102_400);
    expect(h.em.downloads.requests().map((r) => [r.step, r.status])).toEqual([
      ['download', 500],
      ['download', 200],
      ['download', 302],
      ['download', 302],
      ['file', 200],
      ['download', 302],
      ['file', 200],
    ]);
  });

  it('records a cloud-recording meeting on its own when it ends after attendance (after recordingDelayMs)', async () => {
    const { token, meetingId } = await setup({ recordingDelayMs: 10 * 60_000 });
    h.em.startMeeting(meetingId);
    h.em.endMeeting(meetingId); // nobody attended: no recording
    const ann = h.em.join(meetingId, { name: 'Ann' });
    await h.clock.advance(20 * 60_000);
    h.em.leave(meetingId, ann);
    await h.clock.advance(10 * 60_000 - 1);
    expect((await call(h.em, token, 'GET', `/meetings/${meetingId}/recordings`)).status).toBe(404);
    await h.clock.advance(1);
    await h.em.webhooks.settle();
    expect(rx.events()).toEqual(['recording.completed']);
    expect(rx.received[0]?.json.payload.object).toMatchObject({ id: meetingId, duration: 20, recording_count: 2 });
    expect((await call(h.em, token, 'GET', `/meetings/${meetingId}/recordings`)).status).toBe(200);

    // No auto recording without cloud recording on the meeting.
    const plain = await createMeeting(h.em, token, 'host-b');
    h.em.leave(plain.id, h.em.join(plain.id, { name: 'Bob' }));
    await h.clock.advance(3_600_000);
    await h.em.webhooks.settle();
    expect(rx.events()).toEqual(['recording.completed']);
  });
});
