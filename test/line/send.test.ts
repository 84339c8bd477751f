import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { updateLineChannel } from '../../src/line/channels.ts';
import { IMAGEMAP_WIDTHS, textMessage, type OutMessage } from '../../src/line/messages.ts';
import { buildNotification } from '../../src/line/notifications.ts';
import { lineRequestsForKey } from '../../src/line/requests.ts';
import { sendPush } from '../../src/line/send.ts';
import { LINE_ERROR_MESSAGES } from '../../src/sandbox/line/index.ts';
import { dialects } from '../support/databases.ts';
import { ALICE, BOB, countRows, createDelivery, openLineHarness, PUBLIC_BASE_URL, type LineHarness } from './support.ts';

const PUSH = '/v2/bot/message/push';
const JOIN = 'https://zoom.us/j/81234567890?pwd=abc';

let h: LineHarness;
afterEach(async () => {
  await h.close();
});

/** What the delivery engine will do for one meeting-URL delivery: build from the schedule and config, then push. */
async function notify(d: { memberId: number; retryKey: string }, attempt = 1) {
  const built = buildNotification(h.config.current(), h.line.imagemap.current(), {
    kind: 'meeting_url',
    title: '英文會話 A1',
    startsAt: new Date('2026-12-01T11:00:00Z'),
    endsAt: new Date('2026-12-01T11:50:00Z'),
    url: JOIN,
  });
  if (!built.ok) throw new Error(built.reason);
  return sendPush(h.line.send, { memberId: d.memberId, retryKey: d.retryKey, messages: built.messages, attempt });
}

const push = (memberId: number, retryKey: string, messages: OutMessage[] = [textMessage('上課囉')], attempt = 1) =>
  sendPush(h.line.send, { memberId, retryKey, messages, attempt });

/** Waits for a condition that other I/O makes true, without sleeping on wall time. */
async function untilAsync(condition: () => Promise<boolean> | boolean, tries = 2000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await condition()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error('condition not met');
}
const until = (condition: () => boolean): Promise<void> => untilAsync(condition);

describe.each(dialects)('sending through LINE on %s', (dialect) => {
  it('text delivery: the local time and the link, with the stored retry key; x-line-request-id recorded', async () => {
    h = await openLineHarness(dialect, { config: { notifications: { meetingUrl: { format: 'text' } } } });
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    const outcome = await notify(d);
    const received = h.emulator.received(ALICE);
    expect(received).toHaveLength(1);
    expect(received[0]).toMatchObject({
      channelId: h.a.emulatorId,
      endpoint: 'push',
      retryKey: d.retryKey,
      messages: [{ type: 'text', text: `【上課提醒】英文會話 A1\n時間：12/1（二） 19:00–19:50\n請點以下連結進入 Zoom 教室：\n${JOIN}` }],
    });
    expect(outcome).toEqual({ kind: 'sent', requestId: received[0]?.requestId, sentMessageIds: received[0]?.sentMessages?.map((m) => m.id) });
    // A success's request id is on its delivery; the request log keeps the calls that went wrong.
    expect(await lineRequestsForKey(h.database.db, d.retryKey)).toEqual([]);
  });

  it('line.requestLog all: a success is logged too, with its x-line-request-id', async () => {
    h = await openLineHarness(dialect, { config: { line: { requestLog: 'all' } } });
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    const outcome = await notify(d);
    const received = h.emulator.received(ALICE);
    expect(outcome).toMatchObject({ kind: 'sent', requestId: received[0]?.requestId });
    expect(await lineRequestsForKey(h.database.db, d.retryKey)).toEqual([
      { endpoint: 'push', retryKey: d.retryKey, status: 200, requestId: received[0]?.requestId, acceptedRequestId: null, outcome: 'sent', error: null },
    ]);
  });

  it('imagemap delivery: baseUrl under the public URL, the link as the tap target, all five widths served', async () => {
    h = await openLineHarness(dialect);
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    expect(await notify(d)).toMatchObject({ kind: 'sent' });
    const message = h.emulator.received(ALICE)[0]?.messages[0];
    if (message?.type !== 'imagemap') throw new Error(`expected an imagemap, got ${JSON.stringify(message)}`);
    const hash = h.line.imagemap.current()?.hash ?? '';
    expect(message).toMatchObject({
      baseUrl: `${PUBLIC_BASE_URL}/imagemap/${hash}`,
      altText: `【上課提醒】英文會話 A1 12/1（二） 19:00 開課，進入教室：${JOIN}`,
      baseSize: { width: 1040, height: 520 },
      actions: [{ type: 'uri', linkUri: JOIN, area: { x: 0, y: 0, width: 1040, height: 520 } }],
    });

    const path = new URL(message.baseUrl).pathname;
    for (const width of IMAGEMAP_WIDTHS) {
      const response = await h.app.inject({ method: 'GET', url: `${path}/${width}` });
      expect(response.statusCode, String(width)).toBe(200);
      expect(response.headers['content-type']).toBe('image/png');
      expect(response.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      const meta = await sharp(response.rawPayload).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['png', width, Math.round((520 * width) / 1040)]);
      // Immutable per path: the same bytes every time.
      expect((await h.app.inject({ method: 'GET', url: `${path}/${width}` })).rawPayload.equals(response.rawPayload)).toBe(true);
    }
    for (const bad of [`${path}/1041`, `${path}/700.png`, '/imagemap/ffffffffffffffffffff/700', '/imagemap/x/700']) {
      expect((await h.app.inject({ method: 'GET', url: bad })).statusCode, bad).toBe(404);
    }
  });

  it('a new source image (config reload) gets its own path; the old path keeps serving the old image', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'imagemap-'));
    const file = join(dir, 'scheduler.yaml');
    const base = `http:\n  publicBaseUrl: ${PUBLIC_BASE_URL}\n`;
    writeFileSync(file, base);
    h = await openLineHarness(dialect, { configFile: file });
    const before = h.line.imagemap.current();
    const jpg = join(dir, 'banner.jpg');
    writeFileSync(jpg, await sharp({ create: { width: 2080, height: 1560, channels: 3, background: '#3366cc' } }).jpeg().toBuffer());
    writeFileSync(file, `${base}imagemap:\n  source: ${jpg}\n`);
    expect(h.config.reload('api')).toMatchObject({ status: 'applied', changed: ['imagemap.source'] });
    await h.line.imagemap.settled();
    const after = h.line.imagemap.current();
    expect(after).toEqual({ hash: expect.stringMatching(/^[0-9a-f]{20}$/), height: 780 });

    const jpeg = await h.app.inject({ method: 'GET', url: `/imagemap/${after?.hash}/460` });
    expect([jpeg.statusCode, jpeg.headers['content-type']]).toEqual([200, 'image/jpeg']);
    expect((await sharp(jpeg.rawPayload).metadata()).height).toBe(345);
    expect((await h.app.inject({ method: 'GET', url: `/imagemap/${before?.hash}/460` })).headers['content-type']).toBe('image/png');
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    expect(await notify(d)).toMatchObject({ kind: 'sent' });
    expect(h.emulator.received(ALICE)[0]?.messages[0]).toMatchObject({ baseUrl: `${PUBLIC_BASE_URL}/imagemap/${after?.hash}`, baseSize: { width: 1040, height: 780 } });
    rmSync(dir, { recursive: true, force: true });
  });

  it('retry after a timeout delivers once: LINE accepted late, the retry with the same key gets 409 = sent', async () => {
    h = await openLineHarness(dialect);
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    const timeout = h.config.current().line.requestTimeout.ms;
    // LINE holds the request longer than our deadline, then accepts it.
    const fault = h.emulator.faults.add({ path: PUSH, fault: { kind: 'delay', ms: timeout + 5000 } });
    const first = push(d.memberId, d.retryKey);
    await fault.triggered;
    await h.clock.advance(timeout);
    expect(await first).toEqual({ kind: 'retryable', afterMs: 500, reason: `no answer within ${timeout} ms`, requestId: null });
    expect(h.emulator.received(ALICE)).toHaveLength(0);
    await h.clock.advance(5000);
    await until(() => h.emulator.received(ALICE).length === 1);

    const second = await push(d.memberId, d.retryKey, undefined, 2);
    const accepted = h.emulator.received(ALICE)[0]?.requestId;
    expect(second).toMatchObject({ kind: 'duplicate', acceptedRequestId: accepted });
    expect(h.emulator.received(ALICE)).toHaveLength(1);
    expect((await lineRequestsForKey(h.database.db, d.retryKey)).map((r) => [r.status, r.outcome, r.acceptedRequestId])).toEqual([
      [null, 'retryable', null],
      [409, 'duplicate', accepted],
    ]);
  });

  it('a connection dropped after LINE accepted is retried under the same key and delivered once', async () => {
    h = await openLineHarness(dialect);
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    h.emulator.faults.add({ path: PUSH, fault: { kind: 'after-accept-drop' } });
    expect(await push(d.memberId, d.retryKey)).toMatchObject({ kind: 'retryable', reason: expect.stringContaining('network error') });
    expect(h.emulator.received(ALICE)).toHaveLength(1);
    expect(await push(d.memberId, d.retryKey, undefined, 2)).toMatchObject({ kind: 'duplicate' });
    expect(await push(d.memberId, d.retryKey, undefined, 3)).toMatchObject({ kind: 'duplicate' });
    expect(h.emulator.received(ALICE)).toHaveLength(1);
    expect(new Set(h.emulator.requests().map((r) => r.retryKey))).toEqual(new Set([d.retryKey]));
  });

  it('409 with x-line-accepted-request-id counts as sent', async () => {
    h = await openLineHarness(dialect);
    const d = await createDelivery(h, { channel: h.a, lineUserId: BOB });
    const first = await push(d.memberId, d.retryKey);
    expect(first.kind).toBe('sent');
    const again = await push(d.memberId, d.retryKey);
    expect(again).toEqual({ kind: 'duplicate', requestId: expect.any(String), acceptedRequestId: first.kind === 'sent' ? first.requestId : null });
    expect(h.emulator.received(BOB)).toHaveLength(1);
  });

  it('an exhausted monthly quota pauses the channel, shows it in the API and the log, and stops sending', async () => {
    h = await openLineHarness(dialect);
    h.emulator.setMonthlyQuota(h.a.emulatorId, 1);
    const first = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    const second = await createDelivery(h, { channel: h.a, lineUserId: BOB });
    const third = await createDelivery(h, { channel: h.a, lineUserId: BOB });
    expect((await push(first.memberId, first.retryKey)).kind).toBe('sent');
    const until = new Date(h.clock.now().getTime() + h.config.current().line.quotaRecheck.ms);
    expect(await push(second.memberId, second.retryKey)).toEqual({ kind: 'channelPaused', until, reason: `LINE 429: ${LINE_ERROR_MESSAGES.monthlyLimit}` });

    const view = await h.app.inject({ method: 'GET', url: `/api/line-channels/${h.a.row.id}` });
    expect(view.json()).toMatchObject({ pausedUntil: until.toISOString(), pauseReason: `LINE 429: ${LINE_ERROR_MESSAGES.monthlyLimit}` });
    expect(h.logs.some((l) => l.includes('LINE channel paused'))).toBe(true);

    // Paused: no call to LINE at all, for this replica and (through the database) for others.
    const calls = h.emulator.requests().length;
    expect(await push(third.memberId, third.retryKey)).toMatchObject({ kind: 'channelPaused', until });
    expect(h.emulator.requests()).toHaveLength(calls);
    await h.line.pool.refresh(true);
    expect(await push(third.memberId, third.retryKey)).toMatchObject({ kind: 'channelPaused', until });
    // Channel B is not affected.
    const other = await createDelivery(h, { channel: h.b, lineUserId: BOB });
    expect((await push(other.memberId, other.retryKey)).kind).toBe('sent');

    // After the pause, with the quota raised, the same delivery goes out.
    h.emulator.setMonthlyQuota(h.a.emulatorId, 100);
    await h.clock.advance(h.config.current().line.quotaRecheck.ms + 1);
    expect((await push(second.memberId, second.retryKey)).kind).toBe('sent');
    expect(h.emulator.received(BOB, h.a.emulatorId)).toHaveLength(1);
  });

  it('a rate-limit 429 is retried after a backoff with the same key', async () => {
    h = await openLineHarness(dialect);
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    h.emulator.faults.add({ path: PUSH, fault: { status: 429, body: { message: LINE_ERROR_MESSAGES.rateLimited } } });
    expect(await push(d.memberId, d.retryKey)).toMatchObject({ kind: 'retryable', afterMs: 500, reason: `LINE 429: ${LINE_ERROR_MESSAGES.rateLimited}`, requestId: expect.any(String) });
    expect(await push(d.memberId, d.retryKey, undefined, 2)).toMatchObject({ kind: 'sent' });
    expect(h.emulator.requests().map((r) => [r.status, r.retryKey])).toEqual([
      [429, d.retryKey],
      [200, d.retryKey],
    ]);
  });

  it('5xx is retryable; other 4xx are final with the reason; nothing is sent twice', async () => {
    h = await openLineHarness(dialect, { emulator: { unknownUsers: 'reject' } });
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    h.emulator.faults.add({ path: PUSH, fault: { status: 503 } });
    expect(await push(d.memberId, d.retryKey)).toMatchObject({ kind: 'retryable', reason: 'LINE 503: Internal server error' });
    expect((await push(d.memberId, d.retryKey, undefined, 2)).kind).toBe('sent');

    const stranger = await createDelivery(h, { channel: h.a, lineUserId: `U${'e'.repeat(32)}` });
    expect(await push(stranger.memberId, stranger.retryKey)).toEqual({ kind: 'final', reason: 'LINE 400: Failed to send messages', status: 400, requestId: expect.any(String) });
  });

  it('an unfollowed member is skipped with the reason and LINE is not called', async () => {
    h = await openLineHarness(dialect);
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    await h.database.db.updateTable('members').set({ following: 'unfollowed' }).where('id', '=', d.memberId).execute();
    expect(await push(d.memberId, d.retryKey)).toEqual({ kind: 'skipped', reason: 'the student unfollowed (blocked) the LINE account' });
    expect(h.emulator.requests()).toEqual([]);
  });

  it('messages over LINE limits and bad retry keys end before any call', async () => {
    h = await openLineHarness(dialect);
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    expect(await push(d.memberId, d.retryKey, [textMessage('🍎'.repeat(2501))])).toMatchObject({ kind: 'final', reason: expect.stringContaining('messages[0].text') });
    expect(await push(d.memberId, 'not-a-uuid')).toMatchObject({ kind: 'final', reason: expect.stringContaining('not a UUID') });
    const old = await sendPush(h.line.send, { memberId: d.memberId, retryKey: d.retryKey, messages: [textMessage('x')], attempt: 5, firstAttemptAt: new Date(h.clock.now().getTime() - 23 * 3_600_000 - 1) });
    expect(old).toMatchObject({ kind: 'final', reason: expect.stringContaining('23 h') });
    expect(h.emulator.requests()).toEqual([]);
  });

  it('a refused token pauses the channel until it is replaced; a disabled channel holds its sends', async () => {
    h = await openLineHarness(dialect);
    const d = await createDelivery(h, { channel: h.a, lineUserId: ALICE });
    await updateLineChannel(h.database.db, h.box, h.clock, h.a.row.id, { channelAccessToken: 'revoked-token' });
    await h.line.pool.refresh();
    expect(await push(d.memberId, d.retryKey)).toMatchObject({ kind: 'channelPaused', reason: expect.stringContaining('LINE 401') });
    await updateLineChannel(h.database.db, h.box, h.clock, h.a.row.id, { channelAccessToken: h.a.token });
    await h.line.pool.refresh();
    expect((await push(d.memberId, d.retryKey)).kind).toBe('sent');

    const e = await createDelivery(h, { channel: h.a, lineUserId: BOB });
    await updateLineChannel(h.database.db, h.box, h.clock, h.a.row.id, { enabled: false });
    await h.line.pool.refresh();
    expect(await push(e.memberId, e.retryKey)).toEqual({ kind: 'channelPaused', until: null, reason: 'LINE channel school-a is disabled' });
    expect(h.emulator.received(BOB)).toEqual([]);
    // Two calls reached LINE; the 401 is in the request log, the success on its delivery, the held send nowhere.
    expect(h.emulator.requests()).toHaveLength(2);
    expect(await countRows(h, 'line_requests')).toBe(1);
  });
});
