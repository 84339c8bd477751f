import { afterEach, describe, expect, it } from 'vitest';
import { FREE, type Harness, PRO, call, requestToken, start } from './helpers.ts';

let h: Harness;
afterEach(async () => h.em.close());

const basic = (id: string, secret: string): string => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

async function tokenCall(url: string, authorization: string, init: RequestInit = {}): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { method: 'POST', headers: { Authorization: authorization }, ...init });
  return { status: res.status, body: await res.json() };
}

describe('Zoom emulator: S2S OAuth', () => {
  it('issues a bearer token for good credentials (query parameters)', async () => {
    h = await start();
    const res = await tokenCall(`${h.em.oauthUrl}?grant_type=account_credentials&account_id=acct-pro`, basic('pro-client', 'pro-secret'));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: 'bearer', expires_in: 3600, api_url: h.em.url, access_token: expect.any(String) });
    expect(res.body).toHaveProperty('scope', expect.stringContaining('meeting:write:meeting:admin'));
    expect(h.em.tokenRequests('acct-pro')).toBe(1);
  });

  it('accepts the parameters as a form body too (as Rivet sends them)', async () => {
    h = await start();
    const res = await tokenCall(h.em.oauthUrl, basic('pro-client', 'pro-secret'), {
      headers: { Authorization: basic('pro-client', 'pro-secret'), 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=account_credentials&account_id=acct-pro',
    });
    expect(res.status).toBe(200);
  });

  it('refuses bad credentials, an unknown or foreign account and another grant type with OAuth errors', async () => {
    h = await start();
    const url = (account: string, grant = 'account_credentials'): string => `${h.em.oauthUrl}?grant_type=${grant}&account_id=${account}`;
    expect(await tokenCall(url('acct-pro'), basic('pro-client', 'wrong'))).toEqual({
      status: 400,
      body: { reason: 'Invalid client_id or client_secret', error: 'invalid_client' },
    });
    expect(await tokenCall(url('acct-pro'), basic('nobody', 'x'))).toMatchObject({ status: 400, body: { error: 'invalid_client' } });
    expect(await tokenCall(url('acct-free'), basic('pro-client', 'pro-secret'))).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await tokenCall(url('acct-nope'), basic('pro-client', 'pro-secret'))).toMatchObject({ status: 400, body: { error: 'invalid_request' } });
    expect(await tokenCall(url('acct-pro', 'client_credentials'), basic('pro-client', 'pro-secret'))).toMatchObject({
      status: 400,
      body: { error: 'unsupported_grant_type' },
    });
    expect(h.em.tokenRequests('acct-pro')).toBe(3);
    expect(h.em.counters().tokensIssued).toBe(0);
  });

  it('answers 401 code 124 without a token or with an unknown one', async () => {
    h = await start();
    const res = await fetch(`${h.em.apiBaseUrl}/users/host-a`);
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ code: 124, message: 'Invalid access token.' });
    expect(await call(h.em, 'made-up', 'GET', '/users/host-a')).toMatchObject({ status: 401, body: { code: 124 } });
  });

  it('expires tokens after expires_in seconds of the clock', async () => {
    h = await start({ tokenTtlSeconds: 600 });
    const token = await requestToken(h.em, PRO);
    await h.clock.advance(599_000);
    expect((await call(h.em, token, 'GET', '/users/host-a')).status).toBe(200);
    await h.clock.advance(1_000);
    expect(await call(h.em, token, 'GET', '/users/host-a')).toMatchObject({ status: 401, body: { code: 124, message: 'Access token is expired.' } });
  });

  it('expireTokens(accountId) kills only that account’s tokens; new ones work', async () => {
    h = await start();
    const pro = await requestToken(h.em, PRO);
    const free = await requestToken(h.em, FREE);
    h.em.expireTokens('acct-pro');
    expect(await call(h.em, pro, 'GET', '/users/host-a')).toMatchObject({ status: 401, body: { code: 124 } });
    expect((await call(h.em, free, 'GET', '/users/basic-1')).status).toBe(200);
    const fresh = await requestToken(h.em, PRO);
    expect((await call(h.em, fresh, 'GET', '/users/host-a')).status).toBe(200);
  });

  it('keeps earlier tokens valid by default, and can emulate the old latest-token-only behaviour', async () => {
    h = await start();
    const first = await requestToken(h.em, PRO);
    await requestToken(h.em, PRO);
    expect((await call(h.em, first, 'GET', '/users/host-a')).status).toBe(200);
    await h.em.close();

    h = await start({ tokenPolicy: 'latest-only' });
    const old = await requestToken(h.em, PRO);
    const latest = await requestToken(h.em, PRO);
    expect(await call(h.em, old, 'GET', '/users/host-a')).toMatchObject({ status: 401, body: { code: 124, message: 'Invalid access token.' } });
    expect((await call(h.em, latest, 'GET', '/users/host-a')).status).toBe(200);
  });

  it('scopes a token to its account: users of another account do not exist', async () => {
    h = await start();
    const token = await requestToken(h.em, PRO);
    expect(await call(h.em, token, 'GET', '/users/host-a@example.com')).toMatchObject({ status: 200, body: { id: 'host-a', type: 2 } });
    expect(await call(h.em, token, 'GET', '/users/basic-1')).toMatchObject({ status: 404, body: { code: 1001 } });
    expect(await call(h.em, token, 'POST', '/users/basic-1/meetings', { topic: 'x' })).toMatchObject({ status: 404, body: { code: 1001 } });
    const free = await requestToken(h.em, FREE);
    expect(await call(h.em, free, 'GET', '/users/basic-1')).toMatchObject({ status: 200, body: { type: 1, account_id: 'acct-free' } });
  });
});
