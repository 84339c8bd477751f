import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type Harness, PRO, call, meetingBody, requestToken, start, until } from './helpers.ts';

let h: Harness;
afterEach(async () => h.em.close());

const CREATE = /^\/v2\/users\/[^/]+\/meetings$/;

async function setup(options: Parameters<typeof start>[0] = {}): Promise<string> {
  h = await start(options);
  return requestToken(h.em, PRO);
}

const createRequest = (token: string, signal?: AbortSignal): Promise<Response> =>
  fetch(`${h.em.apiBaseUrl}/users/host-a/meetings`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(meetingBody()),
    signal,
  });

describe('Zoom emulator: fault injection', () => {
  it('status faults answer at once, change nothing, and stop after `times`', async () => {
    const token = await setup();
    const fault = h.em.faults.add({ method: 'POST', path: CREATE, times: 2, fault: { status: 500, body: { code: 500, message: 'boom' } } });
    expect(await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody())).toMatchObject({ status: 500, body: { message: 'boom' } });
    expect((await call(h.em, token, 'GET', '/users/host-a')).status).toBe(200); // other routes unaffected
    expect((await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody())).status).toBe(500);
    expect((await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody())).status).toBe(201);
    expect(fault.hits()).toBe(2);
    expect(h.em.meetings()).toHaveLength(1);
    expect(h.em.requests().map((r) => r.fault)).toEqual([null, 'status-500', null, 'status-500', null]);
  });

  it('matches an exact path string and the OAuth endpoint too', async () => {
    h = await start();
    h.em.faults.add({ path: '/oauth/token', fault: { status: 503 } });
    const res = await fetch(`${h.em.oauthUrl}?grant_type=account_credentials&account_id=acct-pro`, { method: 'POST' });
    expect(res.status).toBe(503);
    expect(await requestToken(h.em, PRO)).toEqual(expect.any(String));
  });

  it('drop destroys the connection before anything happens', async () => {
    const token = await setup();
    h.em.faults.add({ path: CREATE, fault: { kind: 'drop' } });
    await expect(createRequest(token)).rejects.toThrow();
    expect(h.em.meetings()).toHaveLength(0);
    expect(h.em.requests().at(-1)).toMatchObject({ outcome: 'dropped', status: null, fault: 'drop' });
  });

  it('after-commit-drop creates the meeting, then drops the connection', async () => {
    const token = await setup();
    h.em.faults.add({ method: 'POST', path: CREATE, fault: { kind: 'after-commit-drop' } });
    await expect(createRequest(token)).rejects.toThrow();
    expect(h.em.meetings()).toEqual([expect.objectContaining({ hostId: 'host-a', topic: 'Class [booking:1]', deleted: false })]);
    expect(h.em.requests().at(-1)).toMatchObject({ outcome: 'dropped', status: 201 });
    // The client can find it again by listing (the crash-recovery path).
    const list = await call(h.em, token, 'GET', '/users/host-a/meetings?type=upcoming');
    expect(z.object({ total_records: z.number() }).parse(list.body).total_records).toBe(1);
  });

  it('after-commit-error commits, then answers 502', async () => {
    const token = await setup();
    h.em.faults.add({ path: CREATE, fault: { kind: 'after-commit-error' } });
    expect((await call(h.em, token, 'POST', '/users/host-a/meetings', meetingBody())).status).toBe(502);
    expect(h.em.meetings()).toHaveLength(1);
  });

  it('timeout holds the request until the client gives up, without side effects', async () => {
    const token = await setup();
    const fault = h.em.faults.add({ path: CREATE, fault: { kind: 'timeout' } });
    const controller = new AbortController();
    const pending = createRequest(token, controller.signal);
    await fault.triggered;
    expect(h.em.requests().at(-1)).toMatchObject({ outcome: 'timeout', status: null });
    controller.abort();
    await expect(pending).rejects.toThrow();
    expect(h.em.meetings()).toHaveLength(0);
  });

  it('timeout releases held requests when the emulator closes', async () => {
    const token = await setup();
    const fault = h.em.faults.add({ path: CREATE, fault: { kind: 'timeout' } });
    const pending = createRequest(token);
    const settled = pending.then(
      () => 'answered',
      () => 'failed',
    );
    await fault.triggered;
    await h.em.close();
    expect(await settled).toBe('failed');
  });

  it('delay waits on the emulator clock, then serves normally', async () => {
    const token = await setup();
    h.em.faults.add({ path: CREATE, fault: { kind: 'delay', ms: 5000 } });
    let done = false;
    const pending = createRequest(token).then((r) => {
      done = true;
      return r.status;
    });
    await until(() => h.clock.pendingTimers() === 1);
    await h.clock.advance(4999);
    expect(done).toBe(false);
    await h.clock.advance(1);
    expect(await pending).toBe(201);
  });

  it('create latency: the meeting is committed only after createLatencyMs, even if the client gave up', async () => {
    const token = await setup({ createLatencyMs: 1000 });
    const controller = new AbortController();
    const pending = createRequest(token, controller.signal);
    await until(() => h.clock.pendingTimers() === 1);
    controller.abort();
    await expect(pending).rejects.toThrow();
    expect(h.em.meetings()).toHaveLength(0);
    await h.clock.advance(1000);
    await until(() => h.em.meetings().length === 1);
    expect((await call(h.em, token, 'GET', '/users/host-a')).status).toBe(200); // other calls: latencyMs (0)
  });
});
