import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { createLineClient, type LineCall } from '../../src/line/client.ts';
import { classifySend, type ClassifyContext } from '../../src/line/outcomes.ts';
import { startLineEmulator, type LineEmulator } from '../../src/sandbox/line/index.ts';

/**
 * The client's contract: what our client and its classification make of LINE's answers. Runs against the emulator by
 * default; with LINE_CONTRACT_TOKEN (a channel access token) and LINE_CONTRACT_USER_ID (a user who
 * follows that channel) it runs against the real LINE API and sends that user a few messages.
 */
const REAL = process.env.LINE_CONTRACT_TOKEN && process.env.LINE_CONTRACT_USER_ID ? { token: process.env.LINE_CONTRACT_TOKEN, userId: process.env.LINE_CONTRACT_USER_ID } : undefined;
const EMULATED_USER = `U${'5'.repeat(32)}`;

describe(`LINE client contract (${REAL ? 'real LINE API' : 'emulator'})`, () => {
  let emulator: LineEmulator | undefined;
  let base: string;
  let token: string;
  let to: string;
  const clock = systemClock();
  const client = createLineClient(clock);
  const ctx = (): ClassifyContext => ({ attempt: 1, backoff: { baseDelayMs: 1000, maxDelayMs: 60_000 }, now: clock.now(), pauseMs: 3_600_000 });
  const call = (request: LineCall, as = token) => client.call(base, as, request, 10_000);
  const push = (body: unknown, retryKey: string): LineCall => ({ method: 'POST', path: '/v2/bot/message/push', body, retryKey });
  const multicast = (body: unknown, retryKey: string): LineCall => ({ method: 'POST', path: '/v2/bot/message/multicast', body, retryKey });
  const botInfo: LineCall = { method: 'GET', path: '/v2/bot/info' };

  beforeAll(async () => {
    if (REAL) {
      base = process.env.LINE_CONTRACT_BASE_URL ?? 'https://api.line.me';
      token = REAL.token;
      to = REAL.userId;
      return;
    }
    emulator = await startLineEmulator({ channels: [{ accessToken: 'contract-token', users: [{ userId: EMULATED_USER, displayName: 'Contract' }] }] });
    base = emulator.url;
    token = 'contract-token';
    to = EMULATED_USER;
  });
  afterAll(async () => {
    await client.close();
    await emulator?.close();
  });

  it('push: accepted once per retry key, the repeat answers 409 with the accepted request id', async () => {
    const key = randomUUID();
    const body = { to, messages: [{ type: 'text' as const, text: `contract test ${key.slice(0, 8)}` }] };
    const first = await call(push(body, key));
    const sent = classifySend(first, ctx());
    expect(sent).toMatchObject({ kind: 'sent', requestId: expect.any(String), sentMessageIds: [expect.stringMatching(/^\d+$/)] });
    const again = classifySend(await call(push(body, key)), ctx());
    expect(again).toEqual({ kind: 'duplicate', requestId: expect.any(String), acceptedRequestId: sent.kind === 'sent' ? sent.requestId : 'x' });
  });

  it('multicast: the same, without message ids', async () => {
    const key = randomUUID();
    const body = { to: [to], messages: [{ type: 'text' as const, text: 'contract test (multicast)' }] };
    expect(classifySend(await call(multicast(body, key)), ctx())).toMatchObject({ kind: 'sent', sentMessageIds: [] });
    expect(classifySend(await call(multicast(body, key)), ctx())).toMatchObject({ kind: 'duplicate' });
  });

  it('a retry key that is not a UUID and an invalid message are final 400s', async () => {
    const notUuid = await call(push({ to, messages: [{ type: 'text', text: 'x' }] }, 'KEYKEYKEYKEY'));
    expect(classifySend(notUuid, ctx())).toMatchObject({ kind: 'final', status: 400 });
    const empty = await call(push({ to, messages: [{ type: 'text', text: '' }] }, randomUUID()));
    expect(classifySend(empty, ctx())).toMatchObject({ kind: 'final', status: 400, requestId: expect.any(String) });
  });

  it('profile and bot info answer with what the webhook handler relies on', async () => {
    const profile = await call({ method: 'GET', path: `/v2/bot/profile/${to}` });
    expect(profile).toMatchObject({ kind: 'response', status: 200, body: { userId: to, displayName: expect.any(String) } });
    const info = await call(botInfo);
    expect(info).toMatchObject({ kind: 'response', status: 200, body: { userId: expect.stringMatching(/^U[0-9a-f]{32}$/) } });
  });

  it('a wrong token is a 401, which pauses the channel', async () => {
    expect(classifySend(await call(botInfo, 'not-a-token'), ctx())).toMatchObject({ kind: 'channelPaused', reason: expect.stringContaining('LINE 401') });
  });
});
