import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { toBool, toDate, valuesTable } from '../../src/db/row.ts';
import { dialects, openTestDatabase, type TestDatabase } from '../support/databases.ts';

describe.each(dialects)('valuesTable on %s', (dialect) => {
  let database: TestDatabase | undefined;
  afterEach(async () => {
    await database?.close();
    database = undefined;
  });

  it('carries every value through as written, awkward text, nulls and large ids included', async () => {
    database = await openTestDatabase(dialect);
    // What breaks an array literal or a VALUES list if quoted wrongly: quotes, backslashes, braces,
    // commas, the word NULL, empty text, line breaks and text outside Latin-1.
    const texts = ['plain', 'say "hi"', 'back\\slash', '{braces}', 'a,b', 'NULL', '', 'line\nbreak', "it's", '上課連結 🎓', null];
    const rows = texts.map((text, i) => [9_007_199_254_740_000 + i, text, i % 2 === 0, i === 3 ? null : new Date(Date.UTC(2026, 11, 1, 12, 0, i, 5)), i - 5] as const);
    const v = valuesTable(database.db, [['id', 'id'], ['note', 'text'], ['flag', 'flag'], ['at', 'instant'], ['n', 'int']], rows);
    const result = await sql<{ id: number | string; note: string | null; flag: boolean | number; at: Date | string | null; n: number }>`select id, note, flag, at, n from ${v} order by id`.execute(database.db);
    expect(result.rows.map((r) => [Number(r.id), r.note, toBool(r.flag), r.at === null ? null : toDate(r.at).toISOString(), Number(r.n)])).toEqual(
      rows.map(([id, text, flag, at, n]) => [id, text, flag, at?.toISOString() ?? null, n]),
    );
  });

  it('updates many rows from one statement (the shape every caller uses)', async () => {
    database = await openTestDatabase(dialect);
    await sql`create table vt (id integer primary key, label text)`.execute(database.db);
    await sql`insert into vt (id, label) values (1, 'a'), (2, 'b'), (3, 'c')`.execute(database.db);
    const v = valuesTable(database.db, [['id', 'id'], ['label', 'text']], [[1, 'x"1'], [3, null]]);
    await sql`update vt set label = v.label from ${v} where vt.id = v.id`.execute(database.db);
    const rows = await sql<{ id: number; label: string | null }>`select id, label from vt order by id`.execute(database.db);
    expect(rows.rows.map((r) => [Number(r.id), r.label])).toEqual([[1, 'x"1'], [2, 'b'], [3, null]]);
  });
});
