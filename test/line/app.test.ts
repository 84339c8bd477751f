import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp, type App } from '../../src/app.ts';
import { virtualClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { createConfigStore } from '../../src/config/store.ts';
import { createLogger } from '../../src/logger.ts';
import { signLineBody, startLineEmulator, type LineEmulator } from '../../src/sandbox/line/index.ts';
import { urlOf } from '../support/cli.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';
import { ALICE } from './support.ts';

let app: App | undefined;
let emulator: LineEmulator | undefined;
let database: TestDatabase | undefined;
let dir: string | undefined;
afterEach(async () => {
  await app?.stop();
  await emulator?.close();
  await database?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  app = emulator = database = dir = undefined;
});

describe.each(dialects)('the composed service (createApp) on %s', (dialect) => {
  it('takes a signed webhook for a channel added through the admin API, applies it, and serves the imagemap images', async () => {
    database = await openTestDatabase(dialect);
    dir = mkdtempSync(join(tmpdir(), 'line-app-'));
    emulator = await startLineEmulator({ channels: [{ users: [{ userId: ALICE, displayName: 'Alice' }] }] });
    const [channel] = emulator.channels();
    if (!channel) throw new Error('no channel');
    const clock = virtualClock('2026-12-01T00:00:00Z');
    const config = createConfigStore(
      parseConfig({ database: { url: urlOf(database, join(dir, 'app.db')) }, http: { port: 0, publicBaseUrl: 'https://sched.example.test' }, line: { apiBaseUrl: emulator.url, webhookDomain: 'line.example.test' } }, 'test'),
      { env: {} },
      clock,
    );
    const logger = createLogger({ level: 'warn', destination: new Writable({ write: (_c, _e, callback) => callback() }) });
    // A public address and a webhook domain: a proxy is in front, so the admin API needs its token.
    app = await createApp({ config, env: { SCHEDULER_SECRET_KEY: randomBytes(32).toString('base64'), SCHEDULER_ADMIN_TOKEN: 'admin-token' }, clock, logger, workers: false });
    const admin = { authorization: 'Bearer admin-token' };

    const created = await app.http.inject({
      method: 'POST',
      url: '/api/line-channels',
      headers: admin,
      payload: { label: 'Main', slug: 'main', channelId: channel.channelId, channelSecret: channel.channelSecret, channelAccessToken: channel.accessToken },
    });
    expect(created.statusCode).toBe(201);
    const body = JSON.stringify({ destination: channel.botUserId, events: [emulator.events.followEvent(ALICE)] });
    const webhook = await app.http.inject({
      method: 'POST',
      url: '/webhooks/line',
      headers: { host: 'main.line.example.test', 'content-type': 'application/json', 'x-line-signature': signLineBody(channel.channelSecret, body) },
      payload: body,
    });
    expect([webhook.statusCode, webhook.json()]).toEqual([200, { stored: 1, duplicates: 0 }]);
    await app.line.processor.idle();
    const member = await app.database.db.selectFrom('members').select(['line_user_id', 'following', 'display_name']).executeTakeFirst();
    expect(member).toEqual({ line_user_id: ALICE, following: 'following', display_name: 'Alice' });
    // The channel learned its bot user id from the verified webhook.
    expect((await app.http.inject({ method: 'GET', url: `/api/line-channels/${created.json().id}`, headers: admin })).json()).toMatchObject({ botUserId: channel.botUserId });

    const image = await app.http.inject({ method: 'GET', url: `/imagemap/${app.line.imagemap.current()?.hash}/240` });
    expect([image.statusCode, image.headers['content-type']]).toEqual([200, 'image/png']);
  });
});
