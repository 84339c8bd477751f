import { validateSignature } from '@line/bot-sdk';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { virtualClock } from '../../../src/clock.ts';
import { asRedelivery, followEvent, newestFirst, signLineBody, verifyLineSignature } from '../../../src/sandbox/line/index.ts';
import { ALICE, BOT, call, newKey, SECRET, sdk, sdkError, startWithChannel, STRANGER, text } from './helpers.ts';

interface Received {
  raw: Buffer;
  headers: IncomingHttpHeaders;
  signatureValid: boolean;
}

const receivers: Server[] = [];
afterEach(async () => {
  for (const server of receivers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A tiny webhook receiver: checks the signature over the raw bytes with the SDK, like the real service should. */
async function startReceiver(options: { hang?: boolean } = {}): Promise<{ url: string; got: Received[]; arrived: Promise<void> }> {
  const got: Received[] = [];
  let arrivedResolve = (): void => {};
  const arrived = new Promise<void>((resolve) => (arrivedResolve = resolve));
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const signature = req.headers['x-line-signature'];
      const signatureValid = typeof signature === 'string' && validateSignature(raw, SECRET, signature);
      got.push({ raw, headers: req.headers, signatureValid });
      arrivedResolve();
      if (options.hang) return;
      res.writeHead(signatureValid ? 200 : 401, { 'content-type': 'text/plain' });
      res.end(signatureValid ? 'ok' : 'bad signature');
    });
  });
  receivers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/line`, got, arrived };
}

const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const decodeUlidTime = (ulid: string): number =>
  [...ulid.slice(0, 10)].reduce((acc, c) => acc * 32 + '0123456789ABCDEFGHJKMNPQRSTVWXYZ'.indexOf(c), 0);

describe('webhook signature', () => {
  it("matches LINE's published test vector", () => {
    const body = '{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}';
    expect(signLineBody('8c570fa6dd201bb328f1c1eac23a96d8', body)).toBe('GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=');
    expect(signLineBody('8c570fa6dd201bb328f1c1eac23a96d8', Buffer.from(body))).toBe('GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=');
    expect(verifyLineSignature(SECRET, body, 'GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=')).toBe(true);
    expect(verifyLineSignature(SECRET, `${body} `, 'GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=')).toBe(false);
    expect(verifyLineSignature(SECRET, body, undefined)).toBe(false);
    expect(verifyLineSignature(SECRET, body, 'short')).toBe(false);
  });
});

describe('webhook sender', () => {
  it('a verification request (no events) is byte-identical to the test vector', async () => {
    const line = await startWithChannel();
    const receiver = await startReceiver();
    const result = await line.webhooks.send({ channelId: 'ch1', targetUrl: receiver.url, events: [] });
    expect(result).toMatchObject({ outcome: 'response', status: 200, responseBody: 'ok' });
    expect(receiver.got[0]?.raw.toString()).toBe('{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}');
    expect(receiver.got[0]?.headers['x-line-signature']).toBe('GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=');
  });

  it('signs a follow event and sets the Host header for subdomain routing', async () => {
    const line = await startWithChannel();
    const receiver = await startReceiver();
    const event = line.events.followEvent(STRANGER);
    const result = await line.webhooks.send({ channelId: 'ch1', targetUrl: receiver.url, events: [event], host: 'school-a.line.example.test' });

    expect(result.outcome === 'response' && result.status).toBe(200);
    const got = receiver.got[0];
    expect(got?.signatureValid).toBe(true);
    expect(got?.headers.host).toBe('school-a.line.example.test');
    expect(got?.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(got?.raw.toString() ?? '')).toEqual({ destination: BOT, events: [event] });
    expect(event).toMatchObject({
      type: 'follow',
      mode: 'active',
      source: { type: 'user', userId: STRANGER },
      deliveryContext: { isRedelivery: false },
      follow: { isUnblocked: false },
    });
    expect(event.replyToken).toMatch(/^[0-9a-f]{32}$/);
  });

  it("'invalid' and 'missing' signatures are rejected by a verifying receiver", async () => {
    const line = await startWithChannel();
    const receiver = await startReceiver();
    const invalid = await line.webhooks.send({ channelId: 'ch1', targetUrl: receiver.url, events: [], signature: 'invalid' });
    const missing = await line.webhooks.send({ channelId: 'ch1', targetUrl: receiver.url, events: [], signature: 'missing' });
    expect(invalid.outcome === 'response' && invalid.status).toBe(401);
    expect(missing.outcome === 'response' && missing.status).toBe(401);
    expect(receiver.got[0]?.headers['x-line-signature']).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(receiver.got[1]?.headers['x-line-signature']).toBeUndefined();
  });

  it('escapes emoji as \\u surrogates like LINE; the signature holds only over the raw bytes', async () => {
    const line = await startWithChannel();
    const receiver = await startReceiver();
    await line.webhooks.send({ channelId: 'ch1', targetUrl: receiver.url, events: [line.events.messageEvent(ALICE, '授業 🍎')] });
    const raw = receiver.got[0]?.raw.toString('utf8') ?? '';
    expect(raw).toContain('授業 \\uD83C\\uDF4E');
    expect(receiver.got[0]?.signatureValid).toBe(true);
    const parsed = JSON.parse(raw) as { events: { message: { text: string } }[] };
    expect(parsed.events[0]?.message.text).toBe('授業 🍎');
    // Re-serialising changes the bytes, so a receiver that verifies a re-serialised body fails.
    expect(verifyLineSignature(SECRET, JSON.stringify(parsed), String(receiver.got[0]?.headers['x-line-signature']))).toBe(false);
  });

  it('event builders: ULID ids carrying the event time, redelivery, standby, missing userId', async () => {
    const clock = virtualClock('2026-04-01T09:00:00Z');
    const line = await startWithChannel({ clock });
    const follow = line.events.followEvent(ALICE, { isUnblocked: true });
    expect(follow.timestamp).toBe(Date.parse('2026-04-01T09:00:00Z'));
    expect(follow.webhookEventId).toMatch(ULID_RE);
    expect(decodeUlidTime(follow.webhookEventId)).toBe(follow.timestamp);
    expect(follow.follow.isUnblocked).toBe(true);

    const again = asRedelivery(follow);
    expect(again).toEqual({ ...follow, deliveryContext: { isRedelivery: true } });

    const unfollow = line.events.unfollowEvent(ALICE);
    expect(unfollow).not.toHaveProperty('replyToken');
    expect(line.events.followEvent(ALICE, { mode: 'standby' })).not.toHaveProperty('replyToken');
    expect(line.events.followEvent(null).source).toEqual({ type: 'user' });
    expect(followEvent(ALICE, { timestamp: new Date('2020-01-01T00:00:00Z') }).timestamp).toBe(1577836800000);
    expect(line.events.followEvent(ALICE).webhookEventId).not.toBe(follow.webhookEventId);
  });

  it('follow and unfollow events move the follow state by event time, even when delivered out of order', async () => {
    const clock = virtualClock('2026-04-01T09:00:00Z');
    const line = await startWithChannel({ clock });
    const receiver = await startReceiver();

    await line.webhooks.send({ channelId: 'ch1', targetUrl: receiver.url, events: [line.events.followEvent(STRANGER)] });
    expect(line.isFollowing('ch1', STRANGER)).toBe(true);
    await sdk(line).pushMessage({ to: STRANGER, messages: [text('welcome')] });
    expect(line.received(STRANGER)).toHaveLength(1);

    const t = clock.now().getTime();
    const events = [line.events.unfollowEvent(ALICE, { timestamp: t + 1000 }), line.events.followEvent(ALICE, { timestamp: t + 2000, isUnblocked: true })];
    const results = await line.webhooks.sendSeparately({ channelId: 'ch1', targetUrl: receiver.url, events, order: 'newest-first' });
    expect(results).toHaveLength(2);
    const arrivedTypes = receiver.got.slice(1).map((g) => (JSON.parse(g.raw.toString()) as { events: { type: string }[] }).events[0]?.type);
    expect(arrivedTypes).toEqual(['follow', 'unfollow']);
    // The unfollow is older than the follow, so the user ends up following.
    expect(line.isFollowing('ch1', ALICE)).toBe(true);

    await line.webhooks.send({ channelId: 'ch1', targetUrl: receiver.url, events: [line.events.unfollowEvent(ALICE, { timestamp: t + 3000 })] });
    expect(line.isFollowing('ch1', ALICE)).toBe(false);
    expect(newestFirst(events).map((e) => e.type)).toEqual(['follow', 'unfollow']);
    expect(line.webhooks.sent()).toHaveLength(4);
    expect(line.counters().webhooksSent).toBe(4);
  });

  it('a receiver that does not answer within 2 s (emulator clock) is a timeout', async () => {
    const clock = virtualClock();
    const line = await startWithChannel({ clock });
    const receiver = await startReceiver({ hang: true });
    const pending = line.webhooks.send({ channelId: 'ch1', targetUrl: receiver.url, events: [line.events.followEvent(ALICE)] });
    await receiver.arrived;
    await clock.advance(1999);
    await clock.advance(1);
    expect(await pending).toMatchObject({ outcome: 'timeout' });
    expect(clock.pendingTimers()).toBe(0);
  });

  it('an unreachable receiver is an error outcome', async () => {
    const line = await startWithChannel();
    const receiver = await startReceiver();
    const url = receiver.url;
    await new Promise<void>((resolve) => receivers.pop()?.close(() => resolve()));
    const result = await line.webhooks.send({ channelId: 'ch1', targetUrl: url, events: [] });
    expect(result.outcome).toBe('error');
  });
});

describe('reply tokens from sent events', () => {
  it('reply works once within 60 s, is free, and rejects retry keys', async () => {
    const clock = virtualClock();
    const line = await startWithChannel({ clock });
    line.setMonthlyQuota('ch1', 0);
    const receiver = await startReceiver();
    const [first, second] = [line.events.followEvent(STRANGER), line.events.messageEvent(ALICE, 'hello')];
    await line.webhooks.send({ channelId: 'ch1', targetUrl: receiver.url, events: [first, second] });

    const withKey = await call(line, 'POST', '/v2/bot/message/reply', {
      body: { replyToken: first.replyToken, messages: [{ type: 'text', text: 'welcome' }] },
      headers: { 'x-line-retry-key': newKey() },
    });
    expect(withKey.status).toBe(400);

    const reply = await sdk(line).replyMessage({ replyToken: first.replyToken ?? '', messages: [text('welcome')] });
    expect(reply.sentMessages).toHaveLength(1);
    expect(line.received(STRANGER)).toMatchObject([{ endpoint: 'reply', messages: [{ text: 'welcome' }] }]);
    expect(line.monthlyUsage('ch1')).toBe(0);

    const reused = await sdkError(() => sdk(line).replyMessage({ replyToken: first.replyToken ?? '', messages: [text('again')] }));
    expect(reused.status).toBe(400);
    expect(JSON.parse(reused.body)).toEqual({ message: 'Invalid reply token' });

    await clock.advance(60_000);
    const expired = await sdkError(() => sdk(line).replyMessage({ replyToken: second.replyToken ?? '', messages: [text('late')] }));
    expect(JSON.parse(expired.body)).toEqual({ message: 'Invalid reply token' });
    expect(line.received(ALICE)).toEqual([]);
  });
});
