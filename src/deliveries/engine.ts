import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock, TimerHandle } from '../clock.ts';
import { createLimiter } from '../concurrency.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { OutMessage } from '../line/messages.ts';
import type { SendOutcome } from '../line/outcomes.ts';
import { claimDue, complete, completeSent, expireOverdue, releaseClaims, renewLeases, type ClaimedDelivery, type Completion } from './claim.ts';
import { loadSendContexts, type ReplayLinker } from './context.ts';
import { syncDeliveries } from './outbox.ts';
import { interleaveByRate, planDispatch } from './dispatch.ts';
import type { DeliveryMetrics } from './metrics.ts';
import { recheck, type SendContext } from './recheck.ts';
import type { EngineSettings } from './settings.ts';

/** One student's message, ready to go. */
export interface SendUnit {
  deliveryId: number;
  memberId: number;
  lineUserId: string;
  following: 'unknown' | 'following' | 'unfollowed';
  channelId: number;
  retryKey: string;
  attempt: number;
  /** Its due time: its first attempt was made at or after it (LINE keeps a retry key 24 hours). */
  dueAt: Date;
}

/** One retry request: the deliveries it settles, and on which of the channel's rate limits it goes. */
export interface Retry {
  units: readonly SendUnit[];
  endpoint: 'push' | 'multicast';
  call: () => Promise<SendOutcome>;
}

/** The LINE side as the engine needs it (built on the LINE module's send path). */
export interface DeliverySender {
  /** The messages for a booking (same for every student of one class and kind), or why not. */
  messagesFor(context: SendContext, link: string): { ok: true; messages: OutMessage[] } | { ok: false; reason: string };
  push(unit: SendUnit, messages: OutMessage[]): Promise<SendOutcome>;
  /**
   * New multicast chunks (each ≤ 500 students of one channel): their member sets and retry keys are
   * stored first, all together, and each comes back as the call that sends it. Fenced on the claim's
   * `leaseToken`: a delivery no longer ours is neither stored in a chunk nor sent to.
   */
  multicasts(chunks: readonly { units: readonly SendUnit[]; messages: OutMessage[] }[], leaseToken: string): Promise<(() => Promise<SendOutcome>)[]>;
  /**
   * Deliveries tried before go the way they went the first time, with the same retry key: those of
   * a stored multicast chunk as that chunk, one request for all of them, the others by push. Never
   * into a new chunk (a new key).
   */
  retries(units: readonly { unit: SendUnit; messages: OutMessage[] }[]): Promise<Retry[]>;
  rates(channelId: number): { pushPerSecond: number; multicastPerSecond: number; multicastSize: number };
}

export interface EngineDeps {
  db: Db;
  clock: Clock;
  settings: () => EngineSettings;
  logger: Logger;
  metrics: DeliveryMetrics;
  sender: DeliverySender;
  owner?: string;
  /** Signs replay links (replay_url deliveries); without it they are skipped. */
  replayLink?: ReplayLinker;
}

/** What one claim-and-send did. */
export interface PageReport {
  claimed: number;
  byState: Record<string, number>;
  /** The earliest instant (ms) a delivery of this page was put back to be retried, if any. */
  nextRetryAt?: number;
}

/** A sent outcome waiting to be written with the page's others. */
interface SentEntry {
  id: number;
  requestId: string | null;
  note: string | null;
  /** When LINE accepted it (the lateness metric runs from the due time to this). */
  sentAt: Date;
  /** LINE answered 409: a duplicate prevented, counted once the write lands. */
  duplicate: boolean;
}

/** One claim being processed: its lease token, its report, due times, and sent outcomes not written yet. */
interface Page {
  token: string;
  report: PageReport;
  due: Map<number, Date>;
  sent: SentEntry[];
}

/** What one round did: its pages, and what it expired first. */
export interface DrainReport extends PageReport {
  expired: number;
}

/**
 * Claim and send: every strategy and trigger ends here. Claims carry one lease token (fencing),
 * renewed while the batch is in flight; each delivery is re-checked against its booking as it is
 * now; identical messages of a class may go out as one multicast; every outcome is recorded with
 * its reason.
 */
export function createSendPath(deps: EngineDeps) {
  const { db, clock, logger, metrics, sender } = deps;
  const owner = deps.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const inFlight = createLimiter(() => deps.settings().sendConcurrency);
  // One claim at a time in this process (the next page is claimed while the last one sends): two
  // claims racing through SKIP LOCKED on PostgreSQL split a class's students between them, so a
  // chunk that should be one multicast goes out as a smaller one plus pushes.
  const claiming = createLimiter(() => 1);

  const outcomeToCompletion = (o: SendOutcome, now: Date): Completion => {
    switch (o.kind) {
      case 'sent':
        return { state: 'sent', requestId: o.requestId };
      case 'duplicate':
        return {
          state: 'sent',
          requestId: o.acceptedRequestId ?? o.requestId,
          note: o.recorded ? 'its multicast chunk went out earlier (recorded): not sent again' : 'LINE had already accepted this retry key (409): not sent twice',
        };
      case 'retryable':
        return { state: 'pending', afterMs: o.afterMs, reason: o.reason };
      case 'channelPaused':
        return { state: 'pending', afterMs: o.until ? Math.max(1000, o.until.getTime() - now.getTime()) : deps.settings().pausedRetryMs, reason: o.reason, countAttempt: false };
      case 'final':
        return { state: 'failed', reason: o.reason };
      case 'skipped':
        return { state: 'skipped', reason: o.reason };
    }
  };

  /**
   * Counts what a write actually changed: only rows still under this claim's lease are written
   * (fencing), so a sender that lost its lease counts nothing and the newer holder counts once. The
   * page's report, the outcome counter, lateness and duplicates prevented all go by these rows.
   */
  const counted = (page: Page, c: Completion, n: number): void => {
    if (n === 0) return;
    metrics.outcomes.inc({ state: c.state }, n);
    page.report.byState[c.state] = (page.report.byState[c.state] ?? 0) + n;
    if (c.state === 'pending') page.report.nextRetryAt = Math.min(page.report.nextRetryAt ?? Infinity, clock.now().getTime() + c.afterMs);
  };

  // Sent outcomes of a page are written together (one statement per flush); others one by one.
  const flushSent = async (page: Page): Promise<void> => {
    const buffer = page.sent;
    if (!buffer.length) return;
    page.sent = [];
    const written = new Set(await completeSent(db, clock, page.token, buffer));
    if (written.size < buffer.length) {
      // LINE accepted these; the request ids are what a support inquiry needs, so they are logged here.
      logger.warn({ lost: buffer.length - written.size, sent: buffer.map((b) => ({ delivery: b.id, requestId: b.requestId })) }, 'lease lost before completion; the newer holder decides (fencing)');
    }
    counted(page, { state: 'sent', requestId: null }, written.size);
    // Lateness and duplicates prevented only for the rows this write changed (fencing).
    for (const b of buffer.filter((e) => written.has(e.id))) {
      const due = page.due.get(b.id);
      if (due) metrics.lateness.observe(Math.max(0, b.sentAt.getTime() - due.getTime()) / 1000);
      // Per student whose message LINE's 409 kept from going out twice (a multicast's 409 covers its whole chunk).
      if (b.duplicate) metrics.duplicatesPrevented.inc();
    }
  };
  /** `duplicate`: LINE answered 409 for these (it was asked, and had accepted the key before). */
  const settle = async (ids: readonly number[], page: Page, c: Completion, duplicate = false): Promise<void> => {
    if (c.state === 'sent') {
      const sentAt = clock.now();
      for (const id of ids) page.sent.push({ id, requestId: c.requestId, note: c.note ?? null, sentAt, duplicate });
      if (page.sent.length >= 200) await flushSent(page);
      return;
    }
    const n = await complete(db, clock, ids, page.token, c);
    if (n < ids.length) logger.warn({ ids, state: c.state }, 'lease lost before completion; the newer holder decides (fencing)');
    counted(page, c, n);
  };

  /**
   * Re-applies the rules to bookings whose row was made for another version of their class: a move
   * whose sync could not see the booking leaves such a row behind, and it would never be due again.
   */
  const resync = async (appointmentIds: readonly number[]): Promise<void> => {
    const touched = await db
      .transaction()
      .execute((trx) => syncDeliveries(trx, clock, deps.settings().rules, { appointmentIds }))
      .catch((error: unknown) => {
        logger.error({ err: coerceError(error), appointments: appointmentIds.length }, 'could not re-sync deliveries made for an older version of their class; retrying at their next claim');
        return [];
      });
    if (touched.length) logger.warn({ deliveries: touched }, 'deliveries made for an older version of their class were re-timed');
  };

  /** Processes what a claim returned; resolves when every delivery has an outcome. */
  const processClaimed = async (claimed: readonly ClaimedDelivery[], token: string): Promise<PageReport> => {
    const report: PageReport = { claimed: claimed.length, byState: {} };
    if (claimed.length === 0) return report;
    const page: Page = { token, report, due: new Map(claimed.map((d) => [d.id, d.dueAt])), sent: [] };
    const settings = deps.settings();
    // One renewal at a time, the next a third of a lease after the last one landed: two in flight
    // could land out of order and move the expiry back. A renewal that fails is not fatal (if the
    // lease runs out, another worker resends under the same retry key and LINE answers 409), but it
    // must not go unseen.
    let finished = false;
    let hb: TimerHandle | undefined;
    const beat = (): void => {
      hb = clock.setTimeout(() => {
        void renewLeases(db, clock, token, settings.leaseMs)
          .catch((error: unknown) => logger.warn({ err: coerceError(error), claimed: claimed.length }, 'could not renew the lease of a batch in flight; another worker may take it over'))
          .finally(() => {
            if (!finished) beat();
          });
      }, settings.leaseMs / 3);
    };
    beat();
    /** Bookings with a row made for another version of its class (see `resync`). */
    const stale: number[] = [];
    try {
      const now = clock.now();
      const contexts = await loadSendContexts(db, claimed, deps.replayLink);
      const groups = new Map<string, { channelId: number; messages: OutMessage[]; units: SendUnit[]; members: Set<number> }>();
      const unbuildable = new Set<string>();
      for (const d of claimed) {
        metrics.claimLag.observe(Math.max(0, now.getTime() - d.dueAt.getTime()) / 1000);
        const context = contexts.get(d.id);
        if (!context) {
          const gone: Completion = { state: 'failed', reason: 'its booking no longer exists' };
          await settle([d.id], page, gone);
          continue;
        }
        const verdict = recheck(context, now);
        if (!verdict.send && verdict.stale) stale.push(d.appointmentId);
        if (!verdict.send) {
          if (verdict.alert) {
            logger.error({ delivery: d.id, schedule: context.schedule.externalId }, verdict.alert.message);
            metrics.alerts.inc({ reason: verdict.alert.reason });
          }
          await settle([d.id], page, verdict.completion);
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
            await settle([d.id], page, unbuilt);
            continue;
          }
          group = { channelId: context.channel.id, messages: built.messages, units: [], members: new Set() };
          groups.set(key, group);
        }
        // A student booked twice into one class gets each delivery, but never twice in one multicast
        // (a chunk's member set is keyed by member): the second copy goes in a group of its own.
        const { messages } = group;
        for (let copy = 2; group.members.has(context.member.id); copy++) {
          group = groups.get(`${key}#${copy}`) ?? { channelId: context.channel.id, messages, units: [], members: new Set() };
          groups.set(`${key}#${copy}`, group);
        }
        group.members.add(context.member.id);
        group.units.push({ deliveryId: d.id, memberId: context.member.id, lineUserId: context.member.lineUserId, following: context.member.following, channelId: context.channel.id, retryKey: d.retryKey, attempt: d.attempts, dueAt: d.dueAt });
      }

      const byChannel = new Map<number, { messages: OutMessage[]; units: SendUnit[] }[]>();
      for (const g of groups.values()) byChannel.set(g.channelId, [...(byChannel.get(g.channelId) ?? []), g]);
      // One request to LINE settles the deliveries it carried (one for a push, a chunk for a multicast).
      interface Request {
        units: readonly SendUnit[];
        call: () => Promise<SendOutcome>;
      }
      const lanes: { rate: number; items: Request[] }[] = [];
      const chunks: { units: readonly SendUnit[]; messages: OutMessage[]; lane: Request[] }[] = [];
      for (const [channelId, channelGroups] of byChannel) {
        const messagesOf = new Map<SendUnit, OutMessage[]>();
        for (const g of channelGroups) for (const u of g.units) messagesOf.set(u, g.messages);
        // Only first attempts may be planned into new multicast chunks; retries keep their first path.
        const fresh = channelGroups.map((g) => ({ units: g.units.filter((u) => u.attempt === 1) }));
        const retried = channelGroups.flatMap((g) => g.units.filter((u) => u.attempt !== 1));
        const rates = sender.rates(channelId);
        const plan = settings.multicast ? planDispatch(fresh, rates) : { pushes: fresh.flatMap((g) => g.units), multicasts: [] };
        const retries = retried.length ? await sender.retries(retried.map((unit) => ({ unit, messages: messagesOf.get(unit) ?? [] }))) : [];
        const multicastLane: Request[] = retries.filter((r) => r.endpoint === 'multicast');
        for (const units of plan.multicasts) chunks.push({ units, messages: messagesOf.get(units[0] as SendUnit) ?? [], lane: multicastLane });
        lanes.push({ rate: rates.multicastPerSecond, items: multicastLane });
        lanes.push({
          rate: rates.pushPerSecond,
          items: [...retries.filter((r) => r.endpoint === 'push'), ...plan.pushes.map((unit) => ({ units: [unit], call: () => sender.push(unit, messagesOf.get(unit) ?? []) }))],
        });
      }
      // The page's new chunks are stored together before any goes out; if that cannot be done at all, they retry later.
      const calls = await sender.multicasts(chunks, token).catch((e: unknown) => chunks.map(() => (): Promise<SendOutcome> => Promise.resolve({ kind: 'retryable', afterMs: 5000, reason: `could not store the multicast chunk: ${coerceError(e).message}`, requestId: null })));
      for (const [i, chunk] of chunks.entries()) chunk.lane.push({ units: chunk.units, call: calls[i] ?? (() => Promise.resolve({ kind: 'final', reason: 'multicast chunk lost', status: null, requestId: null })) });
      // Every channel and endpoint drains at once, each at its own rate.
      const jobs = interleaveByRate(lanes).map((request) =>
        inFlight.run(async () => {
          const outcome = await request.call().catch((e: unknown): SendOutcome => ({ kind: 'retryable', afterMs: 5000, reason: coerceError(e).message, requestId: null }));
          const c = outcomeToCompletion(outcome, clock.now());
          await settle(
            request.units.map((u) => u.deliveryId),
            page,
            c,
            outcome.kind === 'duplicate' && !outcome.recorded,
          );
        }),
      );
      // Every request runs to its end and every sent outcome is written even if one write failed:
      // stopping early would leave requests LINE took unrecorded while the page's lease is let go.
      const settled = await Promise.allSettled(jobs);
      await flushSent(page);
      if (stale.length) await resync(stale);
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      return report;
    } finally {
      finished = true;
      if (hb) clock.clearTimeout(hb);
    }
  };

  return {
    owner,
    /** Moves what is past its window to `expired`, with a metric and a log line; returns how many. */
    async expire(): Promise<number> {
      const expired = await expireOverdue(db, clock);
      const count = Object.values(expired).reduce((a, b) => a + b, 0);
      if (count) {
        metrics.outcomes.inc({ state: 'expired' }, count);
        logger.warn({ expired }, 'deliveries expired unsent: past their window (downtime, or no meeting link in time)');
      }
      return count;
    },
    /** Claims (the oldest due, up to `limit`, or only the given ids; at a cron tick, what is due by it) and sends. */
    async claimAndSend(limit: number, o: { ids?: readonly number[]; dueBy?: Date } = {}): Promise<PageReport> {
      const token = randomUUID();
      const claimed = await claiming.run(() => claimDue(db, clock, { owner, token, leaseMs: deps.settings().leaseMs, limit, ...o }));
      return processClaimed(claimed, token);
    },
    release: () => releaseClaims(db, owner),
  };
}

export type SendPath = ReturnType<typeof createSendPath>;
