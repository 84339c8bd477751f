import { afterEach, describe, expect, it } from 'vitest';
import { DomainError } from '../../src/errors.ts';
import { textMessage } from '../../src/line/messages.ts';
import { createMulticastChunks, getMulticastChunk } from '../../src/line/multicast.ts';
import { prepareNewMulticasts, sendMulticastChunk } from '../../src/line/multicast-send.ts';
import { lineRequestsForKey } from '../../src/line/requests.ts';
import { dialects } from '../support/databases.ts';
import { updateLineChannel } from '../../src/line/channels.ts';
import { claimDeliveries, countRows, createDelivery, openLineHarness, userId, type HarnessChannel, type LineHarness } from './support.ts';

const MULTICAST = '/v2/bot/message/multicast';

let h: LineHarness;
afterEach(async () => {
  await h.close();
});

/** `n` members of channel `c`; every 100th has unfollowed. Returns their ids in order. */
async function members(c: HarnessChannel, n: number, first = 1): Promise<number[]> {
  const now = h.clock.now();
  const ids: number[] = [];
  for (let i = 0; i < n; i += 500) {
    const rows = await h.database.db
      .insertInto('members')
      .values(
        Array.from({ length: Math.min(500, n - i) }, (_, k) => ({
          channel_id: c.row.id,
          line_user_id: userId(first + i + k),
          following: (i + k) % 100 === 99 ? ('unfollowed' as const) : ('following' as const),
          created_at: now,
          updated_at: now,
        })),
      )
      .returning('id')
      .execute();
    ids.push(...rows.map((r) => r.id));
  }
  return ids;
}

describe.each(dialects)('multicast on %s', (dialect) => {
  it('new chunks of a page are stored together, each with its own members and key, before any goes out', async () => {
    h = await openLineHarness(dialect, { emulator: { unknownUsers: 'deliver' } });
    const recipients = async (channel: HarnessChannel, first: number, n: number) =>
      Promise.all(Array.from({ length: n }, async (_, i) => {
        const lineUserId = userId(first + i);
        const d = await createDelivery(h, { channel, lineUserId });
        return { memberId: d.memberId, deliveryId: d.deliveryId, lineUserId };
      }));
    const inputs = [
      { channelId: h.a.row.id, recipients: await recipients(h.a, 100, 3), messages: [textMessage('class one')] },
      { channelId: h.b.row.id, recipients: await recipients(h.b, 200, 2), messages: [textMessage('class two')] },
      // LINE would refuse this text (over 5,000 characters): never stored, never sent.
      { channelId: h.a.row.id, recipients: await recipients(h.a, 300, 2), messages: [textMessage('x'.repeat(5001))] },
      { channelId: h.a.row.id, recipients: await recipients(h.a, 400, 4), messages: [textMessage('class four')] },
    ];
    const token = await claimDeliveries(h, inputs.flatMap((input) => input.recipients.map((r) => r.deliveryId)));
    const calls = await prepareNewMulticasts(h.line.send, inputs, token);
    expect(calls).toHaveLength(4);
    expect(h.emulator.requests()).toEqual([]);
    const stored = await h.database.db.selectFrom('line_multicasts').select(['id', 'channel_id', 'retry_key', 'attempts']).orderBy('id').execute();
    expect(stored.map((c) => [c.channel_id, c.attempts])).toEqual([[h.a.row.id, 1], [h.b.row.id, 1], [h.a.row.id, 1]]);
    const members = await h.database.db.selectFrom('line_multicast_members').select(['multicast_id', 'delivery_id']).execute();
    const deliveriesOf = (id: number) => members.filter((m) => m.multicast_id === id).map((m) => m.delivery_id).sort((x, y) => (x ?? 0) - (y ?? 0));
    expect(stored.map((c) => deliveriesOf(c.id))).toEqual([inputs[0], inputs[1], inputs[3]].map((input) => input?.recipients.map((r) => r.deliveryId).sort((x, y) => x - y)));

    const outcomes = await Promise.all(calls.map((call) => call()));
    expect(outcomes.map((o) => o.kind)).toEqual(['sent', 'sent', 'final', 'sent']);
    // Each chunk reached its own students with its own text, under the key stored for it.
    for (const [i, input] of inputs.entries()) {
      for (const r of input.recipients) expect(h.emulator.received(r.lineUserId).map((m) => m.messages[0])).toEqual(i === 2 ? [] : [{ type: 'text', text: input.messages[0]?.type === 'text' ? input.messages[0].text : '' }]);
    }
    expect(h.emulator.requests().map((r) => r.retryKey).sort()).toEqual(stored.map((c) => c.retry_key).sort());
  });

  it('a chunk that cannot be stored holds back only itself: the rest of the page is stored and sent', async () => {
    h = await openLineHarness(dialect, { emulator: { unknownUsers: 'deliver' } });
    const good = await createDelivery(h, { channel: h.a, lineUserId: userId(1) });
    const twice = await createDelivery(h, { channel: h.a, lineUserId: userId(2) });
    const recipient = (d: typeof good, n: number) => ({ memberId: d.memberId, deliveryId: d.deliveryId, lineUserId: userId(n) });
    const token = await claimDeliveries(h, [good.deliveryId, twice.deliveryId]);
    const calls = await prepareNewMulticasts(
      h.line.send,
      [
        { channelId: h.a.row.id, recipients: [recipient(good, 1)], messages: [textMessage('one')] },
        // The same member twice breaks the member set's key: this chunk cannot be stored.
        { channelId: h.a.row.id, recipients: [recipient(twice, 2), recipient(twice, 2)], messages: [textMessage('two')] },
      ],
      token,
    );
    const outcomes = await Promise.all(calls.map((call) => call()));
    expect(outcomes.map((o) => o.kind)).toEqual(['sent', 'retryable']);
    expect(outcomes[1]).toMatchObject({ reason: expect.stringContaining('could not store the multicast chunk') });
    expect(h.emulator.received(userId(1))).toHaveLength(1);
    expect(h.emulator.received(userId(2))).toEqual([]);
    // Nothing half-written: only the stored chunk, with its one member.
    expect(await countRows(h, 'line_multicasts')).toBe(1);
    expect((await h.database.db.selectFrom('line_multicast_members').select('delivery_id').execute()).map((m) => m.delivery_id)).toEqual([good.deliveryId]);
  });

  it('a chunk whose channel is disabled between storing and sending is held and dropped, never sent', async () => {
    h = await openLineHarness(dialect, { emulator: { unknownUsers: 'deliver' } });
    const d = await createDelivery(h, { channel: h.a, lineUserId: userId(8) });
    const token = await claimDeliveries(h, [d.deliveryId]);
    const calls = await prepareNewMulticasts(h.line.send, [{ channelId: h.a.row.id, recipients: [{ memberId: d.memberId, deliveryId: d.deliveryId, lineUserId: userId(8) }], messages: [textMessage('hi')] }], token);
    expect(await countRows(h, 'line_multicasts')).toBe(1);
    await updateLineChannel(h.database.db, h.box, h.clock, h.a.row.id, { enabled: false });
    await h.line.pool.refresh();
    expect(await calls[0]?.()).toEqual({ kind: 'channelPaused', until: null, reason: 'LINE channel school-a is disabled' });
    expect(h.emulator.requests()).toEqual([]);
    // Never sent under its key, so nothing is left to resend: the delivery goes out later in a new chunk.
    expect(await countRows(h, 'line_multicasts')).toBe(0);
  });

  it('a channel that may not send stores nothing; its calls report why', async () => {
    h = await openLineHarness(dialect, { emulator: { unknownUsers: 'deliver' } });
    const d = await createDelivery(h, { channel: h.a, lineUserId: userId(7) });
    const token = await claimDeliveries(h, [d.deliveryId]);
    await updateLineChannel(h.database.db, h.box, h.clock, h.a.row.id, { enabled: false });
    await h.line.pool.refresh();
    const calls = await prepareNewMulticasts(h.line.send, [{ channelId: h.a.row.id, recipients: [{ memberId: d.memberId, deliveryId: d.deliveryId, lineUserId: userId(7) }], messages: [textMessage('hi')] }], token);
    expect(await calls[0]?.()).toEqual({ kind: 'channelPaused', until: null, reason: 'LINE channel school-a is disabled' });
    expect(await countRows(h, 'line_multicasts')).toBe(0);
    expect(h.emulator.requests()).toEqual([]);
  });

  it('stores chunks of at most 500 with their members and retry keys first, then each reaches its members once', async () => {
    h = await openLineHarness(dialect, { emulator: { unknownUsers: 'deliver' } });
    const ids = await members(h.a, 1205);
    const messages = [textMessage('明天的課改到 20:00')];
    const created = await createMulticastChunks(h.database.db, h.clock, { channelId: h.a.row.id, recipients: ids.map((memberId) => ({ memberId })), messages });
    expect(created.chunks.map((c) => c.memberIds.length)).toEqual([500, 500, 193]);
    expect(created.skipped).toHaveLength(12);
    expect(created.skipped[0]).toEqual({ memberId: ids[99], reason: 'the student unfollowed (blocked) the LINE account' });
    // Stored before any attempt.
    expect(h.emulator.requests()).toEqual([]);
    expect(await countRows(h, 'line_multicasts')).toBe(3);
    const stored = await getMulticastChunk(h.database.db, created.chunks[0]?.id ?? 0);
    expect(stored).toMatchObject({ state: 'pending', attempts: 0, retryKey: created.chunks[0]?.retryKey, messages });
    expect(stored.lineUserIds).toHaveLength(500);

    for (const chunk of created.chunks) expect(await sendMulticastChunk(h.line.send, chunk.id)).toMatchObject({ kind: 'sent' });
    const received = h.emulator.received(undefined, h.a.emulatorId);
    expect(received).toHaveLength(1193);
    expect(new Set(received.map((r) => r.to)).size).toBe(1193);
    expect(received.some((r) => r.to === userId(100))).toBe(false);
    expect(h.emulator.requests().map((r) => [r.path, r.status])).toEqual(Array.from({ length: 3 }, () => [MULTICAST, 200]));
    const done = await getMulticastChunk(h.database.db, created.chunks[2]?.id ?? 0);
    expect(done).toMatchObject({ state: 'sent', attempts: 1, lineRequestId: h.emulator.requests()[2]?.requestId, firstAttemptAt: h.clock.now() });
    // A sent chunk is not sent again.
    expect(await sendMulticastChunk(h.line.send, created.chunks[2]?.id ?? 0)).toMatchObject({ kind: 'duplicate' });
    expect(h.emulator.requests()).toHaveLength(3);
  });

  it('a chunk whose answer was lost is retried with the same key and the same members: delivered once', async () => {
    h = await openLineHarness(dialect, { emulator: { unknownUsers: 'deliver' } });
    const ids = await members(h.b, 50);
    const { chunks } = await createMulticastChunks(h.database.db, h.clock, { channelId: h.b.row.id, recipients: ids.map((memberId) => ({ memberId })), messages: [textMessage('x')] });
    const [chunk] = chunks;
    if (!chunk) throw new Error('no chunk');
    h.emulator.faults.add({ path: MULTICAST, fault: { kind: 'after-accept-drop' } });
    expect(await sendMulticastChunk(h.line.send, chunk.id)).toMatchObject({ kind: 'retryable' });
    expect(await getMulticastChunk(h.database.db, chunk.id)).toMatchObject({ state: 'pending', attempts: 1, lastError: expect.stringContaining('network error') });
    h.emulator.faults.add({ path: MULTICAST, fault: { status: 500 } });
    expect(await sendMulticastChunk(h.line.send, chunk.id)).toMatchObject({ kind: 'retryable', reason: 'LINE 500: Internal server error' });
    const accepted = h.emulator.requests()[0]?.requestId;
    expect(await sendMulticastChunk(h.line.send, chunk.id)).toMatchObject({ kind: 'duplicate', acceptedRequestId: accepted });
    expect(await getMulticastChunk(h.database.db, chunk.id)).toMatchObject({ state: 'sent', attempts: 3, acceptedRequestId: accepted, lastError: null });
    expect(h.emulator.received()).toHaveLength(50);
    expect(h.emulator.requests().map((r) => (r.body as { to: string[] }).to.join())).toEqual(Array.from({ length: 3 }, () => (h.emulator.requests()[0]?.body as { to: string[] }).to.join()));
    expect((await lineRequestsForKey(h.database.db, chunk.retryKey)).map((r) => r.outcome)).toEqual(['retryable', 'retryable', 'duplicate']);
  });

  it('a final answer fails the chunk with the reason; members of another channel are refused up front', async () => {
    h = await openLineHarness(dialect, { emulator: { unknownUsers: 'reject' } });
    const ids = await members(h.a, 3);
    const { chunks } = await createMulticastChunks(h.database.db, h.clock, { channelId: h.a.row.id, recipients: ids.map((memberId) => ({ memberId })), messages: [textMessage('x')] });
    expect(await sendMulticastChunk(h.line.send, chunks[0]?.id ?? 0)).toMatchObject({ kind: 'final', reason: 'LINE 400: Failed to send messages' });
    expect(await getMulticastChunk(h.database.db, chunks[0]?.id ?? 0)).toMatchObject({ state: 'failed', lastError: 'LINE 400: Failed to send messages' });

    const others = await members(h.b, 2, 5000);
    await expect(createMulticastChunks(h.database.db, h.clock, { channelId: h.a.row.id, recipients: [...ids, ...others].map((memberId) => ({ memberId })), messages: [textMessage('x')] })).rejects.toThrow(DomainError);
    await expect(createMulticastChunks(h.database.db, h.clock, { channelId: h.a.row.id, recipients: ids.map((memberId) => ({ memberId })), messages: [textMessage('')] })).rejects.toThrow(/messages\[0\]\.text/);
    expect(await countRows(h, 'line_multicasts')).toBe(1);
  });
});
