import { describe, expect, it } from 'vitest';
import type { ApiResult } from '../../src/line/client.ts';
import { planEvents, type StoredEvent } from '../../src/line/follow-rules.ts';
import type { SendTarget } from '../../src/line/members.ts';
import { planChunks } from '../../src/line/multicast.ts';
import { classifySend, MONTHLY_LIMIT, type ClassifyContext } from '../../src/line/outcomes.ts';
import { capacityOf, CLOCK_STEP_MS, refill, reserve } from '../../src/line/rate-bucket.ts';
import { isSignedByLine, parseWebhookBody, slugFromHost } from '../../src/line/webhook.ts';
import { userId } from './support.ts';

describe('webhook request checks', () => {
  it("LINE's published signature test vector verifies, and nothing else does", () => {
    const body = Buffer.from('{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}');
    const secret = '8c570fa6dd201bb328f1c1eac23a96d8';
    const signature = 'GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=';
    expect(isSignedByLine(body, secret, signature)).toBe(true);
    expect(isSignedByLine(Buffer.concat([body, Buffer.from(' ')]), secret, signature)).toBe(false);
    expect(isSignedByLine(body, `${secret}0`, signature)).toBe(false);
    expect(isSignedByLine(body, secret, undefined)).toBe(false);
    expect(isSignedByLine(body, secret, '')).toBe(false);
    expect(isSignedByLine(body, secret, 'short')).toBe(false);
    expect(isSignedByLine(body, secret, [signature, signature])).toBe(false);
  });

  it('the channel comes from the first label under the webhook domain', () => {
    expect(slugFromHost('school-a.line.example.com', 'line.example.com')).toBe('school-a');
    expect(slugFromHost('School-A.LINE.example.com', 'line.example.com')).toBe('school-a');
    expect(slugFromHost('school-a.line.example.com.', 'line.example.com')).toBe('school-a');
    expect(slugFromHost('line.example.com', 'line.example.com')).toBeUndefined();
    expect(slugFromHost('a.b.line.example.com', 'line.example.com')).toBeUndefined();
    expect(slugFromHost('school-a.evil-line.example.com', 'line.example.com')).toBeUndefined();
    expect(slugFromHost('school-a.line.example.com.evil.test', 'line.example.com')).toBeUndefined();
    expect(slugFromHost('school-a.line.example.com', null)).toBeUndefined();
  });

  it('the body must be JSON with a destination and events that carry type, timestamp and webhookEventId', () => {
    expect(parseWebhookBody(Buffer.from('{"destination":"U1","events":[]}'))).toMatchObject({ ok: true });
    expect(parseWebhookBody(Buffer.from('{nope'))).toEqual({ ok: false, problem: 'the body is not valid JSON' });
    expect(parseWebhookBody(Buffer.from(''))).toEqual({ ok: false, problem: 'the body is not valid JSON' });
    expect(parseWebhookBody(Buffer.from('{"destination":"U1"}'))).toMatchObject({ ok: false, problem: expect.stringContaining('events') });
    expect(parseWebhookBody(Buffer.from('{"destination":"U1","events":[{"type":"follow","timestamp":1}]}'))).toMatchObject({
      ok: false,
      problem: expect.stringContaining('events.0.webhookEventId'),
    });
    const extra = parseWebhookBody(Buffer.from('{"destination":"U1","events":[{"type":"memberJoined","timestamp":1,"webhookEventId":"E","joined":{}}]}'));
    expect(extra.ok && extra.body.events[0]).toMatchObject({ type: 'memberJoined', joined: {} });
  });
});

describe('event ordering: the newest event per member wins, whatever the arrival order', () => {
  const U = userId(1);
  const event = (id: number, type: string, at: number, over: Partial<StoredEvent> = {}): StoredEvent => ({ id, channelId: 1, type, mode: 'active', lineUserId: U, at: new Date(at), ...over });

  /** The member's state after applying batches the way the processor does: plan per batch, then the database guard. */
  const replay = (batches: StoredEvent[][]): string | undefined => {
    let state: { following: string; at: number } | undefined;
    for (const batch of batches) {
      for (const { change } of planEvents(batch).changes) {
        // applyFollowChange's guard: applied only when strictly newer.
        if (!state || state.at < change.at.getTime()) state = { following: change.following, at: change.at.getTime() };
      }
    }
    return state?.following;
  };
  const permutations = <T>(items: T[]): T[][] =>
    items.length <= 1 ? [items] : items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]));
  const splits = <T>(items: T[]): T[][][] => {
    const out: T[][][] = [];
    for (let mask = 0; mask < 2 ** Math.max(0, items.length - 1); mask++) {
      const batches: T[][] = [[]];
      items.forEach((item, i) => {
        batches.at(-1)?.push(item);
        if (i < items.length - 1 && mask & (2 ** i)) batches.push([]);
      });
      out.push(batches);
    }
    return out;
  };

  it('every arrival order and batching of up to four follow/unfollow events ends at the newest one', () => {
    let cases = 0;
    for (let n = 1; n <= 4; n++) {
      for (let types = 0; types < 2 ** n; types++) {
        const events = Array.from({ length: n }, (_, i) => event(i + 1, types & (2 ** i) ? 'unfollow' : 'follow', 1000 + i * 10));
        const newest = events.at(-1)?.type === 'follow' ? 'following' : 'unfollowed';
        for (const order of permutations(events)) {
          for (const batches of splits(order)) {
            expect(replay(batches)).toBe(newest);
            cases++;
          }
        }
      }
    }
    expect(cases).toBeGreaterThan(1000);
  });

  it('within a batch the older events are superseded; a repeat of the same instant keeps the first stored', () => {
    const plan = planEvents([event(1, 'follow', 100), event(2, 'unfollow', 300), event(3, 'follow', 200), event(4, 'follow', 300)]);
    expect(plan.changes).toEqual([{ eventId: 2, change: { channelId: 1, lineUserId: U, following: 'unfollowed', at: new Date(300) } }]);
    expect(plan.settled.sort((a, b) => a.id - b.id)).toEqual([
      { id: 1, outcome: 'superseded' },
      { id: 3, outcome: 'superseded' },
      { id: 4, outcome: 'superseded' },
    ]);
  });

  it('members are independent: per channel and per user', () => {
    const plan = planEvents([event(1, 'follow', 100), event(2, 'unfollow', 100, { channelId: 2 }), event(3, 'unfollow', 100, { lineUserId: userId(2) })]);
    expect(plan.changes.map((c) => [c.eventId, c.change.following])).toEqual([
      [1, 'following'],
      [2, 'unfollowed'],
      [3, 'unfollowed'],
    ]);
  });

  it('standby events, events without a user id and other event types are settled without a write', () => {
    const plan = planEvents([
      event(1, 'follow', 100, { mode: 'standby' }),
      event(2, 'follow', 100, { lineUserId: null }),
      event(3, 'message', 100),
      event(4, 'unfollow', 100, { lineUserId: 'not-a-user' }),
    ]);
    expect(plan.changes).toEqual([]);
    expect(plan.settled).toEqual([
      { id: 1, outcome: 'skipped: standby mode' },
      { id: 2, outcome: 'skipped: no source.userId' },
      { id: 3, outcome: 'ignored: message' },
      { id: 4, outcome: 'skipped: source.userId is not a LINE user id' },
    ]);
  });
});

describe('send outcomes from LINE answers', () => {
  const ctx: ClassifyContext = { attempt: 3, backoff: { baseDelayMs: 1000, maxDelayMs: 60_000 }, now: new Date('2026-12-01T00:00:00Z'), pauseMs: 3_600_000, random: () => 0.5 };
  const answer = (status: number, over: Partial<Extract<ApiResult<unknown>, { kind: 'response' }>> = {}): ApiResult<unknown> => ({
    kind: 'response',
    status,
    requestId: 'req-1',
    acceptedRequestId: null,
    body: undefined,
    errorMessage: null,
    ...over,
  });

  it('follows LINE retry table: 2xx sent, 409 duplicate, 5xx/timeout/network retry, other 4xx final', () => {
    expect(classifySend(answer(200, { body: { sentMessages: [{ id: '461230966842064897', quoteToken: 'q' }] } }), ctx)).toEqual({ kind: 'sent', requestId: 'req-1', sentMessageIds: ['461230966842064897'] });
    expect(classifySend(answer(200, { body: {} }), ctx)).toEqual({ kind: 'sent', requestId: 'req-1', sentMessageIds: [] });
    expect(classifySend(answer(409, { acceptedRequestId: 'req-0', errorMessage: 'The retry key is already accepted' }), ctx)).toEqual({ kind: 'duplicate', requestId: 'req-1', acceptedRequestId: 'req-0' });
    expect(classifySend(answer(409, { errorMessage: 'The retry key is already accepted' }), ctx)).toMatchObject({ kind: 'duplicate', acceptedRequestId: null });
    expect(classifySend(answer(409, { errorMessage: 'something else' }), ctx)).toMatchObject({ kind: 'final' });
    for (const status of [500, 502, 503, 504, 408]) expect(classifySend(answer(status), ctx), String(status)).toMatchObject({ kind: 'retryable', afterMs: 2000 });
    expect(classifySend({ kind: 'timeout', afterMs: 10_000 }, ctx)).toEqual({ kind: 'retryable', afterMs: 2000, reason: 'no answer within 10000 ms', requestId: null });
    expect(classifySend({ kind: 'network', error: 'fetch failed: other side closed' }, ctx)).toMatchObject({ kind: 'retryable', reason: 'network error: fetch failed: other side closed' });
    for (const status of [400, 403, 404, 410, 413, 415]) {
      expect(classifySend(answer(status, { errorMessage: 'Failed to send messages' }), ctx), String(status)).toEqual({ kind: 'final', reason: `LINE ${status}: Failed to send messages`, status, requestId: 'req-1' });
    }
  });

  it('the two 429s: a rate limit is retried with backoff, an exhausted monthly quota pauses the channel', () => {
    expect(classifySend(answer(429, { errorMessage: 'The API rate limit has been exceeded. Try again later.' }), ctx)).toMatchObject({ kind: 'retryable', afterMs: 2000 });
    expect(classifySend(answer(429, { errorMessage: MONTHLY_LIMIT }), ctx)).toEqual({
      kind: 'channelPaused',
      until: new Date('2026-12-01T01:00:00Z'),
      reason: `LINE 429: ${MONTHLY_LIMIT}`,
    });
    expect(classifySend(answer(401, { errorMessage: 'Authentication failed' }), ctx)).toMatchObject({ kind: 'channelPaused', reason: 'LINE 401: Authentication failed' });
  });

  it('backoff grows per attempt with full jitter and stops at the ceiling', () => {
    const at = (attempt: number, random: number) => classifySend(answer(500), { ...ctx, attempt, random: () => random });
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => (at(n, 0.999999) as { afterMs: number }).afterMs)).toEqual([999, 1999, 3999, 7999, 15_999, 31_999, 59_999, 59_999]);
    expect((at(4, 0) as { afterMs: number }).afterMs).toBe(0);
  });
});

describe('token bucket', () => {
  const limits = { rate: 100, capacity: 20 };

  it('refills continuously up to the capacity; a mark a little ahead of the clock mints nothing and stays', () => {
    expect(refill({ tokens: 0, refilledAt: 0 }, 100, limits)).toEqual({ tokens: 10, refilledAt: 100 });
    expect(refill({ tokens: 15, refilledAt: 0 }, 1000, limits)).toEqual({ tokens: 20, refilledAt: 1000 });
    // Another replica's estimate of the database clock ran 600 ms ahead of this one's: moving the
    // mark back would mint those 600 ms again.
    expect(refill({ tokens: 5, refilledAt: 1000 }, 400, limits)).toEqual({ tokens: 5, refilledAt: 1000 });
    expect(refill({ tokens: 5, refilledAt: 1000 }, 1100, limits)).toEqual({ tokens: 15, refilledAt: 1100 });
    // A reservation waits for the mark, then for the tokens.
    expect(reserve({ tokens: 0.5, refilledAt: 1000 }, 5, 400, limits)).toMatchObject({ granted: 0, waitMs: 600 + 45 });
  });

  it('a mark more than CLOCK_STEP_MS ahead is a clock that stepped back: it is brought back to the clock', () => {
    expect(refill({ tokens: 5, refilledAt: 400 + CLOCK_STEP_MS + 1 }, 400, limits)).toEqual({ tokens: 5, refilledAt: 400 });
    // From there it refills by the clock's own time again, not from the mark that was ahead.
    expect(refill({ tokens: 5, refilledAt: 400 }, 500, limits)).toEqual({ tokens: 15, refilledAt: 500 });
  });

  it('grants what is there, up to the want; otherwise says how long until the whole want is there', () => {
    expect(reserve({ tokens: 20, refilledAt: 0 }, 5, 0, limits)).toEqual({ granted: 5, next: { tokens: 15, refilledAt: 0 }, waitMs: 0 });
    expect(reserve({ tokens: 3.5, refilledAt: 0 }, 5, 0, limits)).toEqual({ granted: 3, next: { tokens: 0.5, refilledAt: 0 }, waitMs: 0 });
    expect(reserve({ tokens: 0.5, refilledAt: 0 }, 5, 0, limits)).toEqual({ granted: 0, next: { tokens: 0.5, refilledAt: 0 }, waitMs: 45 });
    expect(reserve({ tokens: 0, refilledAt: 0 }, 50, 0, limits)).toMatchObject({ granted: 0, waitMs: 200 });
  });

  it('over any window, grants never exceed capacity + rate × window', () => {
    let state = { tokens: limits.capacity, refilledAt: 0 };
    let granted = 0;
    for (let now = 0; now <= 10_000; now += 7) {
      const r = reserve(state, 13, now, limits);
      state = r.next;
      granted += r.granted;
      expect(granted).toBeLessThanOrEqual(limits.capacity + (limits.rate * now) / 1000);
    }
    expect(granted).toBeGreaterThan(limits.capacity + limits.rate * 10 - 20);
    expect(capacityOf(1950, 200)).toBe(390);
    expect(capacityOf(1, 200)).toBe(1);
  });
});

describe('multicast chunks', () => {
  const target = (memberId: number, following: SendTarget['following'] = 'following'): SendTarget => ({ memberId, channelId: 1, lineUserId: userId(memberId), following });

  it('at most 500 per chunk, unfollowed members and repeats left out with a reason', () => {
    const targets = new Map(Array.from({ length: 1203 }, (_, i) => [i + 1, target(i + 1, i % 100 === 0 ? 'unfollowed' : i % 7 === 0 ? 'unknown' : 'following')]));
    const recipients = [...targets.keys()].map((memberId) => ({ memberId, deliveryId: memberId * 10 }));
    const plan = planChunks([...recipients, { memberId: 2, deliveryId: 20 }], targets);
    expect(plan.chunks.map((c) => c.length)).toEqual([500, 500, 190]);
    expect(plan.skipped.filter((s) => s.reason.includes('unfollowed'))).toHaveLength(13);
    expect(plan.skipped.filter((s) => s.reason.includes('more than once'))).toEqual([{ memberId: 2, deliveryId: 20, reason: 'the member appears more than once' }]);
    expect(new Set(plan.chunks.flat().map((r) => r.memberId)).size).toBe(1190);
    expect(planChunks([], targets)).toEqual({ chunks: [], skipped: [] });
  });
});
