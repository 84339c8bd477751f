import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openDatabase, type Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';

/**
 * A fresh, migrated database for one benchmark run: a SQLite file in a temporary folder, or a
 * schema of its own on PostgreSQL. `close` removes it.
 */
export async function openBenchDatabase(pgUrl: string | undefined, tag: string, options: { poolSize?: number; onQuery?: (sqlText: string) => void } = {}): Promise<Database> {
  const extra = { ...(options.poolSize ? { poolSize: options.poolSize } : {}), ...(options.onQuery ? { onQuery: options.onQuery } : {}) };
  if (pgUrl) {
    const schema = `bench_${tag}_${randomBytes(4).toString('hex')}`;
    const database = await openDatabase(pgUrl, { schema, ...extra });
    await migrate(database.db, database.dialect);
    return {
      ...database,
      close: async () => {
        await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(database.db).catch(() => undefined);
        await database.close();
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), `bench-${tag}-`));
  const database = await openDatabase(`sqlite:${join(dir, `${tag}.db`)}`, extra);
  await migrate(database.db, database.dialect);
  return {
    ...database,
    close: async () => {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
