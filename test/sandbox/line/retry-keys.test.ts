import { describe, expect, it } from 'vitest';
import { virtualClock } from '../../../src/clock.ts';
import { LINE_ERROR_MESSAGES } from '../../../src/sandbox/line/index.ts';
import { ALICE, BOB, call, newKey, push, sdk, sdkError, startWithChannel, text, UUID_RE } from './helpers.ts';

describe('X-Line-Retry-Key', () => {
  it('a repeated push key answers 409 with both headers and the original sentMessages, and delivers once', async () => {
    const line = await startWithChannel();
    const client = sdk(line);
    const key = newKey();
    const first = await client.pushMessageWithHttpInfo({ to: ALICE, messages: [text('Zoom link')] }, key);
    const acceptedId = first.httpResponse.headers.get('x-line-request-id');

    const err = await sdkError(() => client.pushMessage({ to: ALICE, messages: [text('Zoom link')] }, key));
    expect(err.status).toBe(409);
    expect(err.headers.get('x-line-accepted-request-id')).toBe(acceptedId);
    const retryRequestId = err.headers.get('x-line-request-id');
    expect(retryRequestId).toMatch(UUID_RE);
    expect(retryRequestId).not.toBe(acceptedId);
    expect(JSON.parse(err.body)).toEqual({ message: 'The retry key is already accepted', sentMessages: first.body.sentMessages });

    expect(line.received(ALICE)).toHaveLength(1);
    expect(line.received(ALICE)[0]?.retryKey).toBe(key);
    expect(line.requests().at(-1)).toMatchObject({ status: 409, acceptedRequestId: acceptedId });
    expect(line.counters().conflicts).toBe(1);
  });

  it('a repeated multicast key answers 409 without sentMessages', async () => {
    const line = await startWithChannel();
    const key = newKey();
    const first = await sdk(line).multicastWithHttpInfo({ to: [ALICE, BOB], messages: [text('x')] }, key);
    const err = await sdkError(() => sdk(line).multicast({ to: [ALICE, BOB], messages: [text('x')] }, key));
    expect(err.status).toBe(409);
    expect(err.headers.get('x-line-accepted-request-id')).toBe(first.httpResponse.headers.get('x-line-request-id'));
    expect(JSON.parse(err.body)).toEqual({ message: 'The retry key is already accepted' });
    expect(line.received()).toHaveLength(2);
  });

  it('a key that is not a UUID is rejected with 400 and nothing is sent', async () => {
    const line = await startWithChannel();
    // The SDK's own tests use this value; the SDK does not check the format.
    const err = await sdkError(() => sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }, 'KEYKEYKEYKEY'));
    expect(err.status).toBe(400);
    expect(JSON.parse(err.body)).toEqual({ message: LINE_ERROR_MESSAGES.invalidRetryKey });
    expect(line.received()).toEqual([]);
  });

  it('a key on an endpoint that does not support retry keys is rejected with 400', async () => {
    const line = await startWithChannel();
    for (const path of ['/v2/bot/message/quota', '/v2/bot/info', `/v2/bot/profile/${ALICE}`]) {
      const res = await call(line, 'GET', path, { headers: { 'x-line-retry-key': newKey() } });
      expect(res.status, path).toBe(400);
      expect(res.body).toEqual({ message: LINE_ERROR_MESSAGES.retryKeyNotSupported });
    }
  });

  it('only accepted requests consume a key: a rejected body can be fixed and retried under the same key', async () => {
    const line = await startWithChannel();
    const key = newKey();
    const bad = await push(line, { to: ALICE, messages: [] }, { 'x-line-retry-key': key });
    expect(bad.status).toBe(400);
    const good = await push(line, { to: ALICE, messages: [{ type: 'text', text: 'x' }] }, { 'x-line-retry-key': key });
    expect(good.status).toBe(200);
    expect(line.received(ALICE)).toHaveLength(1);
  });

  it('keys are per channel', async () => {
    const line = await startWithChannel();
    const ch2 = line.addChannel({ users: [{ userId: ALICE }] });
    const key = newKey();
    await sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }, key);
    await sdk(line, ch2.accessToken).pushMessage({ to: ALICE, messages: [text('x')] }, key);
    expect(line.received(ALICE)).toHaveLength(2);
  });

  it('after 24 hours the same key is a new request (and delivers again)', async () => {
    const clock = virtualClock();
    const line = await startWithChannel({ clock });
    const key = newKey();
    await sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }, key);

    await clock.advance(24 * 60 * 60 * 1000 - 1);
    expect((await sdkError(() => sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }, key))).status).toBe(409);

    await clock.advance(1);
    await sdk(line).pushMessage({ to: ALICE, messages: [text('x')] }, key);
    expect(line.received(ALICE)).toHaveLength(2);
    expect(line.retryKeyCount()).toBe(1);
  });
});
