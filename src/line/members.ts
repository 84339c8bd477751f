import type { Clock } from '../clock.ts';
import type { Db } from '../db/database.ts';

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
  const unique = [...new Map(keys.map((k) => [memberKey(k.channelId, k.lineUserId), k])).values()];
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
