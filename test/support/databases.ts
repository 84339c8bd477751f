import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { openDatabase, type Database, type Dialect } from '../../src/db/database.ts';
import { CATALOG_LOCK_KEY, migrate } from '../../src/db/migrate.ts';

/**
 * The dialects every DB test runs on: SQLite always; PostgreSQL when TEST_DATABASE_URL is set.
 * In CI it must be set: a CI run that silently skipped PostgreSQL would prove nothing about it.
 */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;
if (process.env.CI && !TEST_DATABASE_URL) throw new Error('CI is set but TEST_DATABASE_URL is not: the PostgreSQL half of the suite would be skipped');

export const dialects: Dialect[] = TEST_DATABASE_URL ? ['sqlite', 'postgres'] : ['sqlite'];

export interface TestDatabase extends Database {
  /** The URL and schema to open the same database again (a second "replica"). */
  url: string;
  schema?: string;
}

/** A fresh, migrated database: SQLite in memory, or a PostgreSQL schema of its own (dropped on close). */
export async function openTestDatabase(dialect: Dialect): Promise<TestDatabase> {
  if (dialect === 'sqlite') {
    const database = await openDatabase('sqlite::memory:');
    await migrate(database.db, 'sqlite');
    return { ...database, url: 'sqlite::memory:' };
  }
  if (!TEST_DATABASE_URL) throw new Error('TEST_DATABASE_URL is not set');
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const database = await openDatabase(TEST_DATABASE_URL, { schema, poolSize: 5 });
  await migrate(database.db, 'postgres');
  return {
    ...database,
    url: TEST_DATABASE_URL,
    schema,
    close: async () => {
      // Not while another test's migration reads the catalog of every schema (see CATALOG_LOCK_KEY).
      await database.db.connection().execute(async (conn) => {
        await sql`select pg_advisory_lock(${CATALOG_LOCK_KEY})`.execute(conn);
        try {
          await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(conn);
        } finally {
          await sql`select pg_advisory_unlock(${CATALOG_LOCK_KEY})`.execute(conn);
        }
      });
      await database.close();
    },
  };
}
