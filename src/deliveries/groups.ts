import type { Logger } from '../logger.ts';
import type { OutMessage } from '../line/messages.ts';
import type { ClaimedDelivery, Completion } from './claim.ts';
import type { DeliveryMetrics } from './metrics.ts';
import { recheck, type SendContext } from './recheck.ts';
import type { DeliverySender, SendUnit } from './sender.ts';

/** Students of one class and kind on one channel: they get the identical messages. */
export interface MessageGroup {
  channelId: number;
  messages: OutMessage[];
  /** One per student: the database holds one live booking per student and class (migration 0014). */
  units: SendUnit[];
}

export interface GroupedPage {
  groups: Map<string, MessageGroup>;
  /** Bookings with a row made for another version of their class (the send path re-syncs them). */
  stale: number[];
}

/**
 * Re-checks each claimed delivery against its booking as it is now (`contexts`) and groups those
 * still owed by class, kind and channel; every other one is settled through `settle` with its
 * reason, in claim order.
 */
export async function groupClaimed(
  deps: { logger: Logger; metrics: DeliveryMetrics; sender: DeliverySender },
  claimed: readonly ClaimedDelivery[],
  contexts: ReadonlyMap<number, SendContext>,
  now: Date,
  settle: (ids: readonly number[], c: Completion) => Promise<void>,
): Promise<GroupedPage> {
  const { logger, metrics, sender } = deps;
  const stale: number[] = [];
  const groups = new Map<string, MessageGroup>();
  const unbuildable = new Set<string>();
  for (const d of claimed) {
    metrics.claimLag.observe(Math.max(0, now.getTime() - d.dueAt.getTime()) / 1000);
    const context = contexts.get(d.id);
    if (!context) {
      const gone: Completion = { state: 'failed', reason: 'its booking no longer exists' };
      await settle([d.id], gone);
      continue;
    }
    const verdict = recheck(context, now);
    if (!verdict.send && verdict.stale) stale.push(d.appointmentId);
    if (!verdict.send) {
      if (verdict.alert) {
        logger.error({ delivery: d.id, schedule: context.schedule.externalId }, verdict.alert.message);
        metrics.alerts.inc({ reason: verdict.alert.reason });
      }
      await settle([d.id], verdict.completion);
      continue;
    }
    const key = `${context.channel.id}:${context.schedule.id}:${context.kind}`;
    let group = groups.get(key);
    if (!group) {
      const built = sender.messagesFor(context, verdict.link);
      if (!built.ok) {
        // A template or a link LINE would refuse: every student of the class fails alike, and
        // only an operator can mend it. Logged once per class and kind in a page.
        if (!unbuildable.has(key)) {
          unbuildable.add(key);
          logger.error({ schedule: context.schedule.externalId, kind: context.kind, reason: built.reason }, 'a message could not be built: its deliveries failed');
        }
        metrics.alerts.inc({ reason: 'message_invalid' });
        const unbuilt: Completion = { state: 'failed', reason: built.reason };
        await settle([d.id], unbuilt);
        continue;
      }
      group = { channelId: context.channel.id, messages: built.messages, units: [] };
      groups.set(key, group);
    }
    group.units.push({ deliveryId: d.id, memberId: context.member.id, lineUserId: context.member.lineUserId, following: context.member.following, channelId: context.channel.id, retryKey: d.retryKey, attempt: d.attempts, dueAt: d.dueAt });
  }
  return { groups, stale };
}
