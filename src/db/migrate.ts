import type { Kysely } from 'kysely';
import { Migrator, type Migration, type MigrationResultSet } from 'kysely/migration';
import { sql } from 'kysely';
import { dialectOf, type Db, type Dialect } from './database.ts';
import * as initial from './migrations/0001-initial.ts';
import * as zoom from './migrations/0002-zoom.ts';
import * as line from './migrations/0003-line.ts';
import * as monitor from './migrations/0004-monitor.ts';
import * as claimIndexes from './migrations/0005-claim-indexes.ts';
import * as meetingIntent from './migrations/0006-meeting-intent.ts';
import * as meetingClosed from './migrations/0007-meeting-closed.ts';
import * as deliveryOccasion from './migrations/0008-delivery-occasion.ts';
import * as sourceRevision from './migrations/0009-source-revision.ts';
import * as lineEventRetries from './migrations/0010-line-event-retries.ts';
import * as deliveriesDueIndex from './migrations/0011-deliveries-due-index.ts';
import * as deliveriesRetryKeyUnindexed from './migrations/0012-deliveries-retry-key-unindexed.ts';
import * as oneLiveBooking from './migrations/0014-one-live-booking.ts';
import * as zoomRefusalsTopicsRehosts from './migrations/0013-zoom-refusals-topics-rehosts.ts';

/**
 * Numbered migrations, in code so they ship with the source and need no file lookup at run time.
 * Kysely's Migrator records applied ones and takes a lock, so running it twice or from two
 * replicas at once is safe.
 */
const MIGRATIONS: Record<string, { up(db: Kysely<unknown>, dialect: Dialect): Promise<void> }> = {
  '0001-initial': initial,
  '0002-zoom': zoom,
  '0003-line': line,
  '0004-monitor': monitor,
  '0005-claim-indexes': claimIndexes,
  '0006-meeting-intent': meetingIntent,
  '0007-meeting-closed': meetingClosed,
  '0008-delivery-occasion': deliveryOccasion,
  '0009-source-revision': sourceRevision,
  '0010-line-event-retries': lineEventRetries,
  '0011-deliveries-due-index': deliveriesDueIndex,
  '0012-deliveries-retry-key-unindexed': deliveriesRetryKeyUnindexed,
  '0014-one-live-booking': oneLiveBooking,
  '0013-zoom-refusals-topics-rehosts': zoomRefusalsTopicsRehosts,
};

export interface MigrationReport {
  applied: string[];
  alreadyApplied: number;
}

/**
 * Kysely looks for its bookkeeping tables across every schema it can see; pin them to the schema in
 * use, or a second deployment (or test) in another schema of the same database would hide them.
 */
async function migrationSchema(db: Db, dialect: Dialect): Promise<{ migrationTableSchema?: string }> {
  if (dialect !== 'postgres') return {};
  const row = await sql<{ schema: string }>`select current_schema() as schema`.execute(db);
  const schema = row.rows[0]?.schema;
  return schema ? { migrationTableSchema: schema } : {};
}

/**
 * Kysely's Migrator finds its tables by reading the catalog of every schema in the database. A schema
 * dropped while it reads (another deployment sharing the database; our tests drop one per test) makes
 * it fail with "schema … does not exist". So it runs on one connection holding the shared side of
 * this advisory lock; whoever drops a schema takes the exclusive side (`pg_advisory_lock`) first.
 */
export const CATALOG_LOCK_KEY = 73_512_026;

async function withCatalogLock<T>(db: Db, fn: (db: Db) => Promise<T>): Promise<T> {
  if (dialectOf(db) !== 'postgres') return fn(db);
  // One connection for the lock and the work (a pool of one, as `scheduler migrate` uses, must not wait on itself).
  return db.connection().execute(async (conn) => {
    await sql`select pg_advisory_lock_shared(${CATALOG_LOCK_KEY})`.execute(conn);
    try {
      return await fn(conn);
    } finally {
      await sql`select pg_advisory_unlock_shared(${CATALOG_LOCK_KEY})`.execute(conn);
    }
  });
}

export async function migrate(db: Db, dialect: Dialect): Promise<MigrationReport> {
  return withCatalogLock(db, (conn) => migrateOn(conn, dialect));
}

async function migrateOn(db: Db, dialect: Dialect): Promise<MigrationReport> {
  const migrator = new Migrator({
    db,
    ...(await migrationSchema(db, dialect)),
    provider: {
      getMigrations: async (): Promise<Record<string, Migration>> =>
        Object.fromEntries(
          // Kysely runs the pending migrations and their records in one transaction, on SQLite too
          // (see TransactionalSqliteAdapter).
          Object.entries(MIGRATIONS).map(([name, m]) => [name, { up: (inner: Kysely<unknown>) => m.up(inner, dialect) }]),
        ),
    },
  });
  const result: MigrationResultSet = await migrator.migrateToLatest();
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`migration ${failed} failed: ${String((result.error as Error).message ?? result.error)}`, {
      cause: result.error,
    });
  }
  const applied = (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  return { applied, alreadyApplied: Object.keys(MIGRATIONS).length - applied.length };
}

/**
 * Names of migrations not yet applied (the readiness probe, every few seconds): one read of Kysely's
 * record in our own schema, not the Migrator's introspection of every table in every schema.
 */
export async function pendingMigrations(db: Db): Promise<string[]> {
  const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
  const done = new Set(applied.rows.map((r) => r.name));
  return Object.keys(MIGRATIONS).filter((name) => !done.has(name));
}
