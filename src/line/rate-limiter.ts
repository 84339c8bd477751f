import type { Clock } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import { sql, type SqlBool } from 'kysely';
import { dialectOf, type Db } from '../db/database.ts';
import { dbNow } from '../db/db-clock.ts';
import { toDate } from '../db/row.ts';
import { capacityOf, reserve, type BucketLimits } from './rate-bucket.ts';

/**
 * Per-channel rate limiting shared by every replica through the database. LINE limits each channel
 * (per endpoint) however many processes send for it, and the delivery engine spreads work over
 * replicas unevenly, so a per-replica share would either waste capacity or overshoot. Tokens are
 * reserved in blocks (as many as there are waiting sends), which keeps the shared row at a few
 * writes per second even at LINE's full rate.
 */
export type RateEndpoint = 'push' | 'multicast' | 'profile';

export interface RateLimiter {
  /** Resolves when one request to `endpoint` of this channel may go out now. */
  acquire(channelId: number, endpoint: RateEndpoint): Promise<void>;
}

export function limitsOf(config: ConfigStore, endpoint: RateEndpoint): BucketLimits {
  const { rateLimits, rateBurst } = config.current().line;
  const rate = rateLimits[endpoint];
  return { rate, capacity: capacityOf(rate, rateBurst.ms) };
}

/** A bucket row as last read or written, and the database's clock then. */
export interface KnownBucket {
  tokens: number;
  refilledAt: number;
  version: number;
  /** The database's time (ms) when this row was read or written, and this process's clock then. */
  dbAt: number;
  localAt: number;
}

/**
 * Takes up to `want` tokens from the channel's shared bucket. Optimistic: the write only counts if
 * the row's version is still the one read, so concurrent replicas never both spend the same tokens.
 * With `known` (the row as this process last wrote it) the read is skipped: when no other replica
 * wrote since, the version still matches and one statement does; when one did, the write misses and
 * the row is read afresh. A known row can only overstate the tokens (others only take), so a "wait"
 * decided from it is never wrong.
 *
 * The bucket refills by the database's clock, never a replica's own: the refill mark is shared, and
 * one replica whose clock ran ahead would move it into every other replica's future and starve them
 * all until real time caught up. The read returns the database's time with the row; a known row
 * carries it forward by this process's clock since, and the write only lands if that time is not
 * ahead of the database's clock (a clock stepped forward since: the row is read again). The mark
 * itself never moves back (see `refill`), so estimates a few ms apart mint no token twice.
 */
export async function reserveTokens(
  db: Db,
  input: { channelId: number; endpoint: RateEndpoint; want: number; clock: Clock; limits: BucketLimits; known?: KnownBucket | undefined },
): Promise<{ granted: number; waitMs: number; known?: KnownBucket }> {
  const { channelId, endpoint, clock, limits } = input;
  const postgres = dialectOf(db) === 'postgres';
  for (let tries = 0; tries < 8; tries++) {
    // The known row serves the first try only: after a missed write the row is read.
    let row = tries === 0 ? input.known : undefined;
    let nowMs: number;
    if (row) {
      nowMs = row.dbAt + Math.max(0, clock.now().getTime() - row.localAt);
    } else {
      const dbTime = dbNow(db, clock);
      const read = await db
        .selectFrom('line_rate_buckets')
        .select(['tokens', 'refilled_at', 'version'])
        .select((postgres ? sql<Date | string>`cast(${dbTime} as timestamptz)` : sql<Date | string>`${dbTime}`).as('db_now'))
        .where('channel_id', '=', channelId)
        .where('endpoint', '=', endpoint)
        .executeTakeFirst();
      if (!read) {
        await db
          .insertInto('line_rate_buckets')
          .values({ channel_id: channelId, endpoint, tokens: limits.capacity, refilled_at: dbNow(db, clock), version: 0 })
          .onConflict((oc) => oc.columns(['channel_id', 'endpoint']).doNothing())
          .execute();
        continue;
      }
      nowMs = toDate(read.db_now).getTime();
      row = { tokens: Number(read.tokens), refilledAt: toDate(read.refilled_at).getTime(), version: read.version, dbAt: nowMs, localAt: clock.now().getTime() };
    }
    const decision = reserve({ tokens: row.tokens, refilledAt: row.refilledAt }, input.want, nowMs, limits);
    if (decision.granted === 0) return { granted: 0, waitMs: decision.waitMs, known: row };
    // The version check makes the stored mark the one refilled from: the new mark is never behind it.
    const mark = new Date(decision.next.refilledAt);
    const seen = new Date(nowMs);
    const result = await db
      .updateTable('line_rate_buckets')
      .set({ tokens: decision.next.tokens, refilled_at: mark, version: row.version + 1 })
      .where('channel_id', '=', channelId)
      .where('endpoint', '=', endpoint)
      .where('version', '=', row.version)
      .where(postgres ? sql<SqlBool>`cast(${seen} as timestamptz) <= ${dbNow(db, clock)}` : sql<SqlBool>`${seen} <= ${dbNow(db, clock)}`)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 1) {
      return { granted: decision.granted, waitMs: 0, known: { ...decision.next, version: row.version + 1, dbAt: nowMs, localAt: clock.now().getTime() } };
    }
  }
  // Lost the race eight times in a row: let the other replicas have this moment.
  return { granted: 0, waitMs: 5 };
}

interface Waiter {
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface Queue {
  waiters: Waiter[];
  pumping: boolean;
  /** The bucket row as this process last saw it: saves the read while no other replica writes. */
  known: KnownBucket | undefined;
}

/** The in-process side: queues waiting sends per (channel, endpoint) and reserves for all of them at once. */
export function createRateLimiter(deps: { db: Db; clock: Clock; config: ConfigStore }): RateLimiter {
  const queues = new Map<string, Queue>();

  const pump = async (channelId: number, endpoint: RateEndpoint, queue: Queue): Promise<void> => {
    if (queue.pumping) return;
    queue.pumping = true;
    try {
      // Gather the sends that ask in this turn of the event loop into one reservation.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (queue.waiters.length > 0) {
        const limits = limitsOf(deps.config, endpoint);
        let reservation: Awaited<ReturnType<typeof reserveTokens>>;
        try {
          reservation = await reserveTokens(deps.db, { channelId, endpoint, want: Math.min(queue.waiters.length, limits.capacity), clock: deps.clock, limits, known: queue.known });
          queue.known = reservation.known;
        } catch (error) {
          queue.known = undefined;
          for (const waiter of queue.waiters.splice(0)) waiter.reject(error);
          return;
        }
        if (reservation.granted > 0) {
          for (const waiter of queue.waiters.splice(0, reservation.granted)) waiter.resolve();
        } else {
          await deps.clock.sleep(reservation.waitMs);
        }
      }
    } finally {
      queue.pumping = false;
    }
  };

  return {
    acquire(channelId, endpoint) {
      const id = `${channelId} ${endpoint}`;
      let queue = queues.get(id);
      if (!queue) {
        queue = { waiters: [], pumping: false, known: undefined };
        queues.set(id, queue);
      }
      const q = queue;
      return new Promise<void>((resolve, reject) => {
        q.waiters.push({ resolve, reject });
        void pump(channelId, endpoint, q);
      });
    },
  };
}
