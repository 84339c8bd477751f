import { sql, type RawBuilder, type SqlBool } from 'kysely';
import { dialectOf, type Db } from './database.ts';

/** Mapping helpers from what either dialect returns to domain values. */

export function toDate(value: Date | string): Date {
  return value instanceof Date ? value : new Date(value);
}

export function toOptionalDate(value: Date | string | null): Date | null {
  return value === null ? null : toDate(value);
}

export function toBool(value: boolean | number): boolean {
  return value === true || value === 1;
}

export function fromJson(value: unknown): unknown {
  return typeof value === 'string' ? JSON.parse(value) : value;
}

/**
 * `column in (ids)` as one statement parameter whatever the number of ids (a PostgreSQL array, a
 * JSON list on SQLite). An IN list binds one parameter per id, and a timing wheel's page or a bulk
 * change can pass the dialects' limits (32,766 on SQLite, 65,535 on PostgreSQL).
 */
export function inIds(db: Db, column: string, ids: readonly number[]): RawBuilder<SqlBool> {
  return dialectOf(db) === 'postgres'
    ? sql<SqlBool>`${sql.ref(column)} = any(${[...ids]}::bigint[])`
    : sql<SqlBool>`${sql.ref(column)} in (select value from json_each(${JSON.stringify(ids)}))`;
}
