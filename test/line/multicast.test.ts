import { afterEach, describe, expect, it } from 'vitest';
import { DomainError } from '../../src/errors.ts';
import { textMessage } from '../../src/line/messages.ts';
import { createMulticastChunks, getMulticastChunk, sendMulticastChunk } from '../../src/line/multicast.ts';
import { lineRequestsForKey } from '../../src/line/requests.ts';
import { dialects } from '../support/databases.ts';
import { countRows, openLineHarness, userId, type HarnessChannel, type LineHarness } from './support.ts';

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
