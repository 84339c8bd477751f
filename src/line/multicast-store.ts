import { sql } from 'kysely';
import { dialectOf, type Db } from '../db/database.ts';
import { inIds } from '../db/row.ts';
import { chunked, inTransaction } from '../db/transaction.ts';
import type { OutMessage } from './messages.ts';

export interface NewMulticast {
  channelId: number;
  recipients: readonly { memberId: number; deliveryId: number; lineUserId: string }[];
  messages: OutMessage[];
}

/**
 * A new chunk that never went out (never accepted by LINE) is let go by the deliveries this worker
 * still holds (`leaseToken`), locked while it does so; the chunk itself goes once no member is left.
 * A delivery another worker took over meanwhile keeps it: that worker may be resending it under its
 * key.
 */
export async function dropUnsentChunk(db: Db, id: number, leaseToken: string): Promise<void> {
  await inTransaction(db, async (trx) => {
    let mine = trx
      .selectFrom('deliveries')
      .select('deliveries.id')
      .where('deliveries.lease_token', '=', leaseToken)
      .where('deliveries.id', 'in', (eb) => eb.selectFrom('line_multicast_members').select('delivery_id').where('multicast_id', '=', id));
    if (dialectOf(trx) === 'postgres') mine = mine.forUpdate();
    const ids = (await mine.execute()).map((r) => r.id);
    for (const part of chunked(ids)) await trx.deleteFrom('line_multicast_members').where('multicast_id', '=', id).where('delivery_id', 'in', part).execute();
    await trx
      .deleteFrom('line_multicasts')
      .where('id', '=', id)
      .where('state', '=', 'pending')
      .where((eb) => eb.not(eb.exists(eb.selectFrom('line_multicast_members').select('member_id').where('multicast_id', '=', id).where('delivery_id', 'is not', null))))
      .execute();
  });
}

export interface NewChunk extends NewMulticast {
  retryKey: string;
}

/**
 * Per chunk (input order): its id; null when none of its deliveries still carries the lease (nothing
 * stored); an Error when it could not be stored. `lost`: the deliveries left out, no longer ours.
 */
export interface StoredChunks {
  ids: (number | null | Error | undefined)[];
  lost: Set<number>;
}

/**
 * The chunks and their member sets, as their first attempt. On PostgreSQL one statement (a
 * data-modifying CTE); on SQLite, where a statement costs no network round trip, one multi-row insert
 * for the chunks and one for their members. Fenced on `leaseToken`: in the same transaction the
 * deliveries are locked and only those still carrying the token are stored as members; a chunk with
 * none left is not stored at all.
 */
export async function storeNewChunks(db: Db, now: Date, chunks: readonly NewChunk[], leaseToken: string): Promise<StoredChunks> {
  if (chunks.length === 0) return { ids: [], lost: new Set() };
  const byKey = new Map<string, number>();
  const lost = new Set<number>();
  if (dialectOf(db) === 'postgres') {
    const members = chunks.flatMap((c) => c.recipients.map((r) => [c.retryKey, r.memberId, r.deliveryId] as const));
    const deliveryIds = members.map((m) => m[2]);
    // The fence: the page's deliveries still ours, locked until this statement commits (a claim
    // taking them over either went first, and they are not ours, or waits: SKIP LOCKED passes them).
    const owned = sql`select id from deliveries where id = any(${deliveryIds}::bigint[]) and lease_token = ${leaseToken} for update`;
    const result = await sql<{ id: number | string | null; retry_key: string | null; lost: number | string | null }>`
      with owned as (${owned}), wanted as (
        select r.retry_key, r.member_id, r.delivery_id
        from unnest(${members.map((m) => m[0])}::text[], ${members.map((m) => m[1])}::bigint[], ${deliveryIds}::bigint[]) as r(retry_key, member_id, delivery_id)
        where r.delivery_id in (select id from owned)
      ), chunk as (
        insert into line_multicasts (channel_id, retry_key, messages, state, attempts, first_attempt_at, created_at, updated_at)
        select c.channel_id, c.retry_key, c.messages::jsonb, 'pending', 1, ${now}, ${now}, ${now}
        from unnest(${chunks.map((c) => c.channelId)}::bigint[], ${chunks.map((c) => c.retryKey)}::text[], ${chunks.map((c) => JSON.stringify(c.messages))}::text[]) as c(channel_id, retry_key, messages)
        where exists (select 1 from wanted w where w.retry_key = c.retry_key)
        returning id, retry_key
      ), members as (
        insert into line_multicast_members (multicast_id, member_id, delivery_id)
        select chunk.id, w.member_id, w.delivery_id
        from chunk join wanted w on w.retry_key = chunk.retry_key
      )
      select id, retry_key, null::bigint as lost from chunk
      union all
      select null, null, d.id from unnest(${deliveryIds}::bigint[]) as d(id) where d.id not in (select id from owned)`.execute(db);
    for (const row of result.rows) {
      if (row.retry_key !== null && row.id !== null) byKey.set(row.retry_key, Number(row.id));
      else if (row.lost !== null) lost.add(Number(row.lost));
    }
  } else {
    // In one transaction: a failure leaves no chunk without its members.
    await inTransaction(db, async (tx) => {
      const ids = chunks.flatMap((c) => c.recipients.map((r) => r.deliveryId));
      const rows = await tx.selectFrom('deliveries').select('id').where(inIds(tx, 'id', ids)).where('lease_token', '=', leaseToken).execute();
      const ours = new Set(rows.map((r) => r.id));
      for (const id of ids) if (!ours.has(id)) lost.add(id);
      const kept = chunks.filter((c) => c.recipients.some((r) => !lost.has(r.deliveryId)));
      for (const part of chunked(kept, 1000)) {
        const rows = await tx
          .insertInto('line_multicasts')
          .values(part.map((c) => ({ channel_id: c.channelId, retry_key: c.retryKey, messages: JSON.stringify(c.messages), state: 'pending' as const, attempts: 1, first_attempt_at: now, created_at: now, updated_at: now })))
          .returning(['id', 'retry_key'])
          .execute();
        for (const row of rows) byKey.set(row.retry_key, row.id);
      }
      const members = kept.flatMap((c) => c.recipients.filter((r) => !lost.has(r.deliveryId)).map((r) => ({ multicast_id: byKey.get(c.retryKey) ?? 0, member_id: r.memberId, delivery_id: r.deliveryId })));
      for (const part of chunked(members, 5000)) await tx.insertInto('line_multicast_members').values(part).execute();
    });
  }
  return {
    ids: chunks.map((c) => {
      const id = byKey.get(c.retryKey);
      if (id !== undefined) return id;
      if (c.recipients.every((r) => lost.has(r.deliveryId))) return null;
      throw new Error(`multicast chunk ${c.retryKey} was not stored`);
    }),
    lost,
  };
}
