import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import type { ImagemapImages } from '../line/imagemap.ts';
import { prepareNewMulticasts, sendMulticastChunk } from '../line/multicast.ts';
import { buildNotification } from '../line/notifications.ts';
import { sendPush, type SendDeps } from '../line/send.ts';
import type { DeliverySender } from './engine.ts';

/** The engine's sender on the LINE module: messages from the templates, push and multicast with stored keys. */
export function lineDeliverySender(deps: { db: Db; config: ConfigStore; send: SendDeps; imagemap: ImagemapImages }): DeliverySender {
  const { db, config, send, imagemap } = deps;
  return {
    messagesFor(context, link) {
      return buildNotification(config.current(), imagemap.current(), {
        kind: context.kind,
        title: context.schedule.title,
        startsAt: context.schedule.startsAt,
        endsAt: context.schedule.endsAt,
        url: link,
      });
    },
    push(unit, messages) {
      return sendPush(send, {
        memberId: unit.memberId,
        retryKey: unit.retryKey,
        messages: messages,
        attempt: unit.attempt,
        target: { memberId: unit.memberId, channelId: unit.channelId, lineUserId: unit.lineUserId, following: unit.following },
      });
    },
    async multicasts(chunks) {
      // The engine checked these students just now (following, one channel, one booking each).
      return prepareNewMulticasts(
        send,
        chunks.map(({ units, messages }) => ({
          channelId: units[0]?.channelId ?? 0,
          recipients: units.map((u) => ({ memberId: u.memberId, deliveryId: u.deliveryId, lineUserId: u.lineUserId })),
          messages,
        })),
      );
    },
    async resend(unit, messages) {
      const member = await db
        .selectFrom('line_multicast_members')
        .innerJoin('line_multicasts', 'line_multicasts.id', 'line_multicast_members.multicast_id')
        .select('line_multicasts.id')
        .where('line_multicast_members.delivery_id', '=', unit.deliveryId)
        .orderBy('line_multicasts.id', 'desc')
        .executeTakeFirst();
      if (member) return sendMulticastChunk(send, member.id);
      return sendPush(send, { memberId: unit.memberId, retryKey: unit.retryKey, messages: messages, attempt: unit.attempt });
    },
    rates() {
      const r = config.current().line.rateLimits;
      return { pushPerSecond: r.push, multicastPerSecond: r.multicast, multicastSize: 500 };
    },
  };
}
