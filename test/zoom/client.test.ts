import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { virtualClock, type VirtualClock } from '../../src/clock.ts';
import { startZoomEmulator, type ZoomEmulator } from '../../src/sandbox/zoom/index.ts';
import { createZoomClient, type CreateMeetingBody, type ZoomClient } from '../../src/zoom/client.ts';
import { ZoomError } from '../../src/zoom/errors.ts';

const creds = { accountId: 'acc', clientId: 'cid', clientSecret: 'secret' };
const body: CreateMeetingBody = {
  topic: 'Class',
  type: 2,
  start_time: '2026-12-01T10:00:00Z',
  duration: 60,
  timezone: 'UTC',
  agenda: '[scheduler:x]',
  settings: { join_before_host: true, jbh_time: 10, waiting_room: false, auto_recording: 'none', approval_type: 2, meeting_authentication: false },
};

describe('Zoom client against the emulator', () => {
  let clock: VirtualClock;
  let em: ZoomEmulator;
  let client: ZoomClient;
  let counted: string[];
  beforeEach(async () => {
    clock = virtualClock('2026-12-01T00:00:00Z');
    // Per-second limits need time to pass; they have their own test below.
    em = await startZoomEmulator({ clock, createLatencyMs: 0, tokenTtlSeconds: 3600, rateLimits: false, dailyMeetingWriteLimit: Infinity, accounts: [{ ...creds, plan: 'pro', users: [{ id: 'host', email: 'host@example.com' }] }] });
    counted = [];
    client = createZoomClient({
      clock,
      settings: () => ({ apiBaseUrl: em.apiBaseUrl, oauthUrl: em.oauthUrl, timeoutMs: 15_000, attempts: 4, backoff: { baseDelayMs: 0, maxDelayMs: 0 } }),
      onRequest: (account, category) => {
        counted.push(`${account}/${category}`);
      },
    });
  });
  afterEach(async () => {
    await em.close();
  });

  it('shares one token request among concurrent callers, and refreshes once after a 401', async () => {
    const meeting = await client.createMeeting(creds, 'host', body);
    await Promise.all(Array.from({ length: 20 }, () => client.getMeeting(creds, meeting.id)));
    expect(em.tokenRequests('acc')).toBe(1);
    em.expireTokens('acc');
    await Promise.all(Array.from({ length: 20 }, () => client.getMeeting(creds, meeting.id)));
    expect(em.tokenRequests('acc')).toBe(2);
    expect(counted.filter((c) => c === 'acc/light').length).toBeGreaterThanOrEqual(40);
    expect(counted[0]).toBe('acc/medium');
  });

  it('fetches a new token a minute before the old one expires', async () => {
    const meeting = await client.createMeeting(creds, 'host', body);
    await clock.advance(3_600_000 - 61_000);
    await client.getMeeting(creds, meeting.id);
    expect(em.tokenRequests('acc')).toBe(1);
    await clock.advance(2_000);
    await client.getMeeting(creds, meeting.id);
    expect(em.tokenRequests('acc')).toBe(2);
  });

  it('retries 5xx and per-second 429s on idempotent calls, keeping the same outcome', async () => {
    const meeting = await client.createMeeting(creds, 'host', body);
    em.faults.add({ method: 'GET', path: /\/meetings\/\d+$/, times: 2, fault: { status: 503 } });
    em.faults.add({ method: 'GET', path: /\/meetings\/\d+$/, times: 1, fault: { status: 429, body: { code: 429, message: 'You have reached the maximum per-second rate limit for this API. Try again later.' } } });
    const got = await client.getMeeting(creds, meeting.id);
    expect(got.id).toBe(meeting.id);
    expect(em.requests().filter((r) => r.method === 'GET' && /\/meetings\/\d+$/.test(r.path))).toHaveLength(4);
  });

  it("waits the Retry-After a 429 names before trying again, on the injected clock", async () => {
    // No jitter of its own (base 0), and a server's wait honoured up to 4 × maxDelay.
    const patient = createZoomClient({ clock, settings: () => ({ apiBaseUrl: em.apiBaseUrl, oauthUrl: em.oauthUrl, timeoutMs: 15_000, attempts: 4, backoff: { baseDelayMs: 0, maxDelayMs: 1_000 } }) });
    const meeting = await patient.createMeeting(creds, 'host', body);
    em.faults.add({ method: 'GET', path: /\/meetings\/\d+$/, times: 1, fault: { status: 429, body: { code: 429, message: 'You have reached the maximum per-second rate limit for this API. Try again later.' }, headers: { 'Retry-After': '2' } } });
    const gets = () => em.requests().filter((r) => r.method === 'GET' && /\/meetings\/\d+$/.test(r.path));
    const pending = patient.getMeeting(creds, meeting.id);
    while (gets().length === 0 || gets()[0]?.outcome === 'pending') await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    expect(gets()).toHaveLength(1);
    await clock.advance(1_999);
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    expect(gets()).toHaveLength(1);
    await clock.advance(1);
    expect((await pending).id).toBe(meeting.id);
    expect(gets().map((r) => [r.status, Date.parse(r.at) - Date.parse('2026-12-01T00:00:00Z')])).toEqual([[429, 0], [200, 2_000]]);
  });

  it('does not repeat a create after a 5xx: the outcome is ambiguous', async () => {
    em.faults.add({ method: 'POST', path: /\/meetings$/, fault: { kind: 'after-commit-error', status: 502 } });
    const error = await client.createMeeting(creds, 'host', body).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ZoomError);
    expect((error as ZoomError).kind).toBe('ambiguous');
    expect(em.requests().filter((r) => r.method === 'POST' && r.path.endsWith('/meetings'))).toHaveLength(1);
    expect(em.meetings()).toHaveLength(1);
  });

  it("keeps Zoom's code and message as the reason of a final error", async () => {
    const error = (await client.getMeeting(creds, '123456789').catch((e: unknown) => e)) as ZoomError;
    expect(error.kind).toBe('final');
    expect(error.status).toBe(404);
    expect(error.code).toBe(3001);
    expect(error.message).toMatch(/Zoom answered 404 code 3001/);
    const bad = (await client.createMeeting({ ...creds, clientSecret: 'wrong' }, 'host', body).catch((e: unknown) => e)) as ZoomError;
    expect(bad.kind).toBe('auth');
  });

  it('times out a call on the injected clock and retries it when that is safe', async () => {
    const meeting = await client.createMeeting(creds, 'host', body);
    const fault = em.faults.add({ method: 'GET', path: /\/meetings\/\d+$/, fault: { kind: 'timeout' } });
    const pending = client.getMeeting(creds, meeting.id);
    await fault.triggered;
    await clock.advance(15_000);
    expect((await pending).id).toBe(meeting.id);
  });

  it('waits out a per-second 429 until the reset the server names', async () => {
    const limited = await startZoomEmulator({ clock, createLatencyMs: 0, rateLimits: true, accounts: [{ accountId: 'acc2', clientId: 'c2', clientSecret: 's2', plan: 'basic', users: [{ id: 'h2', email: 'h2@example.com' }] }] });
    try {
      const c2 = { accountId: 'acc2', clientId: 'c2', clientSecret: 's2' };
      const slow = createZoomClient({ clock, settings: () => ({ apiBaseUrl: limited.apiBaseUrl, oauthUrl: limited.oauthUrl, timeoutMs: 15_000, attempts: 4, backoff: { baseDelayMs: 100, maxDelayMs: 2_000 } }) });
      // Free accounts allow 2 medium requests per second: the third waits for the next second.
      await slow.getMeeting(c2, '1').catch(() => undefined); // warm the token
      const calls = [0, 1, 2].map((i) => slow.createMeeting(c2, 'h2', { ...body, agenda: `[scheduler:r${i}]` }));
      const creates = () => limited.requests().filter((r) => r.method === 'POST' && r.path.endsWith('/meetings'));
      const settle = async () => {
        for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
      };
      // Yield to I/O (not to time) until all three reached the emulator and one was refused.
      while (!limited.requests().some((r) => r.status === 429)) await new Promise((r) => setImmediate(r));
      const refusedAt = Date.parse(creates().find((r) => r.status === 429)?.at ?? '');
      // It names the next second as its reset (X-RateLimit-Reset); the backoff alone would be under 100 ms.
      await settle();
      expect(creates()).toHaveLength(3);
      await clock.advance(999);
      await settle();
      expect(creates()).toHaveLength(3);
      await clock.advance(1);
      await Promise.all(calls);
      expect(limited.meetings()).toHaveLength(3);
      const retried = creates()[3];
      expect(retried?.status).toBe(201);
      expect(Date.parse(retried?.at ?? '') - refusedAt).toBe(1000);
    } finally {
      await limited.close();
    }
  });

  it('retries a token request Zoom answers with a 5xx, as it retries any call', async () => {
    em.faults.add({ method: 'POST', path: '/oauth/token', fault: { status: 503 } });
    const meeting = await client.createMeeting(creds, 'host', body);
    expect(em.meetings().map((m) => String(m.id))).toEqual([meeting.id]);
    expect(em.tokenRequests('acc')).toBe(1); // the refused one is not counted as a token handed out
  });

  it("keeps Zoom's answer when counting the request fails, and reports the counting error", async () => {
    const errors: unknown[] = [];
    const failing = createZoomClient({
      clock,
      settings: () => ({ apiBaseUrl: em.apiBaseUrl, oauthUrl: em.oauthUrl, timeoutMs: 15_000, attempts: 4, backoff: { baseDelayMs: 0, maxDelayMs: 0 } }),
      onRequest: () => Promise.reject(new Error('usage counter: connection lost')),
      onRequestError: (error) => errors.push(error),
    });
    const meeting = await failing.createMeeting(creds, 'host', body);
    expect(em.meetings().map((m) => String(m.id))).toEqual([meeting.id]);
    expect(errors).toEqual([new Error('usage counter: connection lost')]);
  });

  it('times out a token response whose body stalls, on the injected clock', async () => {
    let answered: () => void = () => undefined;
    const headersSent = new Promise<void>((resolve) => (answered = resolve));
    const stalled = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"access_token":', () => answered());
    });
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    try {
      const oauthUrl = `http://127.0.0.1:${(stalled.address() as AddressInfo).port}/oauth/token`;
      const slow = createZoomClient({ clock, settings: () => ({ apiBaseUrl: em.apiBaseUrl, oauthUrl, timeoutMs: 15_000, attempts: 1, backoff: { baseDelayMs: 0, maxDelayMs: 0 } }) });
      const pending = slow.accessToken(creds).catch((e: unknown) => e);
      await headersSent;
      // Let the client take the headers (fetch resolves) before the deadline passes.
      for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
      await clock.advance(15_000);
      const error = await pending;
      expect(error).toBeInstanceOf(ZoomError);
      expect((error as ZoomError).message).toMatch(/timed out/);
    } finally {
      stalled.closeAllConnections();
      await new Promise((resolve) => stalled.close(resolve));
    }
  }, 5_000);

  it('lists every page of a host with hundreds of meetings', async () => {
    for (let i = 0; i < 310; i++) await client.createMeeting(creds, 'host', { ...body, agenda: `[scheduler:m${i}]`, start_time: new Date(Date.UTC(2026, 11, 2) + i * 3_600_000).toISOString().replace('.000', '') });
    const all = await client.listMeetings(creds, 'host', 'scheduled');
    expect(all).toHaveLength(310);
    expect(new Set(all.map((m) => m.agenda)).size).toBe(310);
  });
});
