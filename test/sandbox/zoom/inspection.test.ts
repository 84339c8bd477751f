import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Harness, PRO, call, createMeeting, meetingBody, requestToken, start } from './helpers.ts';

let h: Harness;
afterEach(async () => h.em.close());

async function control(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${h.em.url}/_emulator${path}`, { method, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

describe('Zoom emulator: inspection and control over HTTP', () => {
  it('reports meetings, requests, token requests and counters as JSON', async () => {
    h = await start();
    const token = await requestToken(h.em, PRO);
    const m = await createMeeting(h.em, token, 'host-a');
    await call(h.em, token, 'GET', '/meetings/12345678901');

    expect(await control('GET', '/meetings')).toEqual({ status: 200, body: h.em.meetings() });
    expect((await control('GET', `/meetings/${m.id}`)).body).toMatchObject({ id: m.id, hostId: 'host-a', state: 'waiting' });
    expect((await control('GET', '/meetings?host_id=host-b')).body).toEqual([]);
    expect((await control('GET', '/requests')).body).toEqual([
      expect.objectContaining({ method: 'POST', path: '/oauth/token', accountId: 'acct-pro', status: 200, outcome: 'responded' }),
      expect.objectContaining({ method: 'POST', path: '/v2/users/host-a/meetings', accountId: 'acct-pro', status: 201 }),
      expect.objectContaining({ method: 'GET', path: '/v2/meetings/12345678901', status: 404, code: 3001 }),
    ]);
    expect((await control('GET', '/token-requests?account_id=acct-pro')).body).toEqual({ accountId: 'acct-pro', count: 1 });
    expect((await control('GET', '/counters')).body).toMatchObject({
      tokensIssued: 1,
      meetings: { created: 1, deleted: 0 },
      hostDaily: [{ hostId: 'host-a', used: 1, limit: 100 }],
      accountDaily: expect.arrayContaining([expect.objectContaining({ accountId: 'acct-pro', bucket: 'Medium', used: 1, limit: null })]),
    });
    expect(h.em.requests()).toHaveLength(3); // /_emulator calls are not logged
  });

  it('starts and ends meetings, expires tokens, injects faults and reports findings', async () => {
    h = await start();
    const token = await requestToken(h.em, PRO);
    const m = await createMeeting(h.em, token, 'host-a');
    await createMeeting(h.em, token, 'host-a', { start_time: '2026-03-02T10:30:00Z' });

    expect((await control('POST', `/meetings/${m.id}/start`)).body).toEqual({ started: true, uuid: m.uuid });
    expect(h.em.meeting(m.id)?.state).toBe('started');
    expect((await control('POST', `/meetings/${m.id}/end`)).body).toEqual({ ended: true });
    expect((await control('GET', '/overlaps?active=true')).body).toEqual([expect.objectContaining({ hostId: 'host-a', kind: 'scheduled' })]);
    expect((await control('GET', '/violations')).body).toEqual([]);

    expect((await control('POST', '/faults', { method: 'POST', pathPattern: '/meetings$', fault: { status: 500 } })).status).toBe(201);
    expect((await control('GET', '/faults')).body).toEqual([expect.objectContaining({ method: 'POST', remaining: 1, fault: 'status-500' })]);
    expect((await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody())).status).toBe(500);
    expect((await control('POST', '/faults', { fault: { kind: 'explode' } })).status).toBe(400);

    expect((await control('POST', '/expire-tokens', { accountId: 'acct-pro' })).status).toBe(200);
    expect(await call(h.em, token, 'GET', '/users/host-a')).toMatchObject({ status: 401, body: { code: 124 } });
  });

  it('adds accounts at run time and resets state but keeps accounts', async () => {
    h = await start({ accounts: [] });
    const added = await control('POST', '/accounts', {
      accountId: 'acct-new',
      clientId: 'new-client',
      clientSecret: 'new-secret',
      plan: 'pro',
      users: [{ id: 'new-1', email: 'new-1@example.com' }],
    });
    expect(added.status).toBe(201);
    const creds = { ...PRO, accountId: 'acct-new', clientId: 'new-client', clientSecret: 'new-secret' };
    const token = await requestToken(h.em, creds);
    await createMeeting(h.em, token, 'new-1');
    expect((await control('POST', '/accounts', { accountId: 'acct-new', clientId: 'c', clientSecret: 's', plan: 'pro', users: [] })).status).toBe(400);

    expect((await control('POST', '/reset')).body).toEqual({ reset: true });
    expect(h.em.meetings()).toEqual([]);
    expect(h.em.requests()).toEqual([]);
    expect(z.object({ tokensIssued: z.number() }).parse(h.em.counters()).tokensIssued).toBe(0);
    expect(await call(h.em, token, 'GET', '/users/new-1')).toMatchObject({ status: 401 }); // tokens forgotten
    const again = await requestToken(h.em, creds);
    expect((await call(h.em, again, 'GET', '/users/new-1')).status).toBe(200);
  });
});
