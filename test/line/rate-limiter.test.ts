import { afterEach, describe, expect, it } from 'vitest';
import { virtualClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { createConfigStore } from '../../src/config/store.ts';
import { openDatabase } from '../../src/db/database.ts';
import { insertLineChannel } from '../../src/line/channels.ts';
import { createRateLimiter, reserveTokens, type KnownBucket } from '../../src/line/rate-limiter.ts';
import { createSecretBox } from '../../src/secrets/secret-box.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

let database: TestDatabase;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function setup(dialect: (typeof dialects)[number]) {
  database = await openTestDatabase(dialect);
  closers.push(() => database.close());
  const clock = virtualClock('2026-12-01T00:00:00Z');
  // 100 requests/s with a 200 ms burst: capacity 20.
  const config = createConfigStore(parseConfig({ line: { rateLimits: { push: 100, multicast: 10 }, rateBurst: '200ms' } }, 'test'), { env: {} }, clock);
  const channel = await insertLineChannel(database.db, createSecretBox(Buffer.alloc(32, 1)), clock, { label: 'A', slug: 'a', channelId: '1', channelSecret: 's', channelAccessToken: 't' });
  return { clock, config, channel };
}

describe.each(dialects)('the shared token bucket on %s', (dialect) => {
  it('two replicas together never exceed capacity + rate × elapsed, and use nearly all of it', async () => {
    const { clock, config, channel } = await setup(dialect);
    // A second replica: its own connection (pool) to the same database.
    const second = database.dialect === 'postgres' ? await openDatabase(database.url, { schema: database.schema ?? '', poolSize: 2 }) : database;
    if (second !== database) closers.push(() => second.close());
    const replicas = [createRateLimiter({ db: database.db, clock, config }), createRateLimiter({ db: second.db, clock, config })];

    const total = 260;
    let granted = 0;
    const waiting = replicas.map(() => 0);
    const all = Array.from({ length: total }, (_, i) => {
      const r = i % 2;
      waiting[r] = (waiting[r] ?? 0) + 1;
      return (replicas[r]?.acquire(channel.id, 'push') ?? Promise.resolve()).then(() => {
        granted++;
        waiting[r] = (waiting[r] ?? 0) - 1;
      });
    });
    // Parked: every replica with waiters is asleep on the clock, or nothing waits.
    const parked = () => clock.pendingTimers() >= waiting.filter((w) => w > 0).length;
    const settle = async () => {
      // Bounded by turns of the event loop, not time: on a loaded machine PostgreSQL's round trips
      // can outlast a few thousand turns, so the bound is generous (it is only hit if nothing parks).
      for (let i = 0; i < 200_000 && !parked(); i++) await new Promise<void>((resolve) => setImmediate(resolve));
      // One more round for grants that resolve together with the timer being armed.
      for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    };

    await settle();
    expect(granted).toBe(20);
    for (let elapsed = 50; elapsed <= 2400; elapsed += 50) {
      await clock.advance(50);
      await settle();
      expect(granted, `after ${elapsed} ms`).toBeLessThanOrEqual(20 + (100 * elapsed) / 1000);
      if (elapsed === 2000) expect(granted).toBeGreaterThanOrEqual(20 + 200 - 20);
    }
    await Promise.all(all);
    expect(granted).toBe(total);
  });

  it('two replicas whose estimates of the database clock differ by a few ms mint no token twice', async () => {
    const { channel } = await setup(dialect);
    // 1,000 requests/s with a 20 ms burst: capacity 20. B takes the database's clock to be 4 ms
    // ahead of what A takes it to be (each replica's estimate is what it hands the database: dbNow).
    const config = createConfigStore(parseConfig({ line: { rateLimits: { push: 1000 }, rateBurst: '20ms' } }, 'test'), { env: {} }, virtualClock('2026-12-01T00:00:00Z'));
    const skewMs = 4;
    const a = virtualClock('2026-12-01T00:00:00Z');
    const b = virtualClock('2026-12-01T00:00:00Z');
    b.databaseOffsetMs = skewMs;
    const second = database.dialect === 'postgres' ? await openDatabase(database.url, { schema: database.schema ?? '', poolSize: 2 }) : database;
    if (second !== database) closers.push(() => second.close());
    const replicas = [createRateLimiter({ db: database.db, clock: a, config }), createRateLimiter({ db: second.db, clock: b, config })];
    let granted = 0;
    const waiting = [0, 0];
    const all: Promise<void>[] = [];
    const ask = (r: number) => {
      waiting[r] = (waiting[r] ?? 0) + 1;
      all.push(
        (replicas[r]?.acquire(channel.id, 'push') ?? Promise.resolve()).then(() => {
          granted++;
          waiting[r] = (waiting[r] ?? 0) - 1;
        }),
      );
    };
    // Settled: each replica with waiters is asleep on its clock, or nothing waits.
    const parked = () => [a, b].every((clock, r) => (waiting[r] ?? 0) === 0 || clock.pendingTimers() > 0);
    const settle = async () => {
      for (let i = 0; i < 200_000 && !parked(); i++) await new Promise<void>((resolve) => setImmediate(resolve));
      for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    };
    // Each replica asks once a millisecond (twice the rate, in small reservations that leave tokens
    // in the bucket for the other). Over the window the bucket may give its capacity plus the rate
    // times the span of the marks written, which is at most the window plus the skew.
    for (let elapsed = 0; elapsed < 500; elapsed++) {
      ask(0);
      ask(1);
      await settle();
      expect(granted, `after ${elapsed} ms`).toBeLessThanOrEqual(20 + elapsed + skewMs);
      await a.advance(1);
      await b.advance(1);
    }
    await settle();
    expect(granted).toBeGreaterThanOrEqual(20 + 500 - 40);
    for (let i = 0; i < 1000 && granted < all.length; i++) {
      await a.advance(5);
      await b.advance(5);
      await settle();
    }
    await Promise.all(all);
  });

  it('endpoints and channels have separate buckets', async () => {
    const { clock, channel } = await setup(dialect);
    const limits = { rate: 10, capacity: 3 };
    const take = (endpoint: 'push' | 'multicast', channelId = channel.id) => reserveTokens(database.db, { channelId, endpoint, want: 5, clock, limits });
    expect(await take('push')).toMatchObject({ granted: 3, waitMs: 0 });
    expect(await take('push')).toMatchObject({ granted: 0, waitMs: 300 });
    expect(await take('multicast')).toMatchObject({ granted: 3, waitMs: 0 });
    const other = await insertLineChannel(database.db, createSecretBox(Buffer.alloc(32, 1)), clock, { label: 'B', slug: 'b', channelId: '2', channelSecret: 's', channelAccessToken: 't' });
    expect(await take('push', other.id)).toMatchObject({ granted: 3, waitMs: 0 });
    await clock.advance(200);
    expect(await take('push')).toMatchObject({ granted: 2, waitMs: 0 });
  });

  it('a row known from its own last write saves the read; a stale one misses and re-reads, never spending a token twice', async () => {
    const { clock, channel } = await setup(dialect);
    const limits = { rate: 10, capacity: 3 };
    const take = (known?: KnownBucket) => reserveTokens(database.db, { channelId: channel.id, endpoint: 'push', want: 2, clock, limits, known });
    const mine = await take();
    expect(mine).toMatchObject({ granted: 2, known: { tokens: 1, version: 1 } });
    // Another replica takes the last token; what this one knows is now stale (1 token at version 1).
    const theirs = await take();
    expect(theirs).toMatchObject({ granted: 1, known: { tokens: 0, version: 2 } });
    expect(await take(mine.known)).toMatchObject({ granted: 0, waitMs: 200, known: { tokens: 0, version: 2 } });
    await clock.advance(200);
    // Current knowledge: granted from it, written under the version it names.
    expect(await take(theirs.known)).toMatchObject({ granted: 2, known: { version: 3 } });
    const row = await database.db.selectFrom('line_rate_buckets').select(['tokens', 'version']).where('channel_id', '=', channel.id).where('endpoint', '=', 'push').executeTakeFirstOrThrow();
    expect({ tokens: Number(row.tokens), version: row.version }).toEqual({ tokens: 0, version: 3 });
  });

  it('refills by the database\'s clock: a replica whose own clock runs a minute ahead starves no other replica', async () => {
    const { channel } = await setup(dialect);
    const limits = { rate: 1950, capacity: 390 };
    // Both replicas ask the same database; F's own clock is 60 s ahead of it, S's is right.
    const slow = virtualClock('2026-12-01T11:50:00Z');
    const fast = virtualClock('2026-12-01T11:51:00Z');
    fast.databaseOffsetMs = -60_000;
    const take = (clock: typeof slow, known?: KnownBucket) => reserveTokens(database.db, { channelId: channel.id, endpoint: 'push', want: 390, clock, limits, known });
    // F spends a full burst, then keeps asking through the row it knows (no read).
    const f = await take(fast);
    expect(f.granted).toBe(390);
    // S asks every 100 ms for 5 s: it gets what the database's clock refilled (1,950/s), as F does.
    let granted = 0;
    let known: KnownBucket | undefined;
    for (let t = 0; t < 50; t++) {
      await slow.advance(100);
      await fast.advance(100);
      const s = await take(slow, known);
      known = s.known;
      granted += s.granted;
    }
    expect(granted).toBeGreaterThanOrEqual(5 * 1950 - 390);
    expect(granted).toBeLessThanOrEqual(5 * 1950 + 390);
    // And the mark in the row is the database's time, not F's.
    const row = await database.db.selectFrom('line_rate_buckets').select('refilled_at').where('channel_id', '=', channel.id).where('endpoint', '=', 'push').executeTakeFirstOrThrow();
    expect(new Date(row.refilled_at).toISOString()).toBe('2026-12-01T11:50:05.000Z');
  });

  it('a known row whose clock stepped ahead of the database\'s since is not written: the row is read again', async () => {
    const { channel } = await setup(dialect);
    const limits = { rate: 100, capacity: 20 };
    const clock = virtualClock('2026-12-01T00:00:00Z');
    const take = (known?: KnownBucket) => reserveTokens(database.db, { channelId: channel.id, endpoint: 'push', want: 20, clock, limits, known });
    const first = await take();
    expect(first.granted).toBe(20);
    // This process's clock jumps 60 s ahead; the database's does not (it is 60 s behind it now).
    await clock.advance(60_000);
    clock.databaseOffsetMs = -60_000;
    const second = await take(first.known);
    // From the known row alone it would mint 60 s of tokens at a mark 60 s ahead: refused, read
    // again, nothing there yet by the database's clock.
    expect(second).toMatchObject({ granted: 0 });
    const row = await database.db.selectFrom('line_rate_buckets').select('refilled_at').where('channel_id', '=', channel.id).where('endpoint', '=', 'push').executeTakeFirstOrThrow();
    expect(new Date(row.refilled_at).toISOString()).toBe('2026-12-01T00:00:00.000Z');
  });
});
