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
 * names each position of every row. On PostgreSQL each column goes as one array parameter, unnested:
 * a VALUES list binds a parameter per cell, and parsing, planning and binding 800 of them for 200 rows
 * cost more than the update itself (and capped a statement at 65,535 cells).
 */
export function valuesTable(db: Db, columns: readonly (readonly [name: string, type: ValuesColumn])[], rows: readonly (readonly unknown[])[]): RawBuilder<unknown> {
  if (dialectOf(db) === 'postgres') {
    const arrays = columns.map(([, type], i) => sql`${rows.map((row) => row[i])}::${sql.raw(PG_ARRAY[type])}`);
    return sql`unnest(${sql.join(arrays)}) as v(${sql.join(columns.map(([name]) => sql.id(name)))})`;
  }
  const typed = (i: number, type: ValuesColumn) => {
    const column = sql.ref(`column${i + 1}`);
    return type === 'text' || type === 'instant' ? column : sql`cast(${column} as integer)`;
  };
  const select = sql.join(columns.map(([name, type], i) => sql`${typed(i, type)} as ${sql.id(name)}`));
  const values = sql.join(rows.map((row) => sql`(${sql.join(row.map((value) => sql`${value}`))})`));
  return sql`(select ${select} from (values ${values}) as t) as v`;
}

const PG_ARRAY: Record<ValuesColumn, string> = { id: 'bigint[]', int: 'integer[]', flag: 'boolean[]', instant: 'timestamptz[]', text: 'text[]' };
