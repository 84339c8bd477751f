import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { createConfigStore } from '../../src/config/store.ts';
import { readLineCredentials } from '../../src/line/channels.ts';
import { createMetrics } from '../../src/metrics.ts';
import { startZoomEmulator } from '../../src/sandbox/zoom/index.ts';
import { readZoomCredentials } from '../../src/zoom/accounts.ts';
import { createProvisioner } from '../../src/zoom/provisioner.ts';
import { zoomClientFor } from '../../src/zoom/wiring.ts';
import { dialects } from '../support/databases.ts';
import { openHarness, rowCounts, type Harness } from '../support/harness.ts';
import { capturingLogger } from '../support/logs.ts';

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

  it('logs no secret when requests carrying secrets fail, nor when Zoom refuses the stored credentials', async () => {
    // The admin API logs its 500s (error handler), here while the database refuses the writes.
    const heal = await failWrites(h);
    const failed = [
      await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: zoomBody }),
      await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: lineBody }),
    ];
    expect(failed.map((r) => r.statusCode)).toEqual([500, 500]);
    await heal();
    const account = await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: zoomBody });
    expect(account.statusCode).toBe(201);
    expect((await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: zoomBody })).statusCode).toBe(409);
    expect((await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: { ...lineBody, slug: 'BAD' } })).statusCode).toBe(400);
    const heal2 = await failWrites(h);
    const rotation = await h.app.inject({ method: 'PATCH', url: `/api/zoom-accounts/${account.json().id}`, payload: { clientSecret: zoomBody.clientSecret } });
    expect(rotation.statusCode).toBe(500);
    await heal2();
    expect(h.logs.filter((l) => l.includes('request failed'))).toHaveLength(3);

    // A provisioning pass calls Zoom with the stored credentials, which Zoom (the emulator) refuses.
    const em = await startZoomEmulator({
      clock: h.clock,
      createLatencyMs: 0,
      accounts: [{ accountId: zoomBody.accountId, clientId: zoomBody.clientId, clientSecret: 'the-secret-zoom-expects', plan: 'pro', users: [{ id: 'u-1', email: zoomBody.hostUserId, type: 2 }] }],
    });
    const zoomLog = capturingLogger();
    try {
      const config = createConfigStore(parseConfig({ zoom: { apiBaseUrl: em.apiBaseUrl, oauthUrl: em.oauthUrl, retry: { baseDelay: '0ms' } } }, 'test'), { env: {} }, h.clock);
      const metrics = createMetrics();
      const client = zoomClientFor({ db: h.database.db, clock: h.clock, config, metrics });
      const provisioner = createProvisioner({ db: h.database.db, box: h.box, clock: h.clock, config, client, logger: zoomLog.logger, metrics });
      const put = await h.app.inject({ method: 'PUT', url: '/api/schedules/c1', payload: { title: 'c1', startsAt: '2026-12-01T10:00:00Z', endsAt: '2026-12-01T10:50:00Z', trial: false, minParticipants: 0, feedbackUrl: null } });
      expect(put.statusCode).toBeLessThan(300);
      expect((await provisioner.runPass()).outcomes).toEqual({ failed: 1 });
    } finally {
      await em.close();
    }
    expect(zoomLog.logs.filter((l) => l.includes('meeting work failed') && l.includes('invalid_client'))).toHaveLength(1);

    for (const line of [...h.logs, ...zoomLog.logs]) for (const secret of SECRETS) expect(line).not.toContain(secret);
  });

  it('redacts the credentials, as the code holds them, wherever they sit in a log object', async () => {
    // No path above logs them (that is what the test above checks); this guards the logger's
    // redaction, the defence for a future log line that carries them.
    const account = (await h.app.inject({ method: 'POST', url: '/api/zoom-accounts', payload: zoomBody })).json();
    const channel = (await h.app.inject({ method: 'POST', url: '/api/line-channels', payload: lineBody })).json();
    const zoom = await readZoomCredentials(h.database.db, h.box, account.id);
    const line = await readLineCredentials(h.database.db, h.box, channel.id);
    h.app.log.warn({ zoom, line, ...line, host: { zoom }, req: { headers: { authorization: `Basic ${zoomBody.clientSecret}` } } }, 'credentials in a log object');
    const lines = h.logs.filter((l) => l.includes('credentials in a log object'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('[redacted]');
    for (const secret of SECRETS) expect(lines[0]).not.toContain(secret);
  });
});

/**
 * Makes the database refuse every write to the account pools, as a lost connection would, without
 * touching our code: a trigger on each table. Returns how to heal the database.
 */
async function failWrites(h: Harness): Promise<() => Promise<void>> {
  const { db, dialect } = h.database;
  const tables = ['zoom_accounts', 'line_channels'];
  if (dialect === 'sqlite') {
    for (const table of tables) {
      for (const op of ['insert', 'update']) {
        await sql.raw(`create trigger fail_${op}_${table} before ${op} on ${table} begin select raise(abort, 'simulated database failure'); end`).execute(db);
      }
    }
    return async () => {
      for (const table of tables) for (const op of ['insert', 'update']) await sql.raw(`drop trigger fail_${op}_${table}`).execute(db);
    };
  }
  // Unqualified names land in the test's own schema (first on the search_path; dropped with it).
  await sql.raw(`create or replace function fail_writes() returns trigger language plpgsql as $$ begin raise exception 'simulated database failure'; end $$`).execute(db);
  for (const table of tables) await sql.raw(`create trigger fail_writes before insert or update on ${table} for each row execute function fail_writes()`).execute(db);
  return async () => {
    for (const table of tables) await sql.raw(`drop trigger fail_writes on ${table}`).execute(db);
  };
}

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
