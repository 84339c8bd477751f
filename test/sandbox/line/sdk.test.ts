import { describe, expect, it } from 'vitest';
import { ALICE, BOB, BOT, call, CAROL, sdk, sdkError, startWithChannel, STRANGER, text, TOKEN, UUID_RE } from './helpers.ts';
import { LINE_ERROR_MESSAGES } from '../../../src/sandbox/line/index.ts';

describe('LINE emulator with the official SDK', () => {
  it('push delivers to the user and answers sentMessages with x-line-request-id', async () => {
    const line = await startWithChannel();
    const { httpResponse, body } = await sdk(line).pushMessageWithHttpInfo({ to: ALICE, messages: [text('Class at 10:00'), text('see you')] });

    const requestId = httpResponse.headers.get('x-line-request-id');
    expect(requestId).toMatch(UUID_RE);
    expect(body.sentMessages).toHaveLength(2);
    expect(body.sentMessages[0]?.id).toMatch(/^\d{18,}$/);
    expect(body.sentMessages[0]?.quoteToken).toBeTruthy();

    const received = line.received(ALICE);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({
      channelId: 'ch1',
      to: ALICE,
      endpoint: 'push',
      requestId,
      retryKey: null,
      notificationDisabled: false,
      messages: [{ type: 'text', text: 'Class at 10:00' }, { type: 'text', text: 'see you' }],
      sentMessages: body.sentMessages,
    });
    // Recorded messages are a discriminated union, so tests can narrow on `type`.
    const first = received[0]?.messages[0];
    expect(first?.type === 'text' ? first.text : null).toBe('Class at 10:00');
    expect(line.received(BOB)).toEqual([]);
  });

  it('multicast delivers one record per recipient and answers {}', async () => {
    const line = await startWithChannel();
    const { httpResponse, body } = await sdk(line).multicastWithHttpInfo({ to: [ALICE, BOB, ALICE], messages: [text('hello class')] });
    expect(body).toEqual({});
    const requestId = httpResponse.headers.get('x-line-request-id');
    expect(line.received().map((r) => [r.to, r.endpoint, r.requestId])).toEqual([
      [ALICE, 'multicast', requestId],
      [BOB, 'multicast', requestId],
    ]);
    expect(line.received(CAROL)).toEqual([]);
  });

  it('a blocked user still gets 200 on push, but nothing is received and nothing counted', async () => {
    const line = await startWithChannel({});
    line.setMonthlyQuota('ch1', 10);
    line.unfollow('ch1', BOB);
    const res = await sdk(line).pushMessage({ to: BOB, messages: [text('hi')] });
    expect(res.sentMessages).toHaveLength(1);
    await sdk(line).multicast({ to: [BOB, ALICE], messages: [text('hi')] });
    expect(line.received(BOB)).toEqual([]);
    expect(line.received(ALICE)).toHaveLength(1);
    expect(await sdk(line).getMessageQuotaConsumption()).toEqual({ totalUsage: 1 });
    expect(line.counters()).toMatchObject({ accepted: 2, delivered: 1, suppressed: 2 });
  });

  it('unknown users: ignored by default, rejected or delivered by option', async () => {
    const ignore = await startWithChannel();
    await sdk(ignore).pushMessage({ to: STRANGER, messages: [text('x')] });
    expect(ignore.received(STRANGER)).toEqual([]);

    const reject = await startWithChannel({ unknownUsers: 'reject' });
    const err = await sdkError(() => sdk(reject).pushMessage({ to: STRANGER, messages: [text('x')] }));
    expect(err.status).toBe(400);
    expect(JSON.parse(err.body)).toEqual({ message: 'Failed to send messages' });

    const deliver = await startWithChannel({ unknownUsers: 'deliver' });
    await sdk(deliver).pushMessage({ to: STRANGER, messages: [text('x')] });
    expect(deliver.received(STRANGER)).toHaveLength(1);
  });

  it('profile: 200 for a follower, 404 for blocked or unknown users', async () => {
    const line = await startWithChannel();
    expect(await sdk(line).getProfile(ALICE)).toEqual({ userId: ALICE, displayName: 'Alice', language: 'ja' });
    line.unfollow('ch1', ALICE);
    for (const userId of [ALICE, STRANGER]) {
      const err = await sdkError(() => sdk(line).getProfile(userId));
      expect(err.status).toBe(404);
      expect(err.headers.get('x-line-request-id')).toMatch(UUID_RE);
    }
    line.follow('ch1', STRANGER, 'Newcomer');
    expect(await sdk(line).getProfile(STRANGER)).toEqual({ userId: STRANGER, displayName: 'Newcomer' });
  });

  it('bot info gives the bot user id (the webhook destination)', async () => {
    const line = await startWithChannel();
    const info = await sdk(line).getBotInfo();
    expect(info).toMatchObject({ userId: BOT, chatMode: 'bot', markAsReadMode: 'auto' });
    expect(info.basicId).toMatch(/^@[a-z0-9]{8}$/);
  });

  it('quota endpoints: none by default, limited when set', async () => {
    const line = await startWithChannel();
    expect(await sdk(line).getMessageQuota()).toEqual({ type: 'none' });
    line.setMonthlyQuota('ch1', 1000);
    expect(await sdk(line).getMessageQuota()).toEqual({ type: 'limited', value: 1000 });
    await sdk(line).multicast({ to: [ALICE, BOB, CAROL], messages: [text('a'), text('b'), text('c')] });
    // Counted per recipient, not per message object.
    expect(await sdk(line).getMessageQuotaConsumption()).toEqual({ totalUsage: 3 });
  });

  it('401 for an unknown token and for a missing Authorization header, with LINE bodies', async () => {
    const line = await startWithChannel();
    const err = await sdkError(() => sdk(line, 'not-a-token').pushMessage({ to: ALICE, messages: [text('x')] }));
    expect(err.status).toBe(401);
    expect(JSON.parse(err.body)).toEqual({ message: LINE_ERROR_MESSAGES.invalidToken });
    expect(err.headers.get('x-line-request-id')).toMatch(UUID_RE);

    const missing = await call(line, 'GET', '/v2/bot/info', { token: null });
    expect(missing.status).toBe(401);
    expect(missing.body).toEqual({ message: LINE_ERROR_MESSAGES.missingAuth });
    expect(line.received()).toEqual([]);
  });

  it('a channel added at run time gets its own token and generated ids', async () => {
    const line = await startWithChannel();
    const ch2 = line.addChannel({ users: [{ userId: ALICE }] });
    expect(ch2.botUserId).toMatch(/^U[0-9a-f]{32}$/);
    expect(ch2.channelSecret).toMatch(/^[0-9a-f]{32}$/);
    expect(ch2.accessToken).not.toBe(TOKEN);
    await sdk(line, ch2.accessToken).pushMessage({ to: ALICE, messages: [text('from ch2')] });
    expect(line.received(ALICE, ch2.channelId)).toHaveLength(1);
    expect(line.received(ALICE, 'ch1')).toEqual([]);
    expect(() => line.addChannel({ accessToken: TOKEN })).toThrow(/token/);
  });

  it('unknown paths answer 404 with x-line-request-id', async () => {
    const line = await startWithChannel();
    const res = await call(line, 'GET', '/v2/bot/nothing');
    expect(res.status).toBe(404);
    expect(res.headers.get('x-line-request-id')).toMatch(UUID_RE);
  });

  it('logs every request with its id, status and channel', async () => {
    const line = await startWithChannel();
    await sdk(line).getBotInfo();
    await sdkError(() => sdk(line, 'bad').getBotInfo());
    expect(line.requests().map((r) => [r.method, r.path, r.endpoint, r.channelId, r.status])).toEqual([
      ['GET', '/v2/bot/info', 'botInfo', 'ch1', 200],
      ['GET', '/v2/bot/info', 'botInfo', null, 401],
    ]);
    expect(line.counters()).toMatchObject({ requests: 2, byStatus: { '200': 1, '401': 1 }, byEndpoint: { botInfo: 2 } });
  });
});
