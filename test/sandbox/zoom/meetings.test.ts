import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Harness, PRO, call, createMeeting, meetingBody, meetingShape, requestToken, start } from './helpers.ts';

let h: Harness;
afterEach(async () => h.em.close());

async function setup(options: Parameters<typeof start>[0] = {}): Promise<string> {
  h = await start(options);
  return requestToken(h.em, PRO);
}

describe('Zoom emulator: create and get meetings', () => {
  it('creates a scheduled meeting (201) with the fields Zoom returns', async () => {
    const token = await setup();
    const res = await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody({ agenda: 'booking:1' }));
    expect(res.status).toBe(201);
    const body = meetingShape.extend({ join_url: z.string(), start_url: z.string(), password: z.string() }).parse(res.body);
    expect(Number.isSafeInteger(body.id) && body.id > 9_999_999_999).toBe(true);
    expect(res.body).toMatchObject({
      host_id: 'host-a',
      host_email: 'host-a@example.com',
      topic: 'Class [booking:1]',
      agenda: 'booking:1',
      type: 2,
      status: 'waiting',
      start_time: '2026-03-02T10:00:00Z',
      duration: 60,
      timezone: 'UTC',
      created_at: '2026-03-02T08:00:00Z',
      settings: { join_before_host: true, jbh_time: 5, waiting_room: false, auto_recording: 'none', approval_type: 2 },
    });
    expect(body.join_url.startsWith(`${h.em.url}/j/${body.id}`)).toBe(true);
    expect(res.headers.get('x-ratelimit-category')).toBe('Medium');
    expect(res.headers.get('x-ratelimit-remaining')).toBe('99');
    expect(h.em.meetings()).toHaveLength(1);
    expect(h.em.meeting(body.id)).toMatchObject({ hostId: 'host-a', state: 'waiting', deleted: false, startTime: '2026-03-02T10:00:00.000Z' });
  });

  it('converts a local start_time in the given timezone (and ignores timezone for a Z time)', async () => {
    const token = await setup();
    const tokyo = await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-02T19:00:00', timezone: 'Asia/Tokyo' });
    expect(tokyo.start_time).toBe('2026-03-02T10:00:00Z');
    const zulu = await createMeeting(h.em, token, 'host-b', { start_time: '2026-03-02T19:00:00Z', timezone: 'Asia/Tokyo' });
    expect(zulu.start_time).toBe('2026-03-02T19:00:00Z');
    const la = await createMeeting(h.em, token, 'host-b', { start_time: '2026-07-01T09:00:00', timezone: 'America/Los_Angeles' });
    expect(la.start_time).toBe('2026-07-01T16:00:00Z');
  });

  it('accepts the host email as userId and makes a meeting without start_time an instant one', async () => {
    const token = await setup();
    const m = await createMeeting(h.em, token, 'host-a@example.com', { start_time: undefined });
    expect(m).toMatchObject({ host_id: 'host-a', start_time: '2026-03-02T08:00:00Z' });
    expect(h.em.meeting(m.id)?.type).toBe(1);
  });

  it('turns join_before_host off when the waiting room is on', async () => {
    const token = await setup();
    const res = await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody({ settings: { join_before_host: true, waiting_room: true } }));
    expect(res.body).toMatchObject({ settings: { join_before_host: false, waiting_room: true } });
  });

  it.each([
    ['jbh_time 15', { settings: { join_before_host: true, jbh_time: 15 } }, 'settings.jbh_time'],
    ['topic over 200', { topic: 'x'.repeat(201) }, 'topic'],
    ['agenda over 2000', { agenda: 'x'.repeat(2001) }, 'agenda'],
    ['password over 10', { password: '12345678901' }, 'password'],
    ['password characters', { password: 'abc def' }, 'password'],
    ['auto_recording', { settings: { auto_recording: 'dropbox' } }, 'settings.auto_recording'],
    ['duration', { duration: 'sixty' }, 'duration'],
    ['timezone', { start_time: '2026-03-02T10:00:00', timezone: 'Mars/Olympus' }, 'timezone'],
    ['start_time', { start_time: '2026-03-02 10:00' }, 'start_time'],
    ['start_time date', { start_time: '2026-02-30T10:00:00Z' }, 'start_time'],
  ])('refuses an invalid %s with 400 code 300', async (_name, overrides, field) => {
    const token = await setup();
    const res = await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody(overrides));
    expect(res).toMatchObject({ status: 400, body: { code: 300, message: 'Validation Failed.', errors: [{ field }] } });
    expect(h.em.meetings()).toHaveLength(0);
  });

  it('accepts the edge values Zoom accepts', async () => {
    const token = await setup();
    for (const jbh of [0, 5, 10]) {
      await createMeeting(h.em, token, 'host-a', { topic: 'x'.repeat(200), agenda: 'y'.repeat(2000), password: 'aB9@-_*x', settings: { jbh_time: jbh } });
    }
    expect(h.em.meetings()).toHaveLength(3);
  });

  it('refuses a body that is not JSON, an unknown user and a user without hosting rights', async () => {
    const token = await setup();
    expect(await call(h.em, token, 'POST', '/users/host-a/meetings', '{nope')).toMatchObject({
      status: 400,
      body: { code: 300, message: 'Request Body should be a valid JSON object.' },
    });
    expect(await call(h.em, token, 'POST', '/users/ghost/meetings', meetingBody())).toMatchObject({
      status: 404,
      body: { code: 1001, message: 'User ghost not exist or not belong to this account.' },
    });
    expect(await call(h.em, token, 'POST', '/users/host-off/meetings', meetingBody())).toMatchObject({ status: 400, body: { code: 3161 } });
    expect(await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody({ schedule_for: 'ghost@example.com' }))).toMatchObject({
      status: 400,
      body: { code: 300 },
    });
  });

  it('GET reports waiting, started, and waiting again once ended, and 3001 for unknown or foreign meetings', async () => {
    const token = await setup();
    const m = await createMeeting(h.em, token, 'host-a');
    const status = async (): Promise<unknown> => (await call(h.em, token, 'GET', `/meetings/${m.id}`)).body;
    expect(await status()).toMatchObject({ id: m.id, uuid: m.uuid, status: 'waiting', host_id: 'host-a' });
    expect(h.em.startMeeting(m.id)).toEqual({ started: true, uuid: m.uuid });
    expect(await status()).toMatchObject({ status: 'started' });
    expect(h.em.endMeeting(m.id)).toBe(true);
    expect(await status()).toMatchObject({ status: 'waiting' });
    expect(await call(h.em, token, 'GET', '/meetings/12345678901')).toMatchObject({
      status: 404,
      body: { code: 3001, message: 'Meeting 12345678901 is not found or has expired.' },
    });
    const otherToken = await requestToken(h.em, { ...PRO, accountId: 'acct-biz', clientId: 'biz-client', clientSecret: 'biz-secret' });
    expect(await call(h.em, otherToken, 'GET', `/meetings/${m.id}`)).toMatchObject({ status: 404, body: { code: 3001 } });
  });

  it('gives a restarted meeting a new instance UUID', async () => {
    const token = await setup();
    const m = await createMeeting(h.em, token, 'host-a');
    h.em.startMeeting(m.id);
    h.em.endMeeting(m.id);
    const again = h.em.startMeeting(m.id);
    expect(again.started && again.uuid !== m.uuid).toBe(true);
    expect(h.em.meeting(m.id)?.instances).toHaveLength(2);
  });
});

describe('Zoom emulator: update, end, delete, recordings', () => {
  it('PATCH answers 204, applies the change and keeps other settings', async () => {
    const token = await setup();
    const m = await createMeeting(h.em, token, 'host-a');
    const res = await call(h.em, token, 'PATCH', `/meetings/${m.id}`, { start_time: '2026-03-02T12:00:00Z', settings: { join_before_host: false } });
    expect(res.status).toBe(204);
    expect(res.headers.get('x-ratelimit-remaining')).toBe('98');
    expect(h.em.meeting(m.id)).toMatchObject({ startTime: '2026-03-02T12:00:00.000Z', updates: 1, settings: { join_before_host: false, jbh_time: 5 } });
  });

  it('PATCH refuses a started meeting with 3000 and an unknown one with 3001', async () => {
    const token = await setup();
    const m = await createMeeting(h.em, token, 'host-a');
    h.em.startMeeting(m.id);
    expect(await call(h.em, token, 'PATCH', `/meetings/${m.id}`, { topic: 'new' })).toMatchObject({
      status: 400,
      body: { code: 3000, message: 'You cannot update or delete meetings that have started using this method.' },
    });
    expect(await call(h.em, token, 'PATCH', '/meetings/12345678901', { topic: 'new' })).toMatchObject({ status: 404, body: { code: 3001 } });
  });

  it('ends a live meeting with PUT status (204); ending one that is not live changes nothing', async () => {
    const token = await setup();
    const m = await createMeeting(h.em, token, 'host-a');
    expect((await call(h.em, token, 'PUT', `/meetings/${m.id}/status`, { action: 'end' })).status).toBe(204);
    expect(h.em.meeting(m.id)?.state).toBe('waiting');
    h.em.startMeeting(m.id);
    expect((await call(h.em, token, 'PUT', `/meetings/${m.id}/status`, { action: 'end' })).status).toBe(204);
    expect(h.em.meeting(m.id)?.state).toBe('ended');
    expect(await call(h.em, token, 'PUT', `/meetings/${m.id}/status`, { action: 'stop' })).toMatchObject({ status: 400, body: { code: 300 } });
  });

  it('DELETE: 204, then 3001; 3002 while in progress; ended meetings deletable unless configured to refuse (3007)', async () => {
    const token = await setup();
    const m = await createMeeting(h.em, token, 'host-a');
    h.em.startMeeting(m.id);
    expect(await call(h.em, token, 'DELETE', `/meetings/${m.id}`)).toMatchObject({
      status: 400,
      body: { code: 3002, message: 'Sorry, you cannot delete this meeting since it is in progress.' },
    });
    h.em.endMeeting(m.id);
    expect((await call(h.em, token, 'DELETE', `/meetings/${m.id}`)).status).toBe(204);
    expect(await call(h.em, token, 'DELETE', `/meetings/${m.id}`)).toMatchObject({ status: 404, body: { code: 3001 } });
    expect(await call(h.em, token, 'GET', `/meetings/${m.id}`)).toMatchObject({ status: 404, body: { code: 3001 } });
    expect(h.em.meeting(m.id)).toMatchObject({ deleted: true, state: 'ended' });
    expect(h.em.startMeeting(m.id)).toEqual({ started: false, reason: 'not-found' });
    await h.em.close();

    const strict = await setup({ deleteEndedMeetings: 'reject' });
    const n = await createMeeting(h.em, strict, 'host-a');
    h.em.startMeeting(n.id);
    h.em.endMeeting(n.id);
    expect(await call(h.em, strict, 'DELETE', `/meetings/${n.id}`)).toMatchObject({ status: 400, body: { code: 3007 } });
  });

  it('recovers a deleted meeting with action recover', async () => {
    const token = await setup();
    const m = await createMeeting(h.em, token, 'host-a');
    await call(h.em, token, 'DELETE', `/meetings/${m.id}`);
    expect((await call(h.em, token, 'PUT', `/meetings/${m.id}/status`, { action: 'recover' })).status).toBe(204);
    expect(await call(h.em, token, 'GET', `/meetings/${m.id}`)).toMatchObject({ status: 200 });
  });

  it('recordings: 3301 when there are none; files once added, also by double-encoded UUID', async () => {
    const token = await setup();
    const m = await createMeeting(h.em, token, 'host-a');
    expect(await call(h.em, token, 'GET', `/meetings/${m.id}/recordings`)).toMatchObject({
      status: 404,
      body: { code: 3301, message: 'There is no recording for this meeting.' },
    });
    h.em.startMeeting(m.id);
    await h.clock.advance(30 * 60_000);
    h.em.endMeeting(m.id);
    expect(h.em.addRecording(m.id)).toBe(true);
    const res = await call(h.em, token, 'GET', `/meetings/${m.id}/recordings`);
    expect(res).toMatchObject({ status: 200, body: { id: m.id, recording_count: 2, duration: 30, recording_files: [{ file_type: 'MP4' }, { file_type: 'M4A' }] } });
    const byUuid = await call(h.em, token, 'GET', `/meetings/${encodeURIComponent(encodeURIComponent(m.uuid))}/recordings`);
    expect(byUuid).toMatchObject({ status: 200, body: { id: m.id } });
  });
});

describe('Zoom emulator: listing a user’s meetings', () => {
  const page = z.object({
    page_size: z.number(),
    total_records: z.number(),
    next_page_token: z.string(),
    meetings: z.array(z.object({ id: z.number(), start_time: z.string(), topic: z.string() })),
  });

  it('pages through scheduled meetings with next_page_token, in start-time order', async () => {
    const token = await setup();
    const created: number[] = [];
    for (let i = 6; i >= 0; i--) {
      created.push((await createMeeting(h.em, token, 'host-a', { start_time: `2026-03-0${3 + i}T10:00:00Z`, topic: `c${i}` })).id);
    }
    await createMeeting(h.em, token, 'host-b');
    const seen: string[] = [];
    let next = '';
    let pages = 0;
    do {
      const res = await call(h.em, token, 'GET', `/users/host-a/meetings?type=scheduled&page_size=3${next ? `&next_page_token=${next}` : ''}`);
      const body = page.parse(res.body);
      expect(body.total_records).toBe(7);
      seen.push(...body.meetings.map((m) => m.topic));
      next = body.next_page_token;
      pages++;
    } while (next);
    expect(pages).toBe(3);
    expect(seen).toEqual(['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6']);
  });

  it('serves at most 300 per page and refuses a page token after 15 minutes', async () => {
    const token = await setup();
    for (let i = 0; i < 3; i++) await createMeeting(h.em, token, 'host-a', { start_time: `2026-03-0${3 + i}T10:00:00Z` });
    const big = page.parse((await call(h.em, token, 'GET', '/users/host-a/meetings?page_size=1000')).body);
    expect(big.page_size).toBe(300);
    const first = page.parse((await call(h.em, token, 'GET', '/users/host-a/meetings?page_size=1')).body);
    await h.clock.advance(15 * 60_000);
    expect(await call(h.em, token, 'GET', `/users/host-a/meetings?page_size=1&next_page_token=${first.next_page_token}`)).toMatchObject({
      status: 400,
      body: { code: 300 },
    });
  });

  it('upcoming leaves out past and deleted meetings; scheduled keeps unexpired past ones', async () => {
    const token = await setup();
    const past = await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-01T10:00:00Z' });
    const future = await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-05T10:00:00Z' });
    const gone = await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-06T10:00:00Z' });
    await call(h.em, token, 'DELETE', `/meetings/${gone.id}`);
    let current = token;
    const ids = async (type: string): Promise<number[]> =>
      page.parse((await call(h.em, current, 'GET', `/users/host-a/meetings?type=${type}`)).body).meetings.map((m) => m.id);
    expect(await ids('upcoming')).toEqual([future.id]);
    expect(await ids('scheduled')).toEqual([past.id, future.id]);
    expect(await ids('previous_meetings')).toEqual([past.id]);
    h.em.startMeeting(future.id);
    expect(await ids('live')).toEqual([future.id]);
    await h.clock.advance(31 * 86_400_000);
    h.em.endMeeting(future.id);
    current = await requestToken(h.em, PRO);
    expect(await ids('scheduled')).toEqual([future.id]); // the past one expired after 30 days
    expect(await call(h.em, current, 'GET', '/users/ghost/meetings')).toMatchObject({ status: 404, body: { code: 1001 } });
  });
});
