import { DatabaseSync, type SQLInputValue, type StatementSync } from 'node:sqlite';
import type { SqliteDatabase, SqliteStatement } from 'kysely';

/**
 * The subset of a SQLite database that Kysely's SqliteDialect needs, on Node's built-in `node:sqlite`
 * (no native addon to build for the wrong Node). Values are converted here, once, so query code can
 * pass booleans and Dates on both dialects: booleans become 0/1, Dates ISO-8601 UTC text.
 */
export function openNodeSqlite(path: string): { database: SqliteDatabase; raw: DatabaseSync } {
  const raw = new DatabaseSync(path);
  raw.exec('PRAGMA foreign_keys = ON');
  raw.exec('PRAGMA busy_timeout = 5000');
  if (path !== ':memory:') {
    raw.exec('PRAGMA journal_mode = WAL');
    raw.exec('PRAGMA synchronous = NORMAL');
  }
  const cache = new Map<string, SqliteStatement>();
  const database: SqliteDatabase = {
    close: () => {
      cache.clear();
      raw.close();
    },
    prepare(sql) {
      let statement = cache.get(sql);
      if (!statement) {
        statement = wrap(raw.prepare(sql));
        // Plain bounded cache: drop the oldest entry.
        if (cache.size >= 500) cache.delete(cache.keys().next().value ?? '');
        cache.set(sql, statement);
      }
      return statement;
    },
  };
  return { database, raw };
}

function wrap(statement: StatementSync): SqliteStatement {
  const reader = statement.columns().length > 0;
  return {
    reader,
    all: (parameters) => statement.all(...toSqlite(parameters)),
    run: (parameters) => statement.run(...toSqlite(parameters)),
    iterate: (parameters) => statement.iterate(...toSqlite(parameters)),
  };
}

function toSqlite(parameters: ReadonlyArray<unknown>): SQLInputValue[] {
  return parameters.map((value): SQLInputValue => {
    if (value === undefined || value === null) return null;
    if (typeof value === 'boolean') return value ? 1 : 0;
    if (value instanceof Date) return value.toISOString();
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint') return value;
    if (value instanceof Uint8Array) return value;
    throw new TypeError(`cannot bind a ${typeof value} to SQLite`);
  });
}
