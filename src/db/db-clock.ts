import { sql, type RawBuilder } from 'kysely';
import type { Clock } from '../clock.ts';
import { dialectOf, type Db } from './database.ts';

/**
 * "Now" as the database sees it, optionally plus an offset, for comparing due times and setting
 * lease expiries. With the system clock every replica asks the database (one clock for all, no skew);
 * with a virtual clock the database is handed the virtual time (shifted by its `databaseOffsetMs`),
 * so tests run on virtual time.
 */
export function dbNow(db: Db, clock: Clock, plusMs = 0): RawBuilder<Date> {
  if (clock.kind === 'virtual') return sql<Date>`${new Date(clock.now().getTime() + (clock.databaseOffsetMs ?? 0) + plusMs)}`;
  if (dialectOf(db) === 'postgres') {
    return plusMs === 0 ? sql<Date>`now()` : sql<Date>`(now() + make_interval(secs => ${plusMs / 1000}))`;
  }
  // ISO-8601 with milliseconds, the format every instant is stored in on SQLite.
  return plusMs === 0
    ? sql<Date>`strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`
    : sql<Date>`strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ${`${plusMs >= 0 ? '+' : ''}${plusMs / 1000} seconds`})`;
}
