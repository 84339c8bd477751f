import type { FollowChange } from './members.ts';
import { USER_ID } from './webhook.ts';

/**
 * What to do with a batch of stored webhook events (pure). Follow state is last-writer-wins on the
 * event's own timestamp, per (channel, user): arrival order means nothing, because LINE redelivers
 * late and out of order. Within a batch only each member's newest event is applied (the others are
 * superseded); across batches the database write keeps the same rule (see applyFollowChange).
 */
export interface StoredEvent {
  id: number;
  channelId: number;
  type: string;
  /** `active` or `standby` (a standby channel must not act on events). */
  mode: string | undefined;
  lineUserId: string | null;
  at: Date;
  /** Failed tries so far. */
  attempts?: number;
}

export interface EventPlan {
  /** The newest follow/unfollow per member, with the event it comes from. */
  changes: { eventId: number; change: FollowChange }[];
  /** Events settled without a member write: outcome `superseded`, `skipped: …` or `ignored: …`. */
  settled: { id: number; outcome: string }[];
}

export function planEvents(events: readonly StoredEvent[]): EventPlan {
  const settled: EventPlan['settled'] = [];
  const newest = new Map<string, StoredEvent>();
  for (const event of events) {
    if (event.mode === 'standby') settled.push({ id: event.id, outcome: 'skipped: standby mode' });
    else if (event.type !== 'follow' && event.type !== 'unfollow') settled.push({ id: event.id, outcome: `ignored: ${event.type}` });
    else if (event.lineUserId === null) settled.push({ id: event.id, outcome: 'skipped: no source.userId' });
    else if (!USER_ID.test(event.lineUserId)) settled.push({ id: event.id, outcome: 'skipped: source.userId is not a LINE user id' });
    else {
      const key = `${event.channelId} ${event.lineUserId}`;
      const held = newest.get(key);
      // Equal timestamps: the first stored stays, as the database rule (strictly newer wins) would have it.
      if (!held || isNewer(event, held)) {
        if (held) settled.push({ id: held.id, outcome: 'superseded' });
        newest.set(key, event);
      } else {
        settled.push({ id: event.id, outcome: 'superseded' });
      }
    }
  }
  const changes = [...newest.values()].map((event) => ({
    eventId: event.id,
    change: {
      channelId: event.channelId,
      lineUserId: event.lineUserId ?? '',
      following: event.type === 'follow' ? ('following' as const) : ('unfollowed' as const),
      at: event.at,
    },
  }));
  return { changes, settled };
}

/** `a` replaces `b`: strictly newer timestamp, or the same timestamp but stored earlier. */
function isNewer(a: StoredEvent, b: StoredEvent): boolean {
  const dt = a.at.getTime() - b.at.getTime();
  return dt > 0 || (dt === 0 && a.id < b.id);
}
