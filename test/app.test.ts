import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp, type App } from '../src/app.ts';
import { virtualClock } from '../src/clock.ts';
import { loadConfig, parseConfig } from '../src/config/load.ts';
import { createConfigStore } from '../src/config/store.ts';
import { startLineEmulator, type LineEmulator } from '../src/sandbox/line/index.ts';
import { startZoomEmulator, type ZoomEmulator } from '../src/sandbox/zoom/index.ts';
import { dialects, openTestDatabase, type TestDatabase } from './support/databases.ts';
import { urlOf } from './support/cli.ts';

const student = `U${'a'.repeat(32)}`;

/** The composition root end to end: admin API → provisioner → Zoom → outbox → engine → LINE. */
describe.each(dialects)('the whole service on %s', (dialect) => {
  let app: App | undefined;
  let zoom: ZoomEmulator | undefined;
  let line: LineEmulator | undefined;
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await app?.stop();
    await zoom?.close();
    await line?.close();
    await database?.close();
  });

  /**
   * Both emulators, the database of the dialect and the whole service (workers off: each test runs
   * them by hand), with one Zoom host, one LINE channel and one class booked by one student, all
   * added through the admin API.
   */
  const openService = async (extra: { zoom?: object; notifications?: object; http?: object; recordings?: object } = {}, webhookSecretToken?: string) => {
    const clock = virtualClock('2026-12-01T11:00:00Z');
    zoom = await startZoomEmulator({ clock, createLatencyMs: 0, accounts: [{ accountId: 'acc', clientId: 'cid', clientSecret: 'csec', plan: 'pro', users: [{ id: 'host1', email: 'host1@example.com' }] }] });
    line = await startLineEmulator({ clock, channels: [{ users: [{ userId: student, displayName: 'Aki' }] }] });
    const channel = line.channels()[0];
    if (!channel) throw new Error('no channel');
    database = dialect === 'postgres' ? await openTestDatabase('postgres') : undefined;
    const config = createConfigStore(
      parseConfig(
        {
          database: { url: database ? urlOf(database, '') : 'sqlite::memory:' },
          zoom: { apiBaseUrl: zoom.apiBaseUrl, oauthUrl: zoom.oauthUrl, ...extra.zoom },
          line: { apiBaseUrl: line.url },
          notifications: { meetingUrl: { format: 'text' }, feedbackUrl: { format: 'text' }, ...extra.notifications },
          ...(extra.http ? { http: extra.http } : {}),
          ...(extra.recordings ? { recordings: extra.recordings } : {}),
        },
        'test',
      ),
      { env: {} },
      clock,
    );
    const service = await createApp({ config, env: { SCHEDULER_SECRET_KEY: randomBytes(32).toString('base64') }, clock, logger: pino({ level: 'silent' }), workers: false });
    app = service;
    const api = (method: 'POST' | 'PUT', url: string, payload: object) => service.http.inject({ method, url, payload });
    expect((await api('POST', '/api/zoom-accounts', { label: 'h1', plan: 'licensed', accountId: 'acc', clientId: 'cid', clientSecret: 'csec', hostUserId: 'host1', ...(webhookSecretToken ? { webhookSecretToken } : {}) })).statusCode).toBe(201);
    expect((await api('POST', '/api/line-channels', { label: 'OA', slug: 'main', channelId: channel.channelId, channelSecret: channel.channelSecret, channelAccessToken: channel.accessToken })).statusCode).toBe(201);
    expect((await api('PUT', '/api/schedules/math-1', { title: '數學', startsAt: '2026-12-01T20:00:00+08:00', endsAt: '2026-12-01T20:50:00+08:00' })).statusCode).toBe(201);
    expect((await api('PUT', '/api/appointments/b-1', { scheduleExternalId: 'math-1', student: { channel: 'main', lineUserId: student } })).statusCode).toBe(201);
    return { clock, app: service, zoom, line };
  };

  it('turns a booked class into a Zoom meeting and a LINE message at the right time', async () => {
    const { clock, app, zoom, line } = await openService();

    expect((await app.provisioner.runPass()).outcomes).toEqual({ created: 1 });
    const meeting = zoom.meetings()[0];
    expect(meeting).toBeDefined();

    await clock.set(new Date('2026-12-01T11:49:00Z'));
    await app.engine.runOnce();
    expect(line.received(student)).toEqual([]);
    await clock.set(new Date('2026-12-01T11:50:00Z'));
    await app.engine.runOnce();
    const got = line.received(student);
    expect(got).toHaveLength(1);
    expect(JSON.stringify(got[0]?.messages)).toContain(meeting?.joinUrl ?? 'missing');

    const detail = await app.http.inject({ method: 'GET', url: '/api/schedules/math-1' });
    expect(detail.json().meeting.state).toBe('ready');
    expect(detail.json().appointments[0].deliveries[0]).toMatchObject({ kind: 'meeting_url', state: 'sent', latenessMs: 0 });
    const metrics = await app.http.inject({ method: 'GET', url: '/metrics' });
    expect(metrics.body).toContain('scheduler_deliveries_total{state="sent"} 1');
    expect(metrics.body).toContain('scheduler_zoom_request_duration_seconds_count{operation="create_meeting",outcome="201"} 1');
  });

  it('watches the class through signed webhooks, saves its recording and sends the replay link once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scheduler-recordings-'));
    const { clock, app, zoom, line } = await openService(
      { http: { port: 0 }, zoom: { meeting: { autoRecording: 'cloud' } }, notifications: { meetingUrl: { format: 'text' }, feedbackUrl: { format: 'text' }, replayUrl: { enabled: true } }, recordings: { dir } },
      'whsec',
    );
    const base = await app.listen();
    app.zoomWebhooks.start();
    zoom.webhooks.subscribe({ accountId: 'acc', url: `${base}/webhooks/zoom/acc`, secretToken: 'whsec' });
    expect(await zoom.webhooks.validate('acc')).toMatchObject({ ok: true });
    await app.provisioner.runPass();
    const id = zoom.meetings()[0]?.id ?? 0;
    const settle = async () => {
      for (let i = 0; i < 3; i++) {
        await zoom.webhooks.settle();
        await app.zoomWebhooks.idle();
      }
    };

    // Aki comes at 19:58 and stays to the end: the class is watched, not ended.
    await clock.set(new Date('2026-12-01T11:58:00Z'));
    const aki = zoom.join(id, { name: 'Aki', email: 'aki@example.com' });
    await settle();
    await clock.set(new Date('2026-12-01T12:10:00Z'));
    await settle();
    expect((await app.monitor.runPass()).graceChecked).toEqual({ ok: 1 });
    const watched = await app.database.db.selectFrom('schedules').select(['attendance', 'live_status', 'monitor_state']).executeTakeFirstOrThrow();
    expect(watched).toEqual({ attendance: 1, live_status: 'started', monitor_state: 'ok' });

    // The last one out ends the meeting; Zoom records it and says so (recording.completed).
    await clock.set(new Date('2026-12-01T12:50:00Z'));
    zoom.leave(id, aki);
    await settle();
    expect((await app.recordings.runOnce()).outcomes).toEqual({ stored: 2 });
    const files = await app.database.db.selectFrom('recordings').select(['file_id', 'file_type', 'state', 'checksum_sha256']).orderBy('id').execute();
    expect(files.map((f) => [f.file_type, f.state])).toEqual([
      ['MP4', 'stored'],
      ['M4A', 'stored'],
    ]);
    for (const f of files) expect(f.checksum_sha256).toBe(zoom.recordingFile(f.file_id)?.sha256);

    await app.engine.runOnce();
    const replay = line.received(student).filter((r) => JSON.stringify(r.messages).includes('/replay/'));
    expect(replay).toHaveLength(1);
    const link = /http:\/\/localhost:3000(\/replay\/[^"\\\s]+)/.exec(JSON.stringify(replay[0]?.messages))?.[1] ?? '';
    const video = await app.http.inject({ method: 'GET', url: link });
    expect(video.statusCode).toBe(200);
    expect(createHash('sha256').update(video.rawPayload).digest('hex')).toBe(zoom.recordingFile(files[0]?.file_id ?? '')?.sha256);

    // Zoom sends the webhook again: nothing is downloaded or sent twice.
    const delivered = zoom.webhooks.deliveries({ event: 'recording.completed' })[0];
    expect(await zoom.webhooks.redeliver(delivered?.id ?? '')).toBe(200);
    await settle();
    expect((await app.recordings.runOnce()).claimed).toBe(0);
    await app.engine.runOnce();
    expect(line.received(student).filter((r) => JSON.stringify(r.messages).includes('/replay/'))).toHaveLength(1);

    // What an operator sees of it.
    const detail = (await app.http.inject({ method: 'GET', url: '/api/schedules/math-1' })).json();
    expect(detail.monitoring).toMatchObject({ liveStatus: 'ended', attendance: 0, attendancePeak: 1, verdict: 'ok', reason: '1 student present 10 minutes after the start', endedAt: '2026-12-01T12:50:00.000Z' });
    expect(detail.recordings.map((r: { fileType: string; state: string }) => `${r.fileType}:${r.state}`)).toEqual(['MP4:stored', 'M4A:stored']);
    expect(detail.appointments[0].deliveries.map((d: { kind: string; state: string }) => `${d.kind}:${d.state}`)).toContain('replay_url:sent');
    const status = (await app.http.inject({ method: 'GET', url: '/api/status' })).json();
    expect(status.monitoring).toEqual({ last24h: { ok: 1 }, webhookEvents: { pending: 0, failed: 0 }, recordings: { stored: 2 } });
    await rm(dir, { recursive: true, force: true });
  });
});

describe('what the service shows to whoever reaches it', () => {
  const start = (http: object, line: object = {}) =>
    createApp({
      config: createConfigStore(parseConfig({ database: { url: 'sqlite::memory:' }, http: { port: 0, ...http }, line }, 'test'), { env: {} }, virtualClock('2026-12-01T00:00:00Z')),
      env: { SCHEDULER_SECRET_KEY: randomBytes(32).toString('base64') },
      clock: virtualClock('2026-12-01T00:00:00Z'),
      logger: pino({ level: 'silent' }),
      workers: false,
    });

  it.each([
    ['bound beyond loopback', { host: '0.0.0.0' }, {}, /non-loopback address 0\.0\.0\.0/],
    ['behind a trusted reverse proxy', { trustProxy: true }, {}, /http\.trustProxy/],
    ['with a public address for LINE and Zoom (a proxy or tunnel in front)', { publicBaseUrl: 'https://sched.example.com' }, {}, /http\.publicBaseUrl \(sched\.example\.com\)/],
    ['with a LINE webhook domain', {}, { webhookDomain: 'line.example.com' }, /line\.webhookDomain/],
  ])('refuses to start when it can be reached from outside: %s', async (_name, http, line, reason) => {
    await expect(start(http, line)).rejects.toThrow(reason);
  });

  it('readiness says the database failed without the driver\'s text (the probe is unauthenticated)', async () => {
    const app = await start({});
    try {
      expect((await app.http.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      await sql`drop table kysely_migration`.execute(app.database.db);
      const probe = await app.http.inject({ method: 'GET', url: '/readyz' });
      expect(probe.statusCode).toBe(503);
      expect(probe.json()).toMatchObject({ checks: { database: 'error (see the log)' } });
      expect(probe.body).not.toMatch(/kysely_migration|no such table/);
    } finally {
      await app.stop();
    }
  });

  it('refuses every admin request once a reload makes a token-less service reachable from outside', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scheduler-exposure-'));
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'database:\n  url: "sqlite::memory:"\nhttp:\n  port: 0\n');
    const clock = virtualClock('2026-12-01T00:00:00Z');
    const config = createConfigStore(loadConfig({ file, env: {} }), { file, env: {} }, clock);
    const app = await createApp({ config, env: { SCHEDULER_SECRET_KEY: randomBytes(32).toString('base64') }, clock, logger: pino({ level: 'silent' }), workers: false });
    try {
      expect((await app.http.inject({ method: 'GET', url: '/api/line-channels' })).statusCode).toBe(200);
      writeFileSync(file, 'database:\n  url: "sqlite::memory:"\nhttp:\n  port: 0\n  publicBaseUrl: https://sched.example.com\n');
      expect(config.reload('signal')).toMatchObject({ status: 'applied' });
      const refused = await app.http.inject({ method: 'GET', url: '/api/line-channels' });
      expect([refused.statusCode, refused.json().message]).toEqual([401, expect.stringMatching(/reached from outside \(http\.publicBaseUrl.*SCHEDULER_ADMIN_TOKEN/)]);
      expect((await app.http.inject({ method: 'GET', url: '/metrics' })).statusCode).toBe(401);
    } finally {
      await app.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('serves a loopback-only service, but refuses requests a proxy forwarded', async () => {
    const app = await start({});
    try {
      expect((await app.http.inject({ method: 'GET', url: '/api/line-channels' })).statusCode).toBe(200);
      for (const headers of [{ 'x-forwarded-for': '203.0.113.9' }, { forwarded: 'for=203.0.113.9' }]) {
        const proxied = await app.http.inject({ method: 'GET', url: '/api/line-channels', headers });
        expect(proxied.statusCode).toBe(401);
        expect(proxied.json()).toMatchObject({ error: 'unauthorized', message: expect.stringMatching(/SCHEDULER_ADMIN_TOKEN/) });
        expect((await app.http.inject({ method: 'GET', url: '/metrics', headers })).statusCode).toBe(401);
      }
    } finally {
      await app.stop();
    }
  });
});
