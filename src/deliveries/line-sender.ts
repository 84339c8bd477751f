import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import type { ImagemapImages } from '../line/imagemap.ts';
import { prepareNewMulticasts, sendMulticastChunk } from '../line/multicast-send.ts';
import { buildNotification } from '../line/notifications.ts';
import { sendPush, type SendDeps } from '../line/send.ts';
import { toDate } from '../db/row.ts';
import { chunked } from '../db/transaction.ts';
import type { DeliverySender, Retry, SendUnit } from './sender.ts';

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
    async multicasts(chunks, leaseToken) {
      // The engine checked these students just now (following, one channel, one booking each); each
      // is stored in its chunk only while its delivery still carries the claim's lease.
      return prepareNewMulticasts(
        send,
        chunks.map(({ units, messages }) => ({
          channelId: units[0]?.channelId ?? 0,
          recipients: units.map((u) => ({ memberId: u.memberId, deliveryId: u.deliveryId, lineUserId: u.lineUserId })),
          messages,
        })),
        leaseToken,
      );
    },
    async retries(items) {
      // Each delivery's latest chunk, if it went in one.
      const chunkOf = new Map<number, number>();
      for (const part of chunked(items.map((i) => i.unit.deliveryId))) {
        const rows = await db.selectFrom('line_multicast_members').select(['delivery_id', 'multicast_id']).where('delivery_id', 'in', part).execute();
        for (const r of rows) if (r.delivery_id !== null) chunkOf.set(r.delivery_id, Math.max(chunkOf.get(r.delivery_id) ?? 0, r.multicast_id));
      }
      // The requests already made under each pushed delivery's key, for LINE's 24 h window.
      const keys = items.filter((i) => !chunkOf.has(i.unit.deliveryId)).map((i) => i.unit.retryKey);
      const logged = new Map<string, LoggedRequests>();
      for (const part of chunked(keys)) {
        const rows = await db
          .selectFrom('line_requests')
          .select((eb) => ['retry_key', eb.fn.min('started_at').as('first'), eb.fn.countAll<number | string>().as('n')])
          .where('retry_key', 'in', part)
          .where('endpoint', '=', 'push')
          .groupBy('retry_key')
          .execute();
        for (const r of rows) if (r.retry_key !== null && r.first !== null) logged.set(r.retry_key, { first: toDate(r.first), count: Number(r.n) });
      }
      const out: Retry[] = [];
      const byChunk = new Map<number, SendUnit[]>();
      for (const { unit, messages } of items) {
        const chunk = chunkOf.get(unit.deliveryId);
        if (chunk === undefined) {
          const firstAttemptAt = firstPushAttempt(unit, logged.get(unit.retryKey));
          out.push({ units: [unit], endpoint: 'push', call: () => sendPush(send, { memberId: unit.memberId, retryKey: unit.retryKey, messages, attempt: unit.attempt, firstAttemptAt }) });
        } else {
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

/** The requests logged under one retry key: the earliest one's start, and how many. */
export interface LoggedRequests {
  first: Date;
  count: number;
}

/**
 * When a retried push's first attempt was made, for LINE's 24 h retry-key window (pure). Every
 * attempt that reached LINE and did not go through is logged (`line_requests`, under the key), so the
 * earliest logged request is the first attempt, as long as each earlier attempt has its log line. If
 * one has none (a crash during the request, a log write that failed, a pruned log), its time is not
 * known, and the due time stands in: the first attempt was no earlier, so the window is never
 * overstated. The due time alone made a link first tried late (a feedback link sent the next day,
 * after downtime) fail at its first retry.
 */
export function firstPushAttempt(unit: Pick<SendUnit, 'attempt' | 'dueAt'>, logged: LoggedRequests | undefined): Date {
  if (!logged || logged.count < unit.attempt - 1) return unit.dueAt;
  return logged.first;
}
