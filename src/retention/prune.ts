import type { Db } from '../db/database.ts';

/**
 * Deleting what has done its job, in batches so that no statement holds locks or a write
 * transaction for long on a busy table. Each function takes the cut-off instant and returns how many
 * rows went. Only finished rows qualify: an event not yet applied, or a chunk still being sent, stays
 * whatever its age.
 */
const BATCH = 1000;
/** A chunk may carry 500 member rows (the cascade deletes them with it): fewer per statement. */
const CHUNK_BATCH = 20;

async function deleteInBatches(batch: number, pick: (limit: number) => Promise<number[]>, remove: (ids: number[]) => Promise<unknown>): Promise<number> {
  let total = 0;
  for (;;) {
    const ids = await pick(batch);
    if (ids.length) await remove(ids);
    total += ids.length;
    if (ids.length < batch) return total;
    // On SQLite a statement runs on the event loop: let sends and webhooks in between batches.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** LINE webhook events applied (or set aside) and received before `before`. */
export function pruneLineEvents(db: Db, before: Date): Promise<number> {
  return deleteInBatches(
    BATCH,
    async (limit) => (await db.selectFrom('line_events').select('id').where('processed_at', 'is not', null).where('received_at', '<', before).limit(limit).execute()).map((r) => r.id),
    (ids) => db.deleteFrom('line_events').where('id', 'in', ids).execute(),
  );
}

/** Zoom webhook events applied (or set aside) and received before `before`. */
export function pruneMeetingEvents(db: Db, before: Date): Promise<number> {
  return deleteInBatches(
    BATCH,
    async (limit) => (await db.selectFrom('meeting_events').select('id').where('processed_at', 'is not', null).where('received_at', '<', before).limit(limit).execute()).map((r) => r.id),
    (ids) => db.deleteFrom('meeting_events').where('id', 'in', ids).execute(),
  );
}

/** LINE request-log rows of calls made before `before`. */
export function pruneLineRequests(db: Db, before: Date): Promise<number> {
  return deleteInBatches(
    BATCH,
    async (limit) => (await db.selectFrom('line_requests').select('id').where('started_at', '<', before).limit(limit).execute()).map((r) => r.id),
    (ids) => db.deleteFrom('line_requests').where('id', 'in', ids).execute(),
  );
}

/**
 * Multicast chunks sent or failed, last touched before `before`, with their member sets (the foreign
 * key cascades). A chunk is kept for resends only: LINE forgets its retry key after 24 hours.
 */
export function pruneMulticastChunks(db: Db, before: Date): Promise<number> {
  return deleteInBatches(
    CHUNK_BATCH,
    async (limit) => (await db.selectFrom('line_multicasts').select('id').where('state', 'in', ['sent', 'failed']).where('updated_at', '<', before).limit(limit).execute()).map((r) => r.id),
    (ids) => db.deleteFrom('line_multicasts').where('id', 'in', ids).execute(),
  );
}

/**
 * Deliveries settled (sent, expired, failed, skipped, cancelled) that stopped being useful before
 * `before`: the meeting link after its class, the feedback link after its late window. Oldest
 * first, so each batch is found at the start of the primary key.
 */
export function pruneDeliveries(db: Db, before: Date): Promise<number> {
  return deleteInBatches(
    BATCH,
    async (limit) =>
      (
        await db
          .selectFrom('deliveries')
          .select('id')
          .where('state', 'in', ['sent', 'expired', 'failed', 'skipped', 'cancelled'])
          .where('not_after', '<', before)
          .orderBy('id')
          .limit(limit)
          .execute()
      ).map((r) => r.id),
    (ids) => db.deleteFrom('deliveries').where('id', 'in', ids).execute(),
  );
}
