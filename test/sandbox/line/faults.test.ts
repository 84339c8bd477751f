import { describe, expect, it } from 'vitest';
import { virtualClock } from '../../../src/clock.ts';
import { ALICE, BOB, call, newKey, push, sdk, sdkError, startWithChannel, text } from './helpers.ts';

const PUSH = '/v2/bot/message/push';
const pushBody = { to: ALICE, messages: [{ type: 'text', text: 'Zoom link' }] };

/** True if the promise has settled after letting I/O run for a few turns. */
async function settledSoon(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
  return settled;
}

describe('fault injection', () => {
  it('status fault: 500 once (LINE body and request id), then normal', async () => {
    const line = await startWithChannel();
    const fault = line.faults.add({ method: 'POST', path: PUSH, fault: { status: 500 } });
    const failed = await push(line, pushBody);
    expect(failed.status).toBe(500);
    expect(failed.body).toEqual({ message: 'Internal server error' });
    expect(failed.headers.get('x-line-request-id')).toBeTruthy();
    expect(fault.hits).toBe(1);
    expect(line.received()).toEqual([]);

    expect((await push(line, pushBody)).status).toBe(200);
    expect(line.received(ALICE)).toHaveLength(1);
    expect(line.faults.list()).toEqual([]);
  });

  it('status fault with a custom body, standing until removed; matching by method, path pattern and channel', async () => {
    const line = await startWithChannel();
    const ch2 = line.addChannel({ users: [{ userId: ALICE }] });
    const fault = line.faults.add({
      path: /^\/v2\/bot\/message\//,
      channelId: 'ch1',
      times: Infinity,
      fault: { status: 503, body: { message: 'maintenance' } },
    });
    expect((await push(line, pushBody)).status).toBe(503);
    expect((await push(line, pushBody)).body).toEqual({ message: 'maintenance' });
    expect((await call(line, 'GET', '/v2/bot/info')).status).toBe(200);
    expect((await call(line, 'POST', PUSH, { body: pushBody, token: ch2.accessToken })).status).toBe(200);
    fault.remove();
    expect((await push(line, pushBody)).status).toBe(200);
    expect(fault.hits).toBe(2);
  });

  it('drop: the connection closes without an answer and nothing is sent', async () => {
    const line = await startWithChannel();
    line.faults.add({ path: PUSH, fault: { kind: 'drop' } });
    await expect(sdk(line).pushMessage({ to: ALICE, messages: [text('x')] })).rejects.toThrow(TypeError);
    expect(line.received()).toEqual([]);
    expect(line.requests()[0]).toMatchObject({ outcome: 'dropped', status: null, fault: 'drop' });
  });

  it('timeout: the request is held until the client gives up; nothing is sent', async () => {
    const line = await startWithChannel();
    const fault = line.faults.add({ path: PUSH, fault: { kind: 'timeout' } });
    const abort = new AbortController();
    const pending = call(line, 'POST', PUSH, { body: pushBody, signal: abort.signal });
    await fault.triggered;
    expect(await settledSoon(pending)).toBe(false);
    abort.abort();
    await expect(pending).rejects.toThrow(/abort/i);
    expect(line.received()).toEqual([]);
    expect(line.requests()[0]).toMatchObject({ outcome: 'timeout', status: null });
  });

  it('timeout: close() does not wait for a held request', async () => {
    const line = await startWithChannel();
    const fault = line.faults.add({ path: PUSH, fault: { kind: 'timeout' } });
    const pending = push(line, pushBody);
    await fault.triggered;
    await line.close();
    await expect(pending).rejects.toThrow();
  });

  it('delay: answers only after the delay has passed on the emulator clock', async () => {
    const clock = virtualClock();
    const line = await startWithChannel({ clock });
    const fault = line.faults.add({ path: PUSH, fault: { kind: 'delay', ms: 5000 } });
    const pending = push(line, pushBody);
    await fault.triggered;
    expect(await settledSoon(pending)).toBe(false);
    await clock.advance(4999);
    expect(await settledSoon(pending)).toBe(false);
    expect(line.received()).toEqual([]);
    await clock.advance(1);
    expect((await pending).status).toBe(200);
    expect(line.received(ALICE)[0]?.at).toEqual(new Date('2026-01-01T00:00:05Z'));
  });

  it('latencyMs delays every LINE response on the clock', async () => {
    const clock = virtualClock();
    const line = await startWithChannel({ clock, latencyMs: 200 });
    const pending = call(line, 'GET', '/v2/bot/info');
    expect(await settledSoon(pending)).toBe(false);
    await clock.advance(200);
    expect((await pending).status).toBe(200);
  });

  it('after-accept-drop: accepted and delivered, the client sees a network error, and a retry with the same key resolves it as 409', async () => {
    const line = await startWithChannel();
    line.faults.add({ path: PUSH, fault: { kind: 'after-accept-drop' } });
    const client = sdk(line);
    const key = newKey();

    await expect(client.pushMessage({ to: ALICE, messages: [text('Zoom link')] }, key)).rejects.toThrow(TypeError);
    const delivered = line.received(ALICE);
    expect(delivered).toHaveLength(1);
    expect(line.requests()[0]).toMatchObject({ outcome: 'dropped', status: 200, fault: 'after-accept-drop' });

    const conflict = await sdkError(() => client.pushMessage({ to: ALICE, messages: [text('Zoom link')] }, key));
    expect(conflict.status).toBe(409);
    expect(conflict.headers.get('x-line-accepted-request-id')).toBe(delivered[0]?.requestId);
    expect(JSON.parse(conflict.body).sentMessages).toEqual(delivered[0]?.sentMessages);
    expect(line.received(ALICE)).toHaveLength(1);
  });

  it('after-accept-drop without a retry key: the retry delivers a duplicate (why keys must be on the first attempt)', async () => {
    const line = await startWithChannel();
    line.faults.add({ path: PUSH, fault: { kind: 'after-accept-drop' } });
    await expect(sdk(line).pushMessage({ to: BOB, messages: [text('x')] })).rejects.toThrow(TypeError);
    await sdk(line).pushMessage({ to: BOB, messages: [text('x')] });
    expect(line.received(BOB)).toHaveLength(2);
  });

  it('a 500 before acceptance leaves the key free: the retry delivers once', async () => {
    const line = await startWithChannel();
    line.faults.add({ path: PUSH, fault: { status: 500 } });
    const key = newKey();
    expect((await sdkError(() => sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }, key))).status).toBe(500);
    await sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }, key);
    expect(line.received(ALICE)).toHaveLength(1);
    expect(line.counters()).toMatchObject({ faults: 1, byStatus: { '500': 1, '200': 1 } });
  });
});
