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

/** How a column of `valuesTable` is typed: VALUES lists carry no column types on PostgreSQL. */
export type ValuesColumn = 'id' | 'int' | 'flag' | 'instant' | 'text';

/**
 * Rows of values as a derived table `v` with named, typed columns, for one `update … from` that gives
 * each of many rows its own values: a statement per row was most of a bulk write's time. `columns`
 * names each position of every row.
 */
export function valuesTable(db: Db, columns: readonly (readonly [name: string, type: ValuesColumn])[], rows: readonly (readonly unknown[])[]): RawBuilder<unknown> {
  const postgres = dialectOf(db) === 'postgres';
  const typed = (i: number, type: ValuesColumn) => {
    const column = sql.ref(`column${i + 1}`);
    if (type === 'text' || (type === 'instant' && !postgres)) return column;
    const to = type === 'instant' ? 'timestamptz' : type === 'flag' && postgres ? 'boolean' : type === 'id' && postgres ? 'bigint' : 'integer';
    return sql`cast(${column} as ${sql.raw(to)})`;
  };
  const select = sql.join(columns.map(([name, type], i) => sql`${typed(i, type)} as ${sql.id(name)}`));
  const values = sql.join(rows.map((row) => sql`(${sql.join(row.map((value) => sql`${value}`))})`));
  return sql`(select ${select} from (values ${values}) as t) as v`;
}
