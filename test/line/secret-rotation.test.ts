import { SelectQueryNode, TableNode, type KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import type { Db } from '../../src/db/database.ts';
import { updateLineChannel } from '../../src/line/channels.ts';
import { signLineBody } from '../../src/sandbox/line/index.ts';
import { dialects } from '../support/databases.ts';
import { ALICE, countRows, memberOf, openLineHarness, type LineHarness } from './support.ts';

let h: LineHarness;
afterEach(async () => {
  await h.close();
});

const NEW_SECRET = 'f'.repeat(32);
const WRONG_SECRET = 'e'.repeat(32);
const REJECTED = { error: 'unauthorized', message: 'missing or invalid x-line-signature' };

/** A webhook to channel `slug` by path, signed with `secret` (none: no signature header). */
async function webhook(slug: string, rawBody: string, secret?: string): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
  if (secret !== undefined) headers['x-line-signature'] = signLineBody(secret, rawBody);
  const response = await h.app.inject({ method: 'POST', url: `/webhooks/line/${slug}`, headers, payload: rawBody });
  return { status: response.statusCode, body: response.json() };
}

/**
 * Wraps the LINE runtime's database handle to count the statements reading `line_channels`: the
 * pool's change check and its reload, so a test sees what a request costs the database.
 */
function countingChannelReads(): { wrap: (db: Db) => Db; reads: () => number } {
  let reads = 0;
  const plugin: KyselyPlugin = {
    transformQuery({ node }) {
      if (SelectQueryNode.is(node) && node.from?.froms.some((f) => TableNode.is(f) && f.table.identifier.name === 'line_channels')) reads++;
      return node;
    },
    transformResult: async ({ result }) => result,
  };
  return { wrap: (db) => db.withPlugin(plugin), reads: () => reads };
}

describe.each(dialects)('LINE channel secret rotation on %s', (dialect) => {
  it('a webhook signed with the new secret is accepted as soon as the rotation is saved through the admin API; the old secret is refused', async () => {
    h = await openLineHarness(dialect);
    // The operator reissues the channel secret in the LINE console and stores it here.
    const patched = await h.app.inject({ method: 'PATCH', url: `/api/line-channels/${h.a.row.id}`, payload: { channelSecret: NEW_SECRET } });
    expect(patched.statusCode).toBe(200);

    // LINE signs with the new secret at once, and does not redeliver by default: this follow must not be lost.
    const follow = JSON.stringify({ destination: h.a.botUserId, events: [h.emulator.events.followEvent(ALICE)] });
    expect(await webhook('school-a', follow, NEW_SECRET)).toEqual({ status: 200, body: { stored: 1, duplicates: 0 } });
    await h.line.processor.idle();
    expect(await memberOf(h, h.a, ALICE)).toMatchObject({ following: 'following' });

    // The old secret no longer passes: same answer and log as any bad signature.
    const unfollow = JSON.stringify({ destination: h.a.botUserId, events: [h.emulator.events.unfollowEvent(ALICE)] });
    expect(await webhook('school-a', unfollow, h.a.secret)).toEqual({ status: 401, body: REJECTED });
    expect(h.logs.some((l) => l.includes('LINE webhook with a missing or wrong signature rejected'))).toBe(true);
    await h.line.processor.idle();
    expect(await countRows(h, 'line_events')).toBe(1);
    expect(await memberOf(h, h.a, ALICE)).toMatchObject({ following: 'following' });
  });

  it('a new access token saved through the admin API is the one this replica sends with at once, not after line.channelRefresh', async () => {
    h = await openLineHarness(dialect);
    expect((await h.line.pool.byId(h.a.row.id))?.channelAccessToken).not.toBe('rotated-token');
    const patched = await h.app.inject({ method: 'PATCH', url: `/api/line-channels/${h.a.row.id}`, payload: { channelAccessToken: 'rotated-token' } });
    expect(patched.statusCode).toBe(200);
    expect((await h.line.pool.byId(h.a.row.id))?.channelAccessToken).toBe('rotated-token');
  });

  it('a rotation by another replica is picked up by the next badly signed webhook; a flood of them reloads at most once a second, shared with unknown slugs', async () => {
    const counter = countingChannelReads();
    h = await openLineHarness(dialect, { lineDb: counter.wrap });
    // Another replica (or the CLI) stores the new secret: this pool is not told.
    await updateLineChannel(h.database.db, h.box, h.clock, h.a.row.id, { channelSecret: NEW_SECRET });
    const empty = JSON.stringify({ destination: h.a.botUserId, events: [] });
    const start = counter.reads();

    // No signature at all: nothing to look up.
    expect(await webhook('school-a', empty)).toEqual({ status: 401, body: REJECTED });
    expect(counter.reads() - start).toBe(0);

    // Sequential, at one instant (concurrent ones would share one reload anyway): the first looks
    // for a change and finds it (a check, then the load); the rest wait out the second.
    for (let i = 0; i < 20; i++) expect(await webhook('school-a', empty, WRONG_SECRET)).toEqual({ status: 401, body: REJECTED });
    expect(counter.reads() - start).toBe(2);

    // That reload brought the new secret, well before line.channelRefresh.
    expect(await webhook('school-a', empty, NEW_SECRET)).toEqual({ status: 200, body: { stored: 0, duplicates: 0 } });
    // One budget for both triggers: an unknown slug in the same second costs nothing either.
    expect((await webhook('school-z', empty, WRONG_SECRET)).status).toBe(404);
    expect(counter.reads() - start).toBe(2);

    // A second later, one more check (nothing changed, so no load) for the whole next flood.
    await h.clock.advance(1000);
    for (let i = 0; i < 20; i++) expect(await webhook('school-a', empty, WRONG_SECRET)).toEqual({ status: 401, body: REJECTED });
    expect(counter.reads() - start).toBe(3);
  });
});
