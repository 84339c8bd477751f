import { afterEach, describe, expect, it } from 'vitest';
import { FREE, type Harness, PRO, call, createMeeting, meetingBody, requestToken, start } from './helpers.ts';

let h: Harness;
afterEach(async () => h.em.close());

const HOST_LIMIT_MESSAGE =
  'You have exceeded the daily rate limit (100) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00.';

describe('Zoom emulator: per-host daily create/update limit', () => {
  it('allows 100 creates+updates per host per UTC day, then answers Zoom’s 429 until 00:00 UTC', async () => {
    h = await start({ rateLimits: false }); // isolate the per-host limit from QPS
    const token = await requestToken(h.em, PRO);
    const first = await createMeeting(h.em, token, 'host-a');
    expect((await call(h.em, token, 'PATCH', `/meetings/${first.id}`, { topic: 'renamed' })).status).toBe(204);
    for (let i = 2; i < 100; i++) await createMeeting(h.em, token, 'host-a', { start_time: `2026-04-01T${String(i % 24).padStart(2, '0')}:00:00Z` });
    expect(h.em.counters().hostDaily).toEqual([{ hostId: 'host-a', accountId: 'acct-pro', day: '2026-03-02', used: 100, limit: 100 }]);

    const refused = await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody());
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({ code: 429, message: HOST_LIMIT_MESSAGE });
    expect(refused.headers.get('x-ratelimit-type')).toBe('Daily-limit');
    expect(refused.headers.get('x-ratelimit-category')).toBe('Medium');
    expect(refused.headers.get('x-ratelimit-limit')).toBe('100');
    expect(refused.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(refused.headers.get('retry-after')).toBe('2026-03-03T00:00:00Z');
    expect(await call(h.em, token, 'PATCH', `/meetings/${first.id}`, { topic: 'again' })).toMatchObject({ status: 429, body: { message: HOST_LIMIT_MESSAGE } });
    expect(h.em.meetings()).toHaveLength(99);

    // Another host of the same account has its own budget; reads are not limited by it.
    await createMeeting(h.em, token, 'host-b');
    expect((await call(h.em, token, 'GET', `/meetings/${first.id}`)).status).toBe(200);

    await h.clock.set(new Date('2026-03-02T23:59:59Z'));
    const late = await requestToken(h.em, PRO);
    expect((await call(h.em, late, 'POST', '/users/host-a/meetings', meetingBody())).status).toBe(429);
    await h.clock.set(new Date('2026-03-03T00:00:00Z'));
    expect((await call(h.em, late, 'POST', '/users/host-a/meetings', meetingBody())).status).toBe(201);
    expect(h.em.counters().rejected.hostDaily).toBe(3);
  });

  it('honours a smaller configured limit, counts only accepted writes, and can answer HTTP 300 as SPEC documents', async () => {
    h = await start({ dailyMeetingWriteLimit: 2, rateLimits: { hostDailyStatus: 300 } });
    const token = await requestToken(h.em, PRO);
    expect((await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody({ topic: 'x'.repeat(300) }))).status).toBe(400);
    await createMeeting(h.em, token, 'host-a');
    await createMeeting(h.em, token, 'host-a');
    expect(await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody())).toMatchObject({
      status: 300,
      body: { code: 300, message: 'A maximum of 2 meetings can be created/updated for a single user in one day.' },
    });
  });
});

describe('Zoom emulator: per-account rate limits', () => {
  it('limits Medium calls of a Pro account to 20 per second, with the QPS 429 and headers', async () => {
    h = await start();
    const token = await requestToken(h.em, PRO);
    for (let i = 0; i < 20; i++) expect((await call(h.em, token, 'GET', '/users/host-a/meetings')).status).toBe(200);
    const refused = await call(h.em, token, 'GET', '/users/host-a/meetings');
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({ code: 429, message: 'You have reached the maximum per-second rate limit for this API. Try again later.' });
    expect(refused.headers.get('x-ratelimit-type')).toBe('QPS');
    expect(refused.headers.get('x-ratelimit-category')).toBe('Medium');
    expect(refused.headers.get('x-ratelimit-limit')).toBe('20');
    expect(refused.headers.get('x-ratelimit-reset')).toBe(String(Date.parse('2026-03-02T08:00:01Z') / 1000));
    // Light is counted separately, and so is every other account.
    expect((await call(h.em, token, 'GET', '/users/host-a')).status).toBe(200);
    const free = await requestToken(h.em, FREE);
    expect((await call(h.em, free, 'GET', '/users/basic-1/meetings')).status).toBe(200);
    await h.clock.advance(1000);
    expect((await call(h.em, token, 'GET', '/users/host-a/meetings')).status).toBe(200);
    expect(h.em.counters().rejected.qps).toBe(1);
  });

  it('uses the Free tier for a basic-plan account: Medium 2/s', async () => {
    h = await start();
    const token = await requestToken(h.em, FREE);
    await createMeeting(h.em, token, 'basic-1', { duration: 30 });
    expect((await call(h.em, token, 'GET', '/users/basic-1/meetings')).status).toBe(200);
    expect(await call(h.em, token, 'POST', '/users/basic-1/meetings', meetingBody({ duration: 30 }))).toMatchObject({ status: 429, body: { code: 429 } });
    expect(h.em.meetings()).toHaveLength(1);
  });

  it('enforces a Free account’s daily Medium cap until 00:00 UTC (cap lowered for speed)', async () => {
    h = await start({ accounts: [{ ...FREE, rateLimits: { daily: { Medium: 3 } } }] });
    const token = await requestToken(h.em, FREE);
    for (let i = 0; i < 3; i++) {
      expect((await call(h.em, token, 'GET', '/users/basic-1/meetings')).status).toBe(200);
      await h.clock.advance(1000);
    }
    const refused = await call(h.em, token, 'GET', '/users/basic-1/meetings');
    expect(refused).toMatchObject({ status: 429, body: { code: 429, message: expect.stringContaining('maximum daily rate limit for this API') } });
    expect(refused.headers.get('x-ratelimit-type')).toBe('Daily-limit');
    expect(refused.headers.get('x-ratelimit-limit')).toBe('3');
    expect(refused.headers.get('retry-after')).toBe('2026-03-03T00:00:00Z');
    expect((await call(h.em, token, 'GET', '/users/basic-1')).status).toBe(200); // Light has its own cap
    await h.clock.set(new Date('2026-03-03T00:00:00Z'));
    const fresh = await requestToken(h.em, FREE);
    expect((await call(h.em, fresh, 'GET', '/users/basic-1/meetings')).status).toBe(200);
  });

  it('can be switched off', async () => {
    h = await start({ rateLimits: false });
    const token = await requestToken(h.em, FREE);
    for (let i = 0; i < 10; i++) expect((await call(h.em, token, 'GET', '/users/basic-1/meetings')).status).toBe(200);
  });
});
