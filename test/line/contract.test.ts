import { messagingApi } from '@line/bot-sdk';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock.ts';
import { callLine } from '../../src/line/client.ts';
import { classifySend, type ClassifyContext } from '../../src/line/outcomes.ts';
import { startLineEmulator, type LineEmulator } from '../../src/sandbox/line/index.ts';

/**
 * The client's contract: what our wrapper makes of LINE's answers. Runs against the emulator by
 * default; with LINE_CONTRACT_TOKEN (a channel access token) and LINE_CONTRACT_USER_ID (a user who
 * follows that channel) it runs against the real LINE API and sends that user a few messages.
 */
const REAL = process.env.LINE_CONTRACT_TOKEN && process.env.LINE_CONTRACT_USER_ID ? { token: process.env.LINE_CONTRACT_TOKEN, userId: process.env.LINE_CONTRACT_USER_ID } : undefined;
const EMULATED_USER = `U${'5'.repeat(32)}`;

describe(`LINE client contract (${REAL ? 'real LINE API' : 'emulator'})`, () => {
  let emulator: LineEmulator | undefined;
  let client: messagingApi.MessagingApiClient;
  let to: string;
  const clock = systemClock();
  const ctx = (): ClassifyContext => ({ attempt: 1, backoff: { baseDelayMs: 1000, maxDelayMs: 60_000 }, now: clock.now(), pauseMs: 3_600_000 });
  const call = <T>(fn: () => Promise<{ httpResponse: Response; body: T }>) => callLine(clock, 10_000, fn);

  beforeAll(async () => {
    if (REAL) {
      client = new messagingApi.MessagingApiClient({ channelAccessToken: REAL.token, baseURL: process.env.LINE_CONTRACT_BASE_URL ?? 'https://api.line.me' });
      to = REAL.userId;
      return;
    }
    emulator = await startLineEmulator({ channels: [{ accessToken: 'contract-token', users: [{ userId: EMULATED_USER, displayName: 'Contract' }] }] });
    client = new messagingApi.MessagingApiClient({ channelAccessToken: 'contract-token', baseURL: emulator.url });
    to = EMULATED_USER;
  });
  afterAll(async () => {
    await emulator?.close();
  });

  it('push: accepted once per retry key, the repeat answers 409 with the accepted request id', async () => {
    const key = randomUUID();
    const body = { to, messages: [{ type: 'text' as const, text: `contract test ${key.slice(0, 8)}` }] };
    const first = await call(() => client.pushMessageWithHttpInfo(body, key));
    const sent = classifySend(first, ctx());
    expect(sent).toMatchObject({ kind: 'sent', requestId: expect.any(String), sentMessageIds: [expect.stringMatching(/^\d+$/)] });
    const again = classifySend(await call(() => client.pushMessageWithHttpInfo(body, key)), ctx());
    expect(again).toEqual({ kind: 'duplicate', requestId: expect.any(String), acceptedRequestId: sent.kind === 'sent' ? sent.requestId : 'x' });
  });

  it('multicast: the same, without message ids', async () => {
    const key = randomUUID();
    const body = { to: [to], messages: [{ type: 'text' as const, text: 'contract test (multicast)' }] };
    expect(classifySend(await call(() => client.multicastWithHttpInfo(body, key)), ctx())).toMatchObject({ kind: 'sent', sentMessageIds: [] });
    expect(classifySend(await call(() => client.multicastWithHttpInfo(body, key)), ctx())).toMatchObject({ kind: 'duplicate' });
  });

  it('a retry key that is not a UUID and an invalid message are final 400s', async () => {
    const notUuid = await call(() => client.pushMessageWithHttpInfo({ to, messages: [{ type: 'text', text: 'x' }] }, 'KEYKEYKEYKEY'));
    expect(classifySend(notUuid, ctx())).toMatchObject({ kind: 'final', status: 400 });
    const empty = await call(() => client.pushMessageWithHttpInfo({ to, messages: [{ type: 'text', text: '' }] }, randomUUID()));
    expect(classifySend(empty, ctx())).toMatchObject({ kind: 'final', status: 400, requestId: expect.any(String) });
  });

  it('profile and bot info answer with what the webhook handler relies on', async () => {
    const profile = await call(() => client.getProfileWithHttpInfo(to));
    expect(profile).toMatchObject({ kind: 'response', status: 200, body: { userId: to, displayName: expect.any(String) } });
    const info = await call(() => client.getBotInfoWithHttpInfo());
    expect(info).toMatchObject({ kind: 'response', status: 200, body: { userId: expect.stringMatching(/^U[0-9a-f]{32}$/) } });
  });

  it('a wrong token is a 401, which pauses the channel', async () => {
    const bad = new messagingApi.MessagingApiClient({ channelAccessToken: 'not-a-token', baseURL: emulator?.url ?? process.env.LINE_CONTRACT_BASE_URL ?? 'https://api.line.me' });
    expect(classifySend(await call(() => bad.getBotInfoWithHttpInfo()), ctx())).toMatchObject({ kind: 'channelPaused', reason: expect.stringContaining('LINE 401') });
  });
});
