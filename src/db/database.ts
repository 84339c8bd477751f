import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Kysely, PostgresAdapter, PostgresDialect, SqliteAdapter, SqliteDialect, sql, type Dialect as KyselyDialect, type LogEvent } from 'kysely';
import pg from 'pg';
import { openNodeSqlite } from './sqlite-driver.ts';
import type { Tables } from './tables.ts';

/** Every DB operation takes this first; a transaction is one too. */
export type Db = Kysely<Tables>;
export type Dialect = 'sqlite' | 'postgres';

export interface Database {
  db: Db;
  dialect: Dialect;
  /** The SQLite file, when there is one (key file and single-process check live beside it). */
  sqlitePath?: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  poolSize?: number;
  /** PostgreSQL schema to use (created if missing); tests isolate themselves this way. */
  schema?: string;
  /** Called once per statement sent (benchmarks count database round trips). */
  onQuery?: (sqlText: string) => void;
}

export function parseDatabaseUrl(url: string): { dialect: 'sqlite'; path: string } | { dialect: 'postgres'; url: string } {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    return { dialect: 'sqlite', path: path === ':memory:' ? ':memory:' : path.replace(/^\/\/(?=\/)/, '') };
  }
  if (/^postgres(ql)?:\/\//.test(url)) return { dialect: 'postgres', url };
  throw new Error(`unsupported database url (use sqlite:<path> or postgres://…)`);
}

export async function openDatabase(url: string, options: OpenOptions = {}): Promise<Database> {
  const target = parseDatabaseUrl(url);
  if (target.dialect === 'sqlite') {
    const path = target.path === ':memory:' ? ':memory:' : resolve(target.path);
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    const { database } = openNodeSqlite(path);
    const db = new Kysely<Tables>({ dialect: sqliteDialect(new SqliteDialect({ database })), ...logOption(options) });
    return { db, dialect: 'sqlite', ...(path === ':memory:' ? {} : { sqlitePath: path }), close: () => db.destroy() };
  }
  const schema = options.schema;
  if (schema && !/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`invalid schema name ${schema}`);
  const pool = new pg.Pool({
    connectionString: target.url,
    max: options.poolSize ?? 10,
    types: { getTypeParser: pgTypeParser },
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const db = new Kysely<Tables>({ dialect: new PostgresDialect({ pool }), ...logOption(options) });
  if (schema) await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
  return { db, dialect: 'postgres', close: () => db.destroy() };
}

function logOption(options: OpenOptions): { log?: (event: LogEvent) => void } {
  const onQuery = options.onQuery;
  return onQuery ? { log: (event: LogEvent) => onQuery(event.query.sql) } : {};
}

/** int8 (counts, ids) as JS numbers: our values stay far below 2^53. */
function pgTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
  if (oid === 20) return (value: string) => Number(value);
  return pg.types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown;
}

/** The one place that tells dialects apart at run time. */
export function dialectOf(db: Db): Dialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/**
 * True for a write that lost a race with another transaction and was rolled back whole: a unique
 * violation (two first writes of one key), a deadlock, a serialization failure, a lock not granted,
 * or SQLite busy. Repeating the request is safe and will see the other's result.
 */
export function isConcurrencyFailure(error: unknown): boolean {
  if (isUniqueViolation(error)) return true;
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  const errcode = (error as { errcode?: unknown }).errcode;
  return code === '40P01' || code === '40001' || code === '55P03' || errcode === 5 || errcode === 6;
}

/** True for a unique-constraint violation on either dialect. */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  const errcode = (error as { errcode?: unknown }).errcode;
  const message = String((error as { message?: unknown }).message ?? '');
  return code === '23505' || errcode === 2067 || errcode === 1555 || message.includes('UNIQUE constraint failed');
}

/**
 * SQLite has transactional DDL, but Kysely's adapter says it has not, so its Migrator ran SQLite
 * migrations bare: a kill between a migration and its record left it applied but unrecorded, and
 * every later start failed on it. With the flag set, the pending migrations and their records commit
 * together, as on PostgreSQL. (A subclass only to correct that one capability flag.)
 */
class TransactionalSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

function sqliteDialect(base: SqliteDialect): KyselyDialect {
  return {
    createAdapter: () => new TransactionalSqliteAdapter(),
    createDriver: () => base.createDriver(),
    createQueryCompiler: () => base.createQueryCompiler(),
    createIntrospector: (db) => base.createIntrospector(db),
  };
}
