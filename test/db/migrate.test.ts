import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { migrate, pendingMigrations } from '../../src/db/migrate.ts';
import { openDatabase } from '../../src/db/database.ts';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

describe.each(dialects)('migrations on %s', (dialect) => {
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await database?.close();
    database = undefined;
  });

  it('applies once and is idempotent', async () => {
    database = await openTestDatabase(dialect);
    expect(await pendingMigrations(database.db)).toEqual([]);
    const again = await migrate(database.db, dialect);
    expect(again.applied).toEqual([]);
    expect(again.alreadyApplied).toBeGreaterThan(0);
  });

  it('reports a migration not applied (the readiness probe) from its record alone', async () => {
    database = await openTestDatabase(dialect);
    await sql`delete from kysely_migration where name = ${'0008-delivery-occasion'}`.execute(database.db);
    expect(await pendingMigrations(database.db)).toEqual(['0008-delivery-occasion']);
  });

  it('leaves no index on deliveries.retry_key on PostgreSQL, where every claim and completion would write to it', async () => {
    database = await openTestDatabase(dialect);
    const indexes = dialect === 'postgres'
      ? await sql<{ def: string }>`select indexdef as def from pg_indexes where tablename = 'deliveries' and schemaname = current_schema()`.execute(database.db)
      : await sql<{ def: string }>`select il.name as def from pragma_index_list('deliveries') il join pragma_index_info(il.name) ii where ii.name = 'retry_key'`.execute(database.db);
    const onKey = indexes.rows.filter((r) => dialect === 'sqlite' || /\bretry_key\b/.test(r.def));
    expect(onKey.length).toBe(dialect === 'postgres' ? 0 : 1);
  });

  it('enforces the data model constraints in the database', async () => {
    database = await openTestDatabase(dialect);
    const now = new Date('2026-01-01T00:00:00Z');
    const insertSchedule = (startsAt: Date, endsAt: Date) =>
      database!.db
        .insertInto('schedules')
        .values({ external_id: 'x', title: 't', starts_at: startsAt, ends_at: endsAt, trial: false, cancelled: false, min_participants: 0, version: 1, meeting_state: 'none', created_at: now, updated_at: now })
        .execute();
    await expect(insertSchedule(now, now)).rejects.toThrow();
    await insertSchedule(now, new Date(now.getTime() + 60_000));
    await expect(insertSchedule(now, new Date(now.getTime() + 60_000))).rejects.toThrow();
  });
});

describe('SQLite migrations', () => {
  it('a migration and its record commit together: a stop between them leaves neither, and the next start applies it', async () => {
    const database = await openDatabase('sqlite::memory:');
    try {
      await migrate(database.db, 'sqlite');
      // Back to before the migration that builds deliveries_due, then a "kill" right as its record
      // is written. The ones after it run again on the next start, so each must be safe to repeat.
      const last = '0011-deliveries-due-index';
      const after = ['0012-deliveries-retry-key-unindexed', '0013-zoom-refusals-topics-rehosts', '0014-one-live-booking'];
      await sql`delete from kysely_migration where name >= ${last}`.execute(database.db);
      await sql`drop index deliveries_due`.execute(database.db);
      await sql`create trigger killed before insert on kysely_migration when new.name = ${sql.lit(last)} begin select raise(abort, 'process killed'); end`.execute(database.db);
      await expect(migrate(database.db, 'sqlite')).rejects.toThrow(/killed/);
      const index = await sql<{ name: string }>`select name from sqlite_master where type = 'index' and name = 'deliveries_due'`.execute(database.db);
      expect(index.rows).toEqual([]);
      await sql`drop trigger killed`.execute(database.db);
      await expect(migrate(database.db, 'sqlite')).resolves.toMatchObject({ applied: [last, ...after] });
    } finally {
      await database.close();
    }
  });
});

describe('SQLite file database', () => {
  it('creates the file and its folder on first run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scheduler-'));
    try {
      const path = join(dir, 'nested', 'scheduler.db');
      const database = await openDatabase(`sqlite:${path}`);
      await migrate(database.db, 'sqlite');
      expect(database.sqlitePath).toBe(path);
      await database.close();
      expect(existsSync(path)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
