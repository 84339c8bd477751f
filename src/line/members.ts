import { sql } from 'kysely';
import type { Clock } from '../clock.ts';
import type { Db } from '../db/database.ts';
import type { FollowingStatus } from '../db/tables.ts';

export interface MemberKey {
  channelId: number;
  lineUserId: string;
}

const memberKey = (channelId: number, lineUserId: string): string => `${channelId}:${lineUserId}`;

/**
 * Makes sure a member row exists for each (channel, LINE user) and returns their ids. A student the
 * platform books before we have seen their follow event gets following status `unknown`; the
 * follow event fills it in later.
 */
export async function ensureMembers(db: Db, clock: Clock, keys: readonly MemberKey[]): Promise<Map<string, number>> {
  // Inserted in (channel, user) order: two batches introducing the same new students in different
  // orders would otherwise each wait on a row the other inserted first (a deadlock on PostgreSQL).
  const unique = [...new Map(keys.map((k) => [memberKey(k.channelId, k.lineUserId), k])).values()].sort(byMember);
  const ids = new Map<string, number>();
  const now = clock.now();
  for (let i = 0; i < unique.length; i += 500) {
    const chunk = unique.slice(i, i + 500);
    await db
      .insertInto('members')
      .values(
        chunk.map((k) => ({
          channel_id: k.channelId,
          line_user_id: k.lineUserId,
          following: 'unknown' as const,
          created_at: now,
          updated_at: now,
        })),
      )
      .onConflict((oc) => oc.columns(['channel_id', 'line_user_id']).doNothing())
      .execute();
    const byChannel = new Map<number, string[]>();
    for (const k of chunk) byChannel.set(k.channelId, [...(byChannel.get(k.channelId) ?? []), k.lineUserId]);
    for (const [channelId, userIds] of byChannel) {
      const rows = await db
        .selectFrom('members')
        .select(['id', 'line_user_id'])
        .where('channel_id', '=', channelId)
        .where('line_user_id', 'in', userIds)
        .execute();
      for (const row of rows) ids.set(memberKey(channelId, row.line_user_id), row.id);
    }
  }
  return ids;
}

export { memberKey };

/** The one order every writer of members takes their rows in (see `ensureMembers`). */
function byMember(a: MemberKey, b: MemberKey): number {
  return a.channelId - b.channelId || (a.lineUserId < b.lineUserId ? -1 : a.lineUserId > b.lineUserId ? 1 : 0);
}

/** A follow or unfollow, as carried by one webhook event. */
export interface FollowChange {
  channelId: number;
  lineUserId: string;
  following: 'following' | 'unfollowed';
  /** The event's timestamp: the newest event per member wins, whatever order they arrive in. */
  at: Date;
}

/**
 * Applies follows/unfollows (at most one per member) unless the member already reflects a newer or
 * equally old event: one statement, so replicas processing the same events race safely. An
 * unfollow is a soft delete: only the following status and its time change; appointments and
 * history stay. Returns the member ids of the changes applied, by `memberKey`; stale ones are absent.
 */
export async function applyFollowChanges(db: Db, clock: Clock, changes: readonly FollowChange[]): Promise<Map<string, number>> {
  const now = clock.now();
  const applied = new Map<string, number>();
  // In the order booking batches insert members, so the two never wait on each other in a cycle.
  changes = [...changes].sort(byMember);
  for (let i = 0; i < changes.length; i += 500) {
    const rows = await db
      .insertInto('members')
      .values(
        changes.slice(i, i + 500).map((change) => ({
          channel_id: change.channelId,
          line_user_id: change.lineUserId,
          following: change.following,
          following_changed_at: change.at,
          created_at: now,
          updated_at: now,
        })),
      )
      .onConflict((oc) =>
        oc
          .columns(['channel_id', 'line_user_id'])
          .doUpdateSet((eb) => ({
            following: eb.ref('excluded.following'),
            following_changed_at: eb.ref('excluded.following_changed_at'),
            updated_at: eb.ref('excluded.updated_at'),
          }))
          // Strictly newer wins (ISO-8601 text on SQLite compares like the instant it spells).
          .where(sql<boolean>`members.following_changed_at is null or members.following_changed_at < excluded.following_changed_at`),
      )
      .returning(['id', 'channel_id', 'line_user_id'])
      .execute();
    for (const row of rows) applied.set(memberKey(row.channel_id, row.line_user_id), row.id);
  }
  return applied;
}

export async function setMemberDisplayName(db: Db, clock: Clock, memberId: number, displayName: string): Promise<void> {
  await db.updateTable('members').set({ display_name: displayName, updated_at: clock.now() }).where('id', '=', memberId).execute();
}

export interface SendTarget {
  memberId: number;
  channelId: number;
  lineUserId: string;
  following: FollowingStatus;
}

export async function getSendTargets(db: Db, memberIds: readonly number[]): Promise<SendTarget[]> {
  const out: SendTarget[] = [];
  for (let i = 0; i < memberIds.length; i += 500) {
    const rows = await db
      .selectFrom('members')
      .select(['id', 'channel_id', 'line_user_id', 'following'])
      .where('id', 'in', memberIds.slice(i, i + 500))
      .execute();
    for (const row of rows) out.push({ memberId: row.id, channelId: row.channel_id, lineUserId: row.line_user_id, following: row.following });
  }
  return out;
}
