import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import type { ImagemapImages } from '../line/imagemap.ts';
import { prepareNewMulticasts, sendMulticastChunk } from '../line/multicast.ts';
import { buildNotification } from '../line/notifications.ts';
import { sendPush, type SendDeps } from '../line/send.ts';
import { chunked } from '../db/transaction.ts';
import type { DeliverySender, Retry, SendUnit } from './engine.ts';

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
    async retries(items) {
      // Each delivery's latest chunk, if it went in one.
      const chunkOf = new Map<number, number>();
      for (const part of chunked(items.map((i) => i.unit.deliveryId))) {
        const rows = await db.selectFrom('line_multicast_members').select(['delivery_id', 'multicast_id']).where('delivery_id', 'in', part).execute();
        for (const r of rows) if (r.delivery_id !== null) chunkOf.set(r.delivery_id, Math.max(chunkOf.get(r.delivery_id) ?? 0, r.multicast_id));
      }
      const out: Retry[] = [];
      const byChunk = new Map<number, SendUnit[]>();
      for (const { unit, messages } of items) {
        const chunk = chunkOf.get(unit.deliveryId);
        // Counting LINE's retry-key window from the due time errs on the safe side: the first attempt was no earlier.
        if (chunk === undefined) out.push({ units: [unit], endpoint: 'push', call: () => sendPush(send, { memberId: unit.memberId, retryKey: unit.retryKey, messages, attempt: unit.attempt, firstAttemptAt: unit.dueAt }) });
        else {
          const units = byChunk.get(chunk) ?? [];
          units.push(unit);
          byChunk.set(chunk, units);
        }
      }
      // One request per chunk, whatever number of its deliveries are retried (one each sent it again and again).
      for (const [chunk, units] of byChunk) out.push({ units, endpoint: 'multicast', call: () => sendMulticastChunk(send, chunk, { owedOnly: true }) });
      return out;
    },
    rates() {
      const r = config.current().line.rateLimits;
      return { pushPerSecond: r.push, multicastPerSecond: r.multicast, multicastSize: 500 };
    },
  };
}
