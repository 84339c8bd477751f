import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readLineCredentials } from '../../src/line/channels.ts';
import { readZoomCredentials } from '../../src/zoom/accounts.ts';
import { dialects } from '../support/databases.ts';
import { openHarness, rowCounts, type Harness } from '../support/harness.ts';

const zoomBody = {
  label: 'host-1',
  plan: 'licensed',
  accountId: 'acc-1',
  clientId: 'client-1',
  clientSecret: 'zoom-client-secret-value',
  hostUserId: 'teacher1@example.com',
  webhookSecretToken: 'zoom-webhook-token-value',
};
const lineBody = {
  label: 'Main OA',
  slug: 'main',
  channelId: '1234567890',
  channelSecret: 'line-channel-secret-value',
  channelAccessToken: 'line-access-token-value',
};
const SECRETS = [zoomBody.clientSecret, zoomBody.webhookSecretToken, lineBody.channelSecret, lineBody.channelAccessToken];

describe.each(dialects)('account pools over the admin API on %s', (dialect) => {
  let h: Harness;
  beforeEach(async () => {
    h = await openHarness(dialect);
  });
  afterEach(async () => {
    await h.close();
  });

  it('adds, lists, disables and re-enables a Zoom host; secrets are stored encrypted and never returned', async () => {
    const created = await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: zoomBody });
    expect(created.statusCode).toBe(201);
    const account = created.json();
    expect(account).toMatchObject({ label: 'host-1', plan: 'licensed', accountId: 'acc-1', hasWebhookSecretToken: true, enabled: true });

    const list = await h.app.inject({ method: 'GET', url: '/api/zoom-accounts' });
    expect(list.json().items).toHaveLength(1);
    const disabled = await h.app.inject({ method: 'PATCH', url: `/api/zoom-accounts/${account.id}`, payload: { enabled: false } });
    expect(disabled.json().enabled).toBe(false);
    const enabled = await h.app.inject({ method: 'PATCH', url: `/api/zoom-accounts/${account.id}`, payload: { enabled: true } });
    expect(enabled.json().enabled).toBe(true);

    const row = await h.database.db.selectFrom('zoom_accounts').selectAll().executeTakeFirstOrThrow();
    expect(row.client_secret).not.toContain(zoomBody.clientSecret);
    expect(await readZoomCredentials(h.database.db, h.box, account.id)).toMatchObject({
      clientSecret: zoomBody.clientSecret,
      webhookSecretToken: zoomBody.webhookSecretToken,
    });
    for (const response of [created, list, disabled, enabled]) {
      for (const secret of SECRETS) expect(response.body).not.toContain(secret);
    }
  });

  it('adds and lists a LINE channel without echoing its secrets', async () => {
    const created = await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: lineBody });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ slug: 'main', channelId: '1234567890', enabled: true, botUserId: null });
    const got = await h.app.inject({ method: 'GET', url: `/api/line-channels/${created.json().id}` });
    const list = await h.app.inject({ method: 'GET', url: '/api/line-channels' });
    for (const response of [created, got, list]) {
      for (const secret of SECRETS) expect(response.body).not.toContain(secret);
    }
    expect(await readLineCredentials(h.database.db, h.box, created.json().id)).toEqual({
      channelSecret: lineBody.channelSecret,
      channelAccessToken: lineBody.channelAccessToken,
    });
    const rotated = await h.app.inject({ method: 'PATCH', url: `/api/line-channels/${created.json().id}`, payload: { channelAccessToken: 'rotated-token' } });
    expect(rotated.statusCode).toBe(200);
    expect((await readLineCredentials(h.database.db, h.box, created.json().id)).channelAccessToken).toBe('rotated-token');
  });

  it.each([
    ['missing clientSecret', { ...zoomBody, clientSecret: undefined }, 'clientSecret'],
    ['wrong plan', { ...zoomBody, plan: 'pro' }, 'plan'],
    ['wrong type', { ...zoomBody, label: 42 }, 'label'],
    ['unknown field', { ...zoomBody, hostEmail: 'x@example.com' }, 'hostEmail'],
  ])('rejects a Zoom account with %s (400 naming the field, nothing written)', async (_name, payload, field) => {
    const before = await rowCounts(h.database);
    const response = await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload });
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toBe('invalid');
    expect(response.json().field).toBe(field);
    expect(response.json().message).toContain(field);
    expect(await rowCounts(h.database)).toEqual(before);
  });

  it.each([
    ['a slug that is not a DNS label', { ...lineBody, slug: 'Main_OA' }, 'slug'],
    ['a non-numeric channel id', { ...lineBody, channelId: 'abc' }, 'channelId'],
    ['a malformed bot user id', { ...lineBody, botUserId: 'bot' }, 'botUserId'],
  ])('rejects a LINE channel with %s', async (_name, payload, field) => {
    const response = await h.app.inject({ method: 'POST', url: '/api/line-channels', payload });
    expect(response.statusCode).toBe(400);
    expect(response.json().field).toBe(field);
    expect((await rowCounts(h.database)).line_channels).toBe(0);
  });

  it('answers 409 for a duplicate and 404 for an unknown id', async () => {
    expect((await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: zoomBody })).statusCode).toBe(201);
    const duplicate = await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: { ...zoomBody, label: 'other' } });
    expect(duplicate.statusCode).toBe(409);
    expect((await rowCounts(h.database)).zoom_accounts).toBe(1);
    const missing = await h.app.inject({ method: 'PATCH', url: '/api/zoom-accounts/999', payload: { enabled: false } });
    expect(missing.statusCode).toBe(404);
    const badId = await h.app.inject({ method: 'GET', url: '/api/line-channels/abc' });
    expect(badId.statusCode).toBe(400);
    const emptyPatch = await h.app.inject({ method: 'PATCH', url: '/api/line-channels/1', payload: {} });
    expect(emptyPatch.statusCode).toBe(400);
  });

  it('logs no secret even when requests fail', async () => {
    await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: zoomBody });
    await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: zoomBody });
    await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: lineBody });
    await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: { ...lineBody, slug: 'BAD' } });
    h.app.log.info({ account: { clientSecret: zoomBody.clientSecret }, channelAccessToken: lineBody.channelAccessToken }, 'probe');
    expect(h.logs.some((line) => line.includes('probe'))).toBe(true);
    for (const line of h.logs) for (const secret of SECRETS) expect(line).not.toContain(secret);
  });
});

describe('admin authentication', () => {
  it('requires the bearer token on /api when one is configured, but not on health checks', async () => {
    const h = await openHarness('sqlite', { adminToken: 'correct-horse' });
    try {
      expect((await h.app.inject({ method: 'GET', url: '/api/zoom-accounts' })).statusCode).toBe(401);
      const wrong = await h.app.inject({ method: 'GET', url: '/api/config', headers: { authorization: 'Bearer nope' } });
      expect(wrong.statusCode).toBe(401);
      expect(wrong.headers['www-authenticate']).toContain('Bearer');
      const right = await h.app.inject({ method: 'GET', url: '/api/zoom-accounts', headers: { authorization: 'Bearer correct-horse' } });
      expect(right.statusCode).toBe(200);
      expect((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      expect((await h.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      for (const line of h.logs) expect(line).not.toContain('correct-horse');
    } finally {
      await h.close();
    }
  });
});
