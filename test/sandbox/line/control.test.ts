import { describe, expect, it } from 'vitest';
import { ALICE, call, push, sdk, startWithChannel, STRANGER, text } from './helpers.ts';
import type { LineEmulator } from '../../../src/sandbox/line/index.ts';

const control = (line: LineEmulator, method: string, path: string, body?: unknown) =>
  call(line, method, `/_emulator${path}`, { token: null, ...(body !== undefined && { body }) });

describe('HTTP control routes under /_emulator', () => {
  it('channels, follow, received, requests and counters for use from another process', async () => {
    const line = await startWithChannel();
    const added = await control(line, 'POST', '/channels', { channelId: 'ch2', accessToken: 'tok2', monthlyQuota: 10 });
    expect(added.status).toBe(200);
    expect(added.body).toMatchObject({ channelId: 'ch2', accessToken: 'tok2', monthlyQuota: 10 });
    expect((await control(line, 'POST', '/follow', { channelId: 'ch2', userId: STRANGER, displayName: 'S' })).status).toBe(200);

    await sdk(line, 'tok2').pushMessage({ to: STRANGER, messages: [text('hi')] });
    const received = await call(line, 'GET', `/_emulator/received?userId=${STRANGER}&channelId=ch2`, { token: null });
    expect(received.body).toMatchObject([{ channelId: 'ch2', to: STRANGER, endpoint: 'push', messages: [{ text: 'hi' }] }]);

    expect((await control(line, 'GET', '/requests')).body).toMatchObject([{ path: '/v2/bot/message/push', status: 200, channelId: 'ch2' }]);
    expect((await control(line, 'GET', '/counters')).body).toMatchObject({ requests: 1, delivered: 1 });
    expect(((await control(line, 'GET', '/channels')).body as unknown[]).length).toBe(2);

    expect((await control(line, 'POST', '/unfollow', { channelId: 'ch2', userId: STRANGER })).status).toBe(200);
    expect(line.isFollowing('ch2', STRANGER)).toBe(false);
    expect((await control(line, 'POST', '/quota', { channelId: 'ch2', totalUsage: 7 })).body).toEqual({ monthlyQuota: 10, totalUsage: 7 });
  });

  it('faults over HTTP, including a standing fault by path pattern', async () => {
    const line = await startWithChannel();
    const added = await control(line, 'POST', '/faults', { pathPattern: '^/v2/bot/message/', times: 'always', fault: { status: 500 } });
    expect(added.body).toMatchObject({ id: expect.any(Number) });
    expect((await push(line, { to: ALICE, messages: [{ type: 'text', text: 'x' }] })).status).toBe(500);
    expect((await push(line, { to: ALICE, messages: [{ type: 'text', text: 'x' }] })).status).toBe(500);
    expect((await control(line, 'GET', '/faults')).body).toMatchObject([{ hits: 2, path: '/^\\/v2\\/bot\\/message\\//' }]);
    await control(line, 'DELETE', '/faults');
    expect((await push(line, { to: ALICE, messages: [{ type: 'text', text: 'x' }] })).status).toBe(200);
  });

  it('webhooks can be sent over HTTP', async () => {
    const line = await startWithChannel();
    const target = await startWithChannel();
    // Any HTTP endpoint will do as a target; the other emulator answers 404 on an unknown path.
    const sent = await control(line, 'POST', '/webhooks/send', { channelId: 'ch1', targetUrl: `${target.url}/callback`, events: [line.events.followEvent(STRANGER)] });
    expect(sent.body).toMatchObject({ outcome: 'response', status: 404 });
    expect(line.isFollowing('ch1', STRANGER)).toBe(true);
  });

  it('bad input answers 400 with the reason; unknown routes 404', async () => {
    const line = await startWithChannel();
    expect((await control(line, 'POST', '/follow', { channelId: 'ch1', userId: 'nope' })).status).toBe(400);
    const unknownChannel = await control(line, 'POST', '/follow', { channelId: 'zz', userId: ALICE });
    expect(unknownChannel.status).toBe(400);
    expect(unknownChannel.body).toEqual({ message: 'LINE emulator: unknown channel zz' });
    expect((await control(line, 'GET', '/nothing')).status).toBe(404);
  });

  it('reset restores the starting channels and clears records, faults, keys, buckets and usage', async () => {
    const line = await startWithChannel({ rateLimits: { push: 1 } });
    const initial = line.channels();
    line.addChannel({ channelId: 'extra' });
    line.unfollow('ch1', ALICE);
    line.setMonthlyQuota('ch1', 5);
    line.follow('ch1', STRANGER);
    await sdk(line).pushMessage({ to: STRANGER, messages: [text('x')] }, crypto.randomUUID());
    line.faults.add({ fault: { status: 500 }, times: Infinity });

    expect((await control(line, 'POST', '/reset')).status).toBe(200);
    expect(line.channels()).toEqual(initial);
    expect(line.isFollowing('ch1', ALICE)).toBe(true);
    expect(line.isFollowing('ch1', STRANGER)).toBe(false);
    expect(line.received()).toEqual([]);
    expect(line.requests()).toEqual([]);
    expect(line.faults.list()).toEqual([]);
    expect(line.retryKeyCount()).toBe(0);
    expect(line.monthlyUsage('ch1')).toBe(0);
    // The push bucket was emptied above; after reset it is full again.
    await sdk(line).pushMessage({ to: ALICE, messages: [text('x')] });
    expect(line.received(ALICE)).toHaveLength(1);
  });
});
