import type { Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { up } from '../../src/db/migrations/0013-zoom-refusals-topics-rehosts.ts';
import { claimMeetingWork } from '../../src/zoom/meeting-work.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

/** Migration 0013's backfill of the title a meeting's topic was made from: classes not over only. */
describe.each(dialects)('migration 0013 on %s', (dialect) => {
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await database?.close();
  });

  it('records the title of meetings of classes not over, and leaves the finished ones unknown (never re-titled)', async () => {
    database = await openTestDatabase(dialect);
    const db = database.db;
    // The migration runs at the real time: one class long over, one far ahead.
    const now = new Date();
    const day = 86_400_000;
    const insert = (externalId: string, startsAt: Date) =>
      db
        .insertInto('schedules')
        .values({ external_id: externalId, title: `title ${externalId}`, starts_at: startsAt, ends_at: new Date(startsAt.getTime() + 3_600_000), trial: false, cancelled: false, min_participants: 0, version: 1, meeting_state: 'ready', meeting_id: `m-${externalId}`, meeting_version: 1, meeting_account_id: null, created_at: now, updated_at: now })
        .execute();
    await insert('past', new Date(now.getTime() - 400 * day));
    await insert('ahead', new Date(now.getTime() + 2 * day));
    await insert('none', new Date(now.getTime() + 2 * day));
    await db.updateTable('schedules').set({ meeting_title: null }).execute();
    await db.updateTable('schedules').set({ meeting_id: null }).where('external_id', '=', 'none').execute();
    // Columns all there already: a re-run only backfills.
    await up(db as unknown as Kysely<unknown>, dialect);
    const titles = Object.fromEntries((await db.selectFrom('schedules').select(['external_id', 'meeting_title']).execute()).map((r) => [r.external_id, r.meeting_title]));
    expect(titles).toEqual({ past: null, ahead: 'title ahead', none: null });
    // A finished class with an unknown title is not claimed for a topic update.
    await db.updateTable('schedules').set({ title: 'renamed' }).where('external_id', '=', 'past').execute();
    const claimed = await claimMeetingWork(db, { owner: 't', now, horizonEnd: new Date(now.getTime() + 7 * day), leaseMs: 60_000, limit: 10 });
    expect(claimed.map((w) => w.externalId)).not.toContain('past');
  });
});
