import { request } from 'node:http';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { insertLineChannel, updateLineChannel } from '../../src/line/channels.ts';
import { MAX_ATTEMPTS } from '../../src/line/event-processor.ts';
import { asRedelivery, signLineBody } from '../../src/sandbox/line/index.ts';
import { dialects } from '../support/databases.ts';
import { ALICE, BOB, CAROL, countRows, memberOf, openLineHarness, WEBHOOK_DOMAIN, type HarnessChannel, type LineHarness } from './support.ts';

let h: LineHarness;
afterEach(async () => {
  await h.close();
});

/** A POST with a body signed (or not) as given, for the cases LINE itself would never send (node:http: fetch cannot set Host). */
function post(url: string, rawBody: string, options: { secret?: string; signature?: string; host?: string } = {}): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(rawBody)) };
  const signature = options.signature ?? (options.secret === undefined ? undefined : signLineBody(options.secret, rawBody));
  if (signature !== undefined) headers['x-line-signature'] = signature;
  if (options.host !== undefined) headers.host = options.host;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as unknown) : undefined });
      });
    });
    req.on('error', reject);
    req.end(rawBody);
  });
}

const hostOf = (slug: string): string => `${slug}.${WEBHOOK_DOMAIN}`;

/**
 * A real database error while applying follow events, without touching our code: a trigger that
 * rejects every member write, as a lock timeout or a serialization failure would (PostgreSQL:
 * SQLSTATE 40001). Returns how to heal the database.
 */
async function breakMemberWrites(h: LineHarness): Promise<() => Promise<void>> {
  const { db, dialect } = h.database;
  if (dialect === 'sqlite') {
    await sql`create trigger fail_members before insert on members begin select raise(abort, 'simulated transient failure'); end`.execute(db);
    return async () => void (await sql`drop trigger fail_members`.execute(db));
  }
  // Unqualified names land in the test's own schema (first on the search_path; dropped with it).
  await sql.raw(`create or replace function fail_members() returns trigger language plpgsql as $$ begin raise exception 'simulated transient failure' using errcode = '40001'; end $$`).execute(db);
  await sql`create trigger fail_members before insert on members for each row execute function fail_members()`.execute(db);
  return async () => void (await sql`drop trigger fail_members on members`.execute(db));
}

async function eventState(h: LineHarness) {
  return h.database.db.selectFrom('line_events').select(['webhook_event_id', 'processed_at', 'outcome', 'error']).orderBy('id').execute();
}

describe.each(dialects)('LINE webhooks on %s', (dialect) => {
  /** Sends events as LINE does (signed by the emulator) to channel `c`, by subdomain; waits until they are applied. */
  const deliver = async (base: string, c: HarnessChannel, events: Parameters<LineHarness['emulator']['webhooks']['send']>[0]['events']) => {
    const result = await h.emulator.webhooks.send({ channelId: c.emulatorId, targetUrl: `${base}/webhooks/line`, host: hostOf(c.row.slug), events });
    await h.line.processor.idle();
    if (result.outcome !== 'response') throw new Error(`webhook got no answer: ${result.outcome}`);
    return { status: result.status, body: JSON.parse(result.responseBody) as unknown };
  };

  it("answers LINE's verification request (the official test vector) with 200 and stores nothing", async () => {
    h = await openLineHarness(dialect);
    await insertLineChannel(h.database.db, h.box, h.clock, {
      label: 'vector',
      slug: 'vector',
      channelId: '1000000001',
      channelSecret: '8c570fa6dd201bb328f1c1eac23a96d8',
      channelAccessToken: 'token-vector',
      botUserId: 'U8e742f61d673b39c7fff3cecb7536ef0',
    });
    const base = await h.listen();
    const body = '{"destination":"U8e742f61d673b39c7fff3cecb7536ef0","events":[]}';
    const ok = await post(`${base}/webhooks/line/vector`, body, { signature: 'GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=' });
    expect(ok).toEqual({ status: 200, body: { stored: 0, duplicates: 0 } });
    const tampered = await post(`${base}/webhooks/line/vector`, body.replace('[]', '[ ]'), { signature: 'GhRKmvmHys4Pi8DxkF4+EayaH0OqtJtaZxgTD9fMDLs=' });
    expect(tampered.status).toBe(401);
    expect(await countRows(h, 'line_events')).toBe(0);
  });

  it('rejects every bad request with the right status and stores nothing', async () => {
    h = await openLineHarness(dialect, { config: { line: { webhookBodyLimitBytes: 2048 } } });
    const base = await h.listen();
    const { a, b } = h;
    const follow = JSON.stringify({ destination: a.botUserId, events: [h.emulator.events.followEvent(ALICE)] });
    const cases: [string, () => Promise<{ status: number; body: unknown }>, number][] = [
      ['no signature', () => post(`${base}/webhooks/line`, follow, { host: hostOf('school-a') }), 401],
      ['empty signature', () => post(`${base}/webhooks/line`, follow, { host: hostOf('school-a'), signature: '' }), 401],
      ['signed with the other channel\'s secret', () => post(`${base}/webhooks/line`, follow, { host: hostOf('school-a'), secret: b.secret }), 401],
      ['signed, then altered', () => post(`${base}/webhooks/line/school-a`, follow.replace('follow', 'unfollow'), { signature: signLineBody(a.secret, follow) }), 401],
      ['unknown channel (path)', () => post(`${base}/webhooks/line/school-z`, follow, { secret: a.secret }), 404],
      ['unknown channel (subdomain)', () => post(`${base}/webhooks/line`, follow, { host: hostOf('school-z'), secret: a.secret }), 404],
      ['host outside the webhook domain', () => post(`${base}/webhooks/line`, follow, { host: 'school-a.example.org', secret: a.secret }), 404],
      ['malformed JSON', () => post(`${base}/webhooks/line/school-a`, '{"destination":', { secret: a.secret }), 400],
      ['JSON without events', () => post(`${base}/webhooks/line/school-a`, JSON.stringify({ destination: a.botUserId }), { secret: a.secret }), 400],
      ['event without webhookEventId', () => post(`${base}/webhooks/line/school-a`, JSON.stringify({ destination: a.botUserId, events: [{ type: 'follow', timestamp: 1 }] }), { secret: a.secret }), 400],
      ['for another bot', () => post(`${base}/webhooks/line/school-a`, JSON.stringify({ destination: b.botUserId, events: [h.emulator.events.followEvent(ALICE)] }), { secret: a.secret }), 400],
      ['over the body limit', () => post(`${base}/webhooks/line/school-a`, JSON.stringify({ destination: a.botUserId, events: [], pad: 'x'.repeat(4096) }), { secret: a.secret }), 413],
    ];
    for (const [name, request, status] of cases) {
      const got = await request();
      expect(got.status, name).toBe(status);
      expect(got.body, name).toMatchObject({ error: expect.any(String), message: expect.any(String) });
    }
    await h.line.processor.idle();
    expect(await countRows(h, 'line_events')).toBe(0);
    expect(await countRows(h, 'members')).toBe(0);
    expect(h.logs.some((l) => l.includes('missing or wrong signature'))).toBe(true);
  });

  it('routes by subdomain and by path across two channels with different secrets', async () => {
    h = await openLineHarness(dialect);
    const base = await h.listen();
    const bySubdomain = await h.emulator.webhooks.send({ channelId: h.a.emulatorId, targetUrl: `${base}/webhooks/line`, host: hostOf('school-a'), events: [h.emulator.events.followEvent(ALICE)] });
    const byPath = await h.emulator.webhooks.send({ channelId: h.b.emulatorId, targetUrl: `${base}/webhooks/line/school-b`, events: [h.emulator.events.followEvent(BOB)] });
    expect([bySubdomain, byPath].map((r) => r.outcome === 'response' && r.status)).toEqual([200, 200]);
    // Channel B's request at A's address is not from A.
    const crossed = await h.emulator.webhooks.send({ channelId: h.b.emulatorId, targetUrl: `${base}/webhooks/line/school-a`, events: [h.emulator.events.followEvent(CAROL)] });
    expect(crossed.outcome === 'response' && crossed.status).toBe(401);
    await h.line.processor.idle();

    expect(await memberOf(h, h.a, ALICE)).toMatchObject({ following: 'following' });
    expect(await memberOf(h, h.b, BOB)).toMatchObject({ following: 'following' });
    expect(await memberOf(h, h.a, BOB)).toBeUndefined();
    expect(await memberOf(h, h.b, ALICE)).toBeUndefined();
    expect(await memberOf(h, h.a, CAROL)).toBeUndefined();
    expect(await countRows(h, 'line_events')).toBe(2);
  });

  it('follow creates the member with the display name, unfollow only flips the status, re-follow restores', async () => {
    h = await openLineHarness(dialect);
    const base = await h.listen();
    const t0 = h.clock.now().getTime();
    await deliver(base, h.a, [h.emulator.events.followEvent(ALICE, { timestamp: t0 })]);
    const followed = await memberOf(h, h.a, ALICE);
    expect(followed).toMatchObject({ following: 'following', display_name: 'Alice' });
    expect(new Date(followed?.following_changed_at ?? 0).getTime()).toBe(t0);

    // A booking made meanwhile must survive the unfollow.
    const now = h.clock.now();
    const schedule = await h.database.db
      .insertInto('schedules')
      .values({ external_id: 's1', title: 'A1', starts_at: new Date(t0 + 3_600_000), ends_at: new Date(t0 + 7_200_000), trial: false, min_participants: 0, feedback_url: null, cancelled: false, version: 1, meeting_state: 'none', created_at: now, updated_at: now })
      .returning('id')
      .executeTakeFirstOrThrow();
    await h.database.db.insertInto('appointments').values({ external_id: 'a1', schedule_id: schedule.id, member_id: followed?.id ?? 0, cancelled: false, created_at: now, updated_at: now }).execute();

    await deliver(base, h.a, [h.emulator.events.unfollowEvent(ALICE, { timestamp: t0 + 1000 })]);
    const unfollowed = await memberOf(h, h.a, ALICE);
    expect(unfollowed).toMatchObject({ id: followed?.id, following: 'unfollowed', display_name: 'Alice' });
    expect(new Date(unfollowed?.following_changed_at ?? 0).getTime()).toBe(t0 + 1000);
    expect(await h.database.db.selectFrom('appointments').select('member_id').where('external_id', '=', 'a1').executeTakeFirst()).toEqual({ member_id: followed?.id });

    await deliver(base, h.a, [h.emulator.events.followEvent(ALICE, { timestamp: t0 + 2000, isUnblocked: true })]);
    expect(await memberOf(h, h.a, ALICE)).toMatchObject({ id: followed?.id, following: 'following' });
    expect(await countRows(h, 'members')).toBe(1);
  });

  it('redeliveries and duplicates change nothing; a late follow never undoes a newer unfollow', async () => {
    h = await openLineHarness(dialect);
    const base = await h.listen();
    const t0 = h.clock.now().getTime();
    const follow = h.emulator.events.followEvent(BOB, { timestamp: t0 });
    const unfollow = h.emulator.events.unfollowEvent(BOB, { timestamp: t0 + 5000 });
    expect((await deliver(base, h.a, [unfollow])).body).toEqual({ stored: 1, duplicates: 0 });
    // The older follow arrives after the newer unfollow (out of order), then again as a redelivery.
    expect((await deliver(base, h.a, [follow])).body).toEqual({ stored: 1, duplicates: 0 });
    expect((await deliver(base, h.a, [asRedelivery(follow), asRedelivery(unfollow)])).body).toEqual({ stored: 0, duplicates: 2 });
    expect((await deliver(base, h.a, [follow, follow])).body).toEqual({ stored: 0, duplicates: 2 });
    const member = await memberOf(h, h.a, BOB);
    expect(member).toMatchObject({ following: 'unfollowed' });
    expect(new Date(member?.following_changed_at ?? 0).getTime()).toBe(t0 + 5000);
    const outcomes = await h.database.db.selectFrom('line_events').select(['webhook_event_id', 'outcome']).orderBy('id').execute();
    expect(outcomes).toEqual([
      { webhook_event_id: unfollow.webhookEventId, outcome: 'applied' },
      { webhook_event_id: follow.webhookEventId, outcome: 'stale' },
    ]);

    // Newest first, each in its own request: the newest still wins.
    const carol = [0, 1, 2].map((i) => (i % 2 === 0 ? h.emulator.events.followEvent(CAROL, { timestamp: t0 + i * 1000 }) : h.emulator.events.unfollowEvent(CAROL, { timestamp: t0 + i * 1000 })));
    const results = await h.emulator.webhooks.sendSeparately({ channelId: h.a.emulatorId, targetUrl: `${base}/webhooks/line/school-a`, events: carol, order: 'newest-first' });
    expect(results.map((r) => r.outcome === 'response' && r.status)).toEqual([200, 200, 200]);
    await h.line.processor.idle();
    expect(await memberOf(h, h.a, CAROL)).toMatchObject({ following: 'following' });
    // Several events of one member in one request: only the newest is written.
    await deliver(base, h.b, [h.emulator.events.unfollowEvent(ALICE, { timestamp: t0 + 9000 }), h.emulator.events.followEvent(ALICE, { timestamp: t0 + 8000 })]);
    expect(await memberOf(h, h.b, ALICE)).toMatchObject({ following: 'unfollowed' });
  });

  it('standby events, events without a user id and other types are stored, logged and skipped', async () => {
    h = await openLineHarness(dialect);
    const base = await h.listen();
    const events = [
      h.emulator.events.followEvent(ALICE, { mode: 'standby' }),
      h.emulator.events.followEvent(null),
      h.emulator.events.messageEvent(BOB, 'hello'),
    ];
    expect((await deliver(base, h.a, events)).body).toEqual({ stored: 3, duplicates: 0 });
    expect(await countRows(h, 'members')).toBe(0);
    const rows = await h.database.db.selectFrom('line_events').select(['outcome', 'processed_at']).orderBy('id').execute();
    expect(rows.map((r) => r.outcome)).toEqual(['skipped: standby mode', 'skipped: no source.userId', 'ignored: message']);
    expect(rows.every((r) => r.processed_at !== null)).toBe(true);
    expect(h.logs.filter((l) => l.includes('LINE webhook event skipped'))).toHaveLength(2);
  });

  it('events stored but not processed (a crash after the ack) are applied by the next sweep', async () => {
    h = await openLineHarness(dialect);
    const now = h.clock.now();
    await h.database.db
      .insertInto('line_events')
      .values({ channel_id: h.a.row.id, webhook_event_id: 'E-left-behind', type: 'follow', line_user_id: ALICE, event_at: now, payload: JSON.stringify({ type: 'follow', mode: 'active' }), received_at: now })
      .execute();
    expect(await memberOf(h, h.a, ALICE)).toBeUndefined();
    await h.clock.advance(h.config.current().line.eventSweep.ms);
    await h.line.processor.idle();
    expect(await memberOf(h, h.a, ALICE)).toMatchObject({ following: 'following' });
  });

  it('an event whose application fails transiently waits out a backoff, then is applied', async () => {
    h = await openLineHarness(dialect);
    const base = await h.listen();
    const heal = await breakMemberWrites(h);
    expect((await deliver(base, h.a, [h.emulator.events.followEvent(ALICE)])).status).toBe(200);
    // Not set aside: still unprocessed, with the reason, and Alice not written.
    const [waiting] = await eventState(h);
    expect(waiting).toMatchObject({ processed_at: null, outcome: null, error: expect.stringContaining('simulated transient failure') });
    expect(await memberOf(h, h.a, ALICE)).toBeUndefined();
    expect(h.logs.some((l) => l.includes('LINE event could not be applied; will retry'))).toBe(true);

    // Healed, but the first backoff (2.5 s: half its 5 s ceiling) has not passed: a pass leaves it alone.
    await heal();
    await h.clock.advance(2499);
    h.line.processor.wake();
    await h.line.processor.idle();
    expect((await eventState(h))[0]?.processed_at).toBeNull();

    await h.clock.advance(1);
    h.line.processor.wake();
    await h.line.processor.idle();
    expect((await eventState(h))[0]).toMatchObject({ outcome: 'applied', error: null, processed_at: expect.anything() });
    expect(await memberOf(h, h.a, ALICE)).toMatchObject({ following: 'following' });
  });

  it(`an event that keeps failing is set aside after ${MAX_ATTEMPTS} attempts, without holding back the others`, async () => {
    h = await openLineHarness(dialect);
    const base = await h.listen();
    const heal = await breakMemberWrites(h);
    await deliver(base, h.a, [h.emulator.events.followEvent(ALICE)]);
    await heal();
    // Another event arriving meanwhile is applied at once.
    await deliver(base, h.a, [h.emulator.events.followEvent(BOB)]);
    expect(await memberOf(h, h.a, BOB)).toMatchObject({ following: 'following' });
    expect((await eventState(h))[0]?.processed_at).toBeNull();

    // Alice's event cannot be applied (as a row that always fails would): tried after each backoff.
    await breakMemberWrites(h);
    for (let minutes = 0; minutes < 3 * 60 && (await eventState(h))[0]?.processed_at === null; minutes += 5) {
      await h.clock.advance(5 * 60_000);
      await h.line.processor.idle();
    }
    expect((await eventState(h))[0]).toMatchObject({ outcome: 'failed', error: expect.stringMatching(new RegExp(`^gave up after ${MAX_ATTEMPTS} attempts: .*simulated transient failure`)) });
    const logged = (message: string) => h.logs.filter((l) => l.includes(message)).length;
    expect(logged('LINE event could not be applied; will retry')).toBe(MAX_ATTEMPTS - 1);
    expect(logged('LINE event could not be applied; gave up')).toBe(1);
    expect(await memberOf(h, h.a, ALICE)).toBeUndefined();
  });

  it('the tries and the backoff are kept in the event: a restart goes on counting, it does not start over', async () => {
    h = await openLineHarness(dialect);
    const base = await h.listen();
    await breakMemberWrites(h);
    await deliver(base, h.a, [h.emulator.events.followEvent(ALICE)]);
    const first = await h.database.db.selectFrom('line_events').select(['attempts', 'available_at', 'processed_at']).executeTakeFirstOrThrow();
    expect(first).toMatchObject({ attempts: 1, processed_at: null });
    expect(new Date(first.available_at ?? 0).getTime()).toBeGreaterThan(h.clock.now().getTime());
    // As an earlier process left it: all tries but one used up. The next failure sets it aside.
    await h.database.db.updateTable('line_events').set({ attempts: MAX_ATTEMPTS - 1, available_at: h.clock.now() }).execute();
    h.line.processor.wake();
    await h.line.processor.idle();
    expect((await eventState(h))[0]).toMatchObject({ outcome: 'failed', error: expect.stringMatching(new RegExp(`^gave up after ${MAX_ATTEMPTS} attempts`)) });
  });

  it('learns the bot user id from the first verified webhook, then holds later ones to it', async () => {
    h = await openLineHarness(dialect, { knownBotUserIds: false });
    const base = await h.listen();
    expect((await deliver(base, h.a, [])).status).toBe(200);
    const row = await h.database.db.selectFrom('line_channels').select('bot_user_id').where('id', '=', h.a.row.id).executeTakeFirst();
    expect(row?.bot_user_id).toBe(h.a.botUserId);
    const other = await h.emulator.webhooks.send({ channelId: h.a.emulatorId, targetUrl: `${base}/webhooks/line/school-a`, events: [], destination: h.b.botUserId });
    expect(other.outcome === 'response' && other.status).toBe(400);
  });

  it('the pool picks up a channel added after start at once, and a disabled one after line.channelRefresh', async () => {
    h = await openLineHarness(dialect);
    const base = await h.listen();
    const ch3 = h.emulator.addChannel({ users: [{ userId: ALICE }] });
    await insertLineChannel(h.database.db, h.box, h.clock, { label: 'C', slug: 'school-c', channelId: ch3.channelId, channelSecret: ch3.channelSecret, channelAccessToken: ch3.accessToken, botUserId: ch3.botUserId });
    const added = await h.emulator.webhooks.send({ channelId: ch3.channelId, targetUrl: `${base}/webhooks/line`, host: hostOf('school-c'), events: [h.emulator.events.followEvent(ALICE)] });
    expect(added.outcome === 'response' && added.status).toBe(200);
    expect((await h.line.pool.bySlug('school-c'))?.enabled).toBe(true);

    await updateLineChannel(h.database.db, h.box, h.clock, h.a.row.id, { enabled: false });
    expect((await h.line.pool.byId(h.a.row.id))?.enabled).toBe(true);
    await h.clock.advance(h.config.current().line.channelRefresh.ms);
    await until(async () => (await h.line.pool.byId(h.a.row.id))?.enabled === false);
    expect(h.logs.some((l) => l.includes('LINE channel disabled'))).toBe(true);
  });
});

/** Waits for a condition that other I/O makes true, without sleeping on wall time. */
async function until(condition: () => Promise<boolean> | boolean, tries = 20_000): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await condition()) return;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  throw new Error('condition not met');
}
