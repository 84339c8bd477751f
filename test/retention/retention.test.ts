import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { virtualClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import { createConfigStore } from '../../src/config/store.ts';
import { insertLineChannel } from '../../src/line/channels.ts';
import { createLogger } from '../../src/logger.ts';
import { createRetention, pruneOnce } from '../../src/retention/runtime.ts';
import { createSecretBox } from '../../src/secrets/secret-box.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

const opened: TestDatabase[] = [];
afterEach(async () => {
  for (const database of opened.splice(0)) await database.close();
});
async function open(dialect: (typeof dialects)[number]): Promise<TestDatabase> {
  const database = await openTestDatabase(dialect);
  opened.push(database);
  return database;
}

const NOW = new Date('2026-12-31T00:00:00Z');
const daysAgo = (n: number): Date => new Date(NOW.getTime() - n * 86_400_000);

/** Rows of every pruned table, each old or recent, finished or not; returns a function listing what is left. */
async function seed(database: TestDatabase) {
  const { db } = database;
  const clock = virtualClock(NOW);
  const channel = await insertLineChannel(db, createSecretBox(Buffer.alloc(32, 1)), clock, { label: 'A', slug: 'a', channelId: '1', channelSecret: 's', channelAccessToken: 't' });
  const member = await db.insertInto('members').values({ channel_id: channel.id, line_user_id: `U${'1'.repeat(32)}`, following: 'following', created_at: NOW, updated_at: NOW }).returning('id').executeTakeFirstOrThrow();
  const event = (key: string, received: Date, processed: boolean) => ({ received_at: received, processed_at: processed ? received : null, event_at: received, payload: '{}', key });
  const events = [event('old-done', daysAgo(31), true), event('old-waiting', daysAgo(31), false), event('new-done', daysAgo(29), true)];
  for (const e of events) {
    await db.insertInto('line_events').values({ channel_id: channel.id, webhook_event_id: e.key, type: 'follow', line_user_id: null, event_at: e.event_at, payload: e.payload, received_at: e.received_at, processed_at: e.processed_at }).execute();
    await db.insertInto('meeting_events').values({ account_id: 'acc', event_key: e.key, event: 'meeting.started', meeting_id: '1', meeting_uuid: 'u', event_at: e.event_at, payload: e.payload, received_at: e.received_at, processed_at: e.processed_at }).execute();
  }
  for (const [key, at] of [['old', daysAgo(91)], ['new', daysAgo(89)]] as const) {
    await db.insertInto('line_requests').values({ channel_id: channel.id, endpoint: 'push', retry_key: key, status: 500, request_id: null, accepted_request_id: null, outcome: 'retryable', error: 'LINE 500', started_at: at, duration_ms: 3 }).execute();
  }
  for (const [key, state, at] of [['old-sent', 'sent', daysAgo(31)], ['old-failed', 'failed', daysAgo(31)], ['old-pending', 'pending', daysAgo(31)], ['new-sent', 'sent', daysAgo(29)]] as const) {
    const chunk = await db
      .insertInto('line_multicasts')
      .values({ channel_id: channel.id, retry_key: key, messages: '[]', state, attempts: 1, first_attempt_at: at, created_at: at, updated_at: at })
      .returning('id')
      .executeTakeFirstOrThrow();
    await db.insertInto('line_multicast_members').values({ multicast_id: chunk.id, member_id: member.id, delivery_id: null }).execute();
  }
  return async () => ({
    lineEvents: (await db.selectFrom('line_events').select('webhook_event_id').orderBy('id').execute()).map((r) => r.webhook_event_id),
    meetingEvents: (await db.selectFrom('meeting_events').select('event_key').orderBy('id').execute()).map((r) => r.event_key),
    lineRequests: (await db.selectFrom('line_requests').select('retry_key').orderBy('id').execute()).map((r) => r.retry_key),
    chunks: (await db.selectFrom('line_multicasts').select('retry_key').orderBy('id').execute()).map((r) => r.retry_key),
    chunkMembers: (await db.selectFrom('line_multicast_members').select('multicast_id').execute()).length,
  });
}

describe.each(dialects)('retention on %s', (dialect) => {
  it('deletes finished rows past their retention, and only those', async () => {
    const database = await open(dialect);
    const left = await seed(database);
    const pruned = await pruneOnce(database.db, NOW, parseConfig({}, 'test').retention);
    expect(pruned).toEqual({ line_events: 1, meeting_events: 1, line_requests: 1, line_multicasts: 2 });
    expect(await left()).toEqual({
      // An event not applied yet stays whatever its age.
      lineEvents: ['old-waiting', 'new-done'],
      meetingEvents: ['old-waiting', 'new-done'],
      lineRequests: ['new'],
      // A chunk still to be sent stays; the member sets of deleted chunks go with them.
      chunks: ['old-pending', 'new-sent'],
      chunkMembers: 2,
    });
  });

  it('null keeps a table for ever; the loop prunes every interval on the clock and counts what it deleted', async () => {
    const database = await open(dialect);
    const left = await seed(database);
    const clock = virtualClock(NOW);
    const config = createConfigStore(parseConfig({ retention: { interval: '10m', webhookEvents: null, lineRequests: null } }, 'test'), { env: {} }, clock);
    const registry = new Registry();
    const retention = createRetention({ db: database.db, clock, config, logger: createLogger({ level: 'silent' }), registry });
    retention.start();
    const before = await left();
    await clock.advance(9 * 60_000);
    expect(await left()).toEqual(before);
    await clock.advance(60_000);
    for (let i = 0; i < 50 && (await left()).chunks.length > 2; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    expect(await left()).toEqual({ ...before, chunks: ['old-pending', 'new-sent'], chunkMembers: 2 });
    expect(await registry.getSingleMetricAsString('scheduler_pruned_rows_total')).toContain('scheduler_pruned_rows_total{table="line_multicasts"} 2');
    await retention.stop();
  });

  it('a changed interval moves the wait in progress from where it began: later when lengthened, sooner when shortened, at once when shortened below the time waited', async () => {
    const database = await open(dialect);
    const { db } = database;
    await seed(database);
    const clock = virtualClock(NOW);
    const env: Record<string, string> = { SCHEDULER__RETENTION__INTERVAL: '1d' };
    const config = createConfigStore(parseConfig({ retention: { interval: '1d' } }, 'test'), { env }, clock);
    const retention = createRetention({ db, clock, config, logger: createLogger({ level: 'silent' }), registry: new Registry() });
    const channel = await db.selectFrom('line_channels').select('id').executeTakeFirstOrThrow();
    // An old request-log row, as a marker: a pass deletes it.
    let markers = 0;
    const marker = async (): Promise<string> => {
      const key = `marker-${++markers}`;
      await db.insertInto('line_requests').values({ channel_id: channel.id, endpoint: 'push', retry_key: key, status: 500, request_id: null, accepted_request_id: null, outcome: 'retryable', error: 'LINE 500', started_at: daysAgo(100), duration_ms: 3 }).execute();
      return key;
    };
    const kept = async (key: string): Promise<boolean> => {
      await retention.idle();
      return (await db.selectFrom('line_requests').select('id').where('retry_key', '=', key).executeTakeFirst()) !== undefined;
    };
    const setInterval = (value: string): void => {
      env.SCHEDULER__RETENTION__INTERVAL = value;
      expect(config.reload('api')).toMatchObject({ status: 'applied', changed: ['retention.interval'] });
    };
    retention.start();

    // A day shortened to 20m five minutes in: the pass comes 20m after start, not a day after.
    const first = await marker();
    await clock.advance(5 * 60_000);
    setInterval('20m');
    await clock.advance(14 * 60_000);
    expect(await kept(first)).toBe(true);
    await clock.advance(60_000);
    expect(await kept(first)).toBe(false);

    // Lengthened to 1h ten minutes into the next wait: nothing at 20m, the pass an hour after the last.
    const second = await marker();
    await clock.advance(10 * 60_000);
    setInterval('1h');
    await clock.advance(40 * 60_000);
    expect(await kept(second)).toBe(true);
    await clock.advance(10 * 60_000);
    expect(await kept(second)).toBe(false);

    // Shortened to 5m fifteen minutes into the next wait: the pass runs at once.
    const third = await marker();
    await clock.advance(15 * 60_000);
    expect(await kept(third)).toBe(true);
    setInterval('5m');
    await clock.advance(0);
    expect(await kept(third)).toBe(false);
    await retention.stop();
  });

  it('a backlog larger than one batch goes in one pass, batch by batch', async () => {
    const database = await open(dialect);
    const left = await seed(database);
    const channel = await database.db.selectFrom('line_channels').select('id').executeTakeFirstOrThrow();
    const old = { channel_id: channel.id, endpoint: 'push', status: 500, request_id: null, accepted_request_id: null, outcome: 'retryable', error: 'LINE 500', started_at: daysAgo(100), duration_ms: 3 };
    await database.db.insertInto('line_requests').values(Array.from({ length: 2500 }, (_, i) => ({ ...old, retry_key: `backlog-${i}` }))).execute();
    const pruned = await pruneOnce(database.db, NOW, parseConfig({}, 'test').retention);
    expect(pruned.line_requests).toBe(2501);
    expect((await left()).lineRequests).toEqual(['new']);
  });
});

describe.each(dialects)('delivery retention on %s', (dialect) => {
  it('deletes settled deliveries that stopped being useful before their retention; keeps the rest, and all of them by default', async () => {
    const database = await open(dialect);
    const { db } = database;
    const clock = virtualClock(NOW);
    const channel = await insertLineChannel(db, createSecretBox(Buffer.alloc(32, 1)), clock, { label: 'A', slug: 'a', channelId: '1', channelSecret: 's', channelAccessToken: 't' });
    const schedule = await db
      .insertInto('schedules')
      .values({ external_id: 's', title: 't', starts_at: daysAgo(400), ends_at: daysAgo(399), trial: false, cancelled: false, min_participants: 0, version: 1, meeting_state: 'none', created_at: NOW, updated_at: NOW })
      .returning('id')
      .executeTakeFirstOrThrow();
    const rows: [string, 'sent' | 'expired' | 'cancelled' | 'pending', number][] = [
      ['old-sent', 'sent', 181],
      ['old-expired', 'expired', 200],
      ['old-cancelled', 'cancelled', 300],
      ['old-pending', 'pending', 300], // not settled: the engine expires it, with its reason, first
      ['new-sent', 'sent', 179],
    ];
    for (const [i, [key, state, age]] of rows.entries()) {
      // One student per booking: a student has at most one live booking in a class (0014-one-live-booking).
      const member = await db.insertInto('members').values({ channel_id: channel.id, line_user_id: `U${String(i).repeat(32)}`, following: 'following', created_at: NOW, updated_at: NOW }).returning('id').executeTakeFirstOrThrow();
      const appointment = await db.insertInto('appointments').values({ external_id: key, schedule_id: schedule.id, member_id: member.id, cancelled: false, created_at: NOW, updated_at: NOW }).returning('id').executeTakeFirstOrThrow();
      await db
        .insertInto('deliveries')
        .values({ appointment_id: appointment.id, kind: 'meeting_url', due_at: daysAgo(age), not_after: daysAgo(age), available_at: daysAgo(age), state, attempts: 1, retry_key: key, schedule_version: 1, created_at: NOW, updated_at: NOW })
        .execute();
    }
    const left = async () => (await db.selectFrom('deliveries').select('retry_key').orderBy('id').execute()).map((r) => r.retry_key);
    expect(await pruneOnce(db, NOW, parseConfig({}, 'test').retention)).not.toHaveProperty('deliveries');
    expect(await left()).toHaveLength(5);
    expect(await pruneOnce(db, NOW, parseConfig({ retention: { deliveries: '180d' } }, 'test').retention)).toMatchObject({ deliveries: 3 });
    expect(await left()).toEqual(['old-pending', 'new-sent']);
  });
});

describe('retention settings', () => {
  it('refuses an interval under a minute (a tight delete loop), and takes null as "keep for ever"', () => {
    expect(() => parseConfig({ retention: { interval: '0s' } }, 'test')).toThrow(/retention.interval must be at least 1m/);
    expect(parseConfig({ retention: { webhookEvents: null } }, 'test').retention).toMatchObject({ webhookEvents: null, lineRequests: { ms: 90 * 86_400_000 } });
  });
});
