import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock, TimerHandle } from '../clock.ts';
import { createLimiter } from '../concurrency.ts';
import type { Db } from '../db/database.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { SendOutcome } from '../line/outcomes.ts';
import { claimDue, expireOverdue, releaseClaims, renewLeases, type ClaimedDelivery } from './claim.ts';
import { loadSendContexts, type ReplayLinker } from './context.ts';
import { syncDeliveries } from './outbox.ts';
import { interleaveByRate } from './dispatch.ts';
import { groupClaimed } from './groups.ts';
import { planLanes } from './lanes.ts';
import type { DeliveryMetrics } from './metrics.ts';
import { completionOf, createPageWriter, newPage, type PageReport } from './page.ts';
import type { DeliverySender } from './sender.ts';
import type { EngineSettings } from './settings.ts';

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

/**
 * Claim and send: every strategy and trigger ends here. Claims carry one lease token (fencing),
 * renewed while the batch is in flight; each delivery is re-checked against its booking as it is
 * now (groups.ts); identical messages of a class may go out as one multicast (lanes.ts); every
 * outcome is recorded with its reason (page.ts).
 */
export function createSendPath(deps: EngineDeps) {
  const { db, clock, logger, metrics, sender } = deps;
  const owner = deps.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const inFlight = createLimiter(() => deps.settings().sendConcurrency);
  // One claim at a time in this process (the next page is claimed while the last one sends): two
  // claims racing through SKIP LOCKED on PostgreSQL split a class's students between them, so a
  // chunk that should be one multicast goes out as a smaller one plus pushes.
  const claiming = createLimiter(() => 1);
  const { settle, flushSent } = createPageWriter({ db, clock, logger, metrics });

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
    const page = newPage(claimed, token, report);
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
    try {
      const now = clock.now();
      const contexts = await loadSendContexts(db, claimed, deps.replayLink);
      const { groups, stale } = await groupClaimed({ logger, metrics, sender }, claimed, contexts, now, (ids, c) => settle(ids, page, c));
      const lanes = await planLanes(sender, [...groups.values()], settings.multicast, token);
      // Every channel and endpoint drains at once, each at its own rate.
      const jobs = interleaveByRate(lanes).map((request) =>
        inFlight.run(async () => {
          const outcome = await request.call().catch((e: unknown): SendOutcome => ({ kind: 'retryable', afterMs: 5000, reason: coerceError(e).message, requestId: null }));
          const c = completionOf(outcome, clock.now(), () => deps.settings().pausedRetryMs);
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
