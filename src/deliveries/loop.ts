import type { Clock, TimerHandle } from '../clock.ts';
import type { Db } from '../db/database.ts';
import { chunked } from '../db/transaction.ts';
import { inIds } from '../db/row.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { claimableBefore } from './claim.ts';
import { nextCronTick } from './cron.ts';
import type { SendPath } from './engine.ts';
import type { DrainReport, PageReport } from './page.ts';
import type { EngineSettings } from './settings.ts';
import { createTimingWheel, type TimingWheel } from './wheel.ts';

export interface DeliveryEngine {
  start(): Promise<void>;
  /** Stops waking up, waits for the batch in flight, hands back unfinished claims. */
  stop(): Promise<void>;
  /** One round now, whatever the trigger (tests, the CLI, catch-up). */
  runOnce(): Promise<DrainReport>;
  /** Outbox changes made in this process: the wheel re-arms them, the poller wakes up. */
  notifyChanged(ids: readonly number[]): void;
  /** Deliveries held by the timing wheel (0 for the other strategies). */
  wheelSize(): number;
  /** Resolves when no round is in flight (tests on virtual time wait on this, never on a sleep). */
  idle(): Promise<void>;
}

/**
 * A row that was due already when the last round claimed nothing is looked at again this much later:
 * one that looks due by this process's clock but not yet by the database's (clock skew), or that a
 * replica holds, would otherwise wake the loop again at once, and again.
 */
const IDLE_RETRY_MS = 250;

/** When the database could not say when deliveries are next due, it is asked again this much later (at most). */
const ARM_RETRY_MS = 5_000;

/**
 * Waits for both workers of a round to end, then fails if either did. With Promise.all the round
 * would end as soon as one page failed while the other was still sending: `stop()` would then hand
 * back that page's claims (releaseClaims) with its requests to LINE still in flight.
 */
async function bothSettled(a: Promise<void>, b: Promise<void>): Promise<void> {
  const settled = await Promise.allSettled([a, b]);
  const failed = settled.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * When to wake up (trigger) and how to find what is due (strategy); the sending is the shared
 * send path. The database stays the source of truth: the wheel is rebuilt from it at start and
 * every `pollInterval`, and every claim re-checks the row, so a lost or stale wheel entry can delay
 * a message by at most one refresh but never send it twice or at a moved time.
 */
export function createDeliveryEngine(deps: { db: Db; clock: Clock; settings: () => EngineSettings; logger: Logger; sendPath: SendPath }): DeliveryEngine {
  const { db, clock, logger, sendPath } = deps;
  let wheel: TimingWheel | undefined;
  let wakeTimer: TimerHandle | undefined;
  let refreshTimer: TimerHandle | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let busy = false;
  let again = false;
  let stopped = true;
  /** Cron trigger: the earliest retry this process put back (a failure's backoff must not wait for the next tick). */
  let retryAt: number | undefined;
  /** When the last round ran, if it claimed nothing (undefined if it claimed something). */
  let idleRoundAt: number | undefined;
  /** Cron trigger: the tick the next round is for (what is due by it is claimed, whatever the database's clock says). */
  let tick: Date | undefined;
  /** Cron trigger: a change made here owes a row already due; the next round is now, not at the tick. */
  let owedNow = false;

  const drainByStrategy = async (): Promise<DrainReport> => {
    const s = deps.settings();
    const dueBy = tick;
    tick = undefined;
    // Once per round, not per page: what is past its window is expired before anything is claimed.
    const total: DrainReport = { claimed: 0, byState: {}, expired: await sendPath.expire() };
    const add = (r: PageReport): void => {
      total.claimed += r.claimed;
      if (r.nextRetryAt !== undefined) total.nextRetryAt = Math.min(total.nextRetryAt ?? Infinity, r.nextRetryAt);
      for (const [k, v] of Object.entries(r.byState)) total.byState[k] = (total.byState[k] ?? 0) + v;
    };
    if (s.strategy === 'timing-wheel') {
      const w = wheel ?? (await rebuildWheel());
      const fired = w.advance(clock.now().getTime());
      const pages: number[][] = [];
      for (let i = 0; i < fired.length; i += s.batchSize) pages.push(fired.slice(i, i + s.batchSize));
      // Two pages in flight at once (see batched). A stop ends the round after the pages in flight
      // (what was not claimed is loaded again at the next start). A worker whose page failed stops;
      // the other goes on with the pages fired (off the wheel now, they would wait for its refresh).
      const worker = async (): Promise<void> => {
        for (let page = pages.shift(); page && !stopped; page = pages.shift()) {
          add(await sendPath.claimAndSend(s.batchSize, { ids: page, ...(dueBy ? { dueBy } : {}) }));
          // Those that will be retried (backoff, paused channel, moved class) go back on the wheel now,
          // not at the next refresh; on the wheel in force, which a refresh may have replaced meanwhile.
          // So do rows another worker still holds (its lease not run out yet by the database's clock,
          // or renewed): at their lease's expiry, to be taken over if that worker died.
          const again = await db.selectFrom('deliveries').select(['id', 'state', 'available_at', 'lease_expires_at']).where(inIds(db, 'id', page)).where('state', 'in', ['pending', 'sending']).execute();
          for (const r of again) {
            const at = r.state === 'pending' ? r.available_at : r.lease_expires_at;
            if (at !== null) (wheel ?? w).add(r.id, new Date(at).getTime());
          }
        }
      };
      await bothSettled(worker(), worker());
      return total;
    }
    if (s.strategy === 'all-at-once') {
      add(await sendPath.claimAndSend(1_000_000_000, dueBy ? { dueBy } : {}));
      return total;
    }
    // batched: keyset pages of batchSize; each claim takes the next oldest page. Two pages are in
    // flight at once, so the next is claimed while the tail of the previous one is still sending.
    // A page that failed ends the round once the other page is done (the next wake-up is armed
    // from the database: what is due goes at once).
    let more = true;
    const worker = async (): Promise<void> => {
      do {
        const page = await sendPath.claimAndSend(s.batchSize, dueBy ? { dueBy } : {}).catch((error: unknown) => {
          more = false;
          throw error;
        });
        add(page);
        if (page.claimed < s.batchSize) more = false;
      } while (more && !stopped);
    };
    await bothSettled(worker(), worker());
    return total;
  };

  /** Serialises rounds: a wake-up during a round schedules one more round right after it. */
  const round = (): Promise<DrainReport> => {
    if (busy) {
      again = true;
      return running.then(() => ({ claimed: 0, byState: {}, expired: 0 }));
    }
    busy = true;
    const p = (async () => {
      let report: DrainReport = { claimed: 0, byState: {}, expired: 0 };
      try {
        do {
          again = false;
          report = await drainByStrategy();
          idleRoundAt = report.claimed === 0 ? clock.now().getTime() : undefined;
          const waiting = retryAt !== undefined && retryAt > clock.now().getTime() ? retryAt : undefined;
          retryAt = report.nextRetryAt === undefined ? waiting : Math.min(waiting ?? Infinity, report.nextRetryAt);
          if (report.claimed) logger.info({ ...report }, 'deliveries sent');
        } while (again && !stopped);
      } catch (error) {
        logger.error({ err: coerceError(error) }, 'delivery round failed; retrying at the next wake-up');
      } finally {
        busy = false;
      }
      return report;
    })();
    running = p;
    return p;
  };

  const rebuildWheel = async (): Promise<TimingWheel> => {
    const s = deps.settings();
    const now = clock.now().getTime();
    const fresh = createTimingWheel(now);
    let after = 0;
    for (;;) {
      const rows = await claimableBefore(db, new Date(now + s.lookaheadMs), after, 10_000);
      for (const r of rows) fresh.add(r.id, r.availableAt.getTime());
      if (rows.length < 10_000) break;
      after = rows.at(-1)?.id ?? after;
    }
    wheel = fresh;
    return fresh;
  };

  let arming = 0;
  let armed: Promise<void> = Promise.resolve();
  const arm = (): Promise<void> => {
    arming++;
    const p = armNow().finally(() => {
      arming--;
    });
    armed = p.catch(() => undefined);
    return p;
  };
  /** When the next lease of a row being sent runs out (any replica's), in ms; Infinity if none. */
  const nextLeaseExpiry = async (): Promise<number> => {
    const lease = await db.selectFrom('deliveries').select((eb) => eb.fn.min('lease_expires_at').as('at')).where('state', '=', 'sending').executeTakeFirst();
    return lease?.at ? new Date(lease.at).getTime() : Infinity;
  };

  /** When to wake next (ms), and the cron tick that is, if it is one. */
  const nextWake = async (s: EngineSettings, now: number): Promise<{ at: number; nextTick?: Date | undefined }> => {
    if (s.trigger === 'cron') {
      if (owedNow) {
        owedNow = false;
        return { at: now };
      }
      // A tick takes what is due; what it had to put back (a LINE failure, a paused channel, no link
      // yet) is owed already and goes out after its backoff, not at the next tick. A dead worker's
      // claims are taken over when their lease runs out, not at the next tick.
      if (retryAt !== undefined && retryAt <= now) retryAt = undefined;
      const nextTick = nextCronTick(s.cron, s.timeZone, new Date(now));
      return { at: Math.min(nextTick?.getTime() ?? now + s.pollMs, retryAt ?? Infinity, await nextLeaseExpiry()), nextTick };
    }
    if (s.strategy === 'timing-wheel') return { at: Math.min(wheel?.nextDueAt() ?? Infinity, now + s.pollMs) };
    // Continuous polling: sleep until the next due row or lease expiry (any replica's), at most pollInterval.
    const next = await db.selectFrom('deliveries').select((eb) => eb.fn.min('available_at').as('at')).where('state', '=', 'pending').executeTakeFirst();
    return { at: Math.min(next?.at ? new Date(next.at).getTime() : Infinity, await nextLeaseExpiry(), now + s.pollMs) };
  };

  const armNow = async (): Promise<void> => {
    if (stopped) return;
    if (wakeTimer) clock.clearTimeout(wakeTimer);
    const s = deps.settings();
    const now = clock.now().getTime();
    let at: number;
    let nextTick: Date | undefined;
    try {
      ({ at, nextTick } = await nextWake(s, now));
    } catch (error) {
      // The loop must never be left without a wake-up: look again shortly, as a poll would.
      logger.warn({ err: coerceError(error) }, 'could not read when deliveries are next due; looking again shortly');
      at = now + Math.min(s.pollMs, ARM_RETRY_MS);
    }
    if (stopped) return;
    if (wakeTimer) clock.clearTimeout(wakeTimer);
    // A row that was due already when the last round claimed nothing is not claimable yet by the
    // database's clock (skew) or is held by a replica: look again a little later, not at once.
    const floor = idleRoundAt !== undefined && at <= idleRoundAt ? IDLE_RETRY_MS : 0;
    wakeTimer = clock.setTimeout(() => {
      wakeTimer = undefined;
      if (nextTick?.getTime() === at) tick = nextTick;
      void round()
        .then(arm)
        .catch((e: unknown) => logger.error({ err: coerceError(e) }, 'could not arm the next delivery wake-up'));
    }, Math.max(floor, at - clock.now().getTime()));
  };

  const scheduleRefresh = (): void => {
    if (stopped) return;
    refreshTimer = clock.setTimeout(() => {
      void (async () => {
        if (deps.settings().strategy === 'timing-wheel') await rebuildWheel().catch((e: unknown) => logger.error({ err: coerceError(e) }, 'timing wheel refresh failed'));
        await arm();
      })()
        .catch((e: unknown) => logger.error({ err: coerceError(e) }, 'delivery refresh failed'))
        .finally(scheduleRefresh); // whatever failed, the next refresh comes
    }, deps.settings().pollMs);
  };

  return {
    async start() {
      stopped = false;
      // A failed load (a dropped connection, SQLite busy) must not leave the engine without its first
      // round, wake-up and refresh: the round loads the wheel itself when there is none.
      if (deps.settings().strategy === 'timing-wheel') await rebuildWheel().catch((e: unknown) => logger.error({ err: coerceError(e) }, 'could not load the timing wheel at start; loading it again in the first round'));
      // Catch-up after downtime happens in this first round: in-window work goes out in due order, the rest expires.
      await round();
      await arm();
      scheduleRefresh();
    },
    async stop() {
      stopped = true;
      if (wakeTimer) clock.clearTimeout(wakeTimer);
      if (refreshTimer) clock.clearTimeout(refreshTimer);
      await running;
      await armed;
      const released = await sendPath.release();
      if (released) logger.info({ released }, 'handed back unfinished deliveries');
    },
    runOnce: () => round(),
    notifyChanged(ids) {
      if (stopped) return;
      const cron = deps.settings().trigger === 'cron';
      // Counted as arming, so idle() (tests on virtual time) waits for the read before it too.
      arming++;
      const p = (async () => {
        // In chunks: a bulk import can change tens of thousands of rows, past a statement's parameter limit.
        for (const chunk of wheel || cron ? chunked(ids) : []) {
          const rows = await db.selectFrom('deliveries').select(['id', 'state', 'available_at']).where('id', 'in', chunk).execute();
          const now = clock.now().getTime();
          const horizon = now + deps.settings().lookaheadMs;
          for (const r of rows) {
            const at = new Date(r.available_at).getTime();
            if (wheel) {
              if (r.state === 'pending' && at < horizon) wheel.add(r.id, at);
              else wheel.remove(r.id);
            }
            // Under cron, a row owed already (sent again by an operator, or booked after its due
            // time) goes now: the next tick could be after its class started.
            if (cron && r.state === 'pending' && at <= now) owedNow = true;
          }
        }
        await arm();
      })()
        .catch((e: unknown) => logger.error({ err: coerceError(e) }, 'could not arm the next delivery wake-up'))
        .finally(() => {
          arming--;
        });
      armed = p;
    },
    wheelSize: () => wheel?.size ?? 0,
    async idle() {
      // A round ends by arming the next wake-up (a DB read) in a chained callback: let pending
      // callbacks run before deciding that nothing is in flight, or a test could move time past it.
      for (let i = 0; i < 100; i++) {
        await running;
        await armed;
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (!busy && arming === 0) return;
      }
    },
  };
}
