import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock, TimerHandle } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { createLimiter, keyedLimiter } from '../concurrency.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { createPeriodTimer } from '../period-timer.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { MeetingState } from '../db/tables.ts';
import { hostWriteDay, meetingMarker, nextUtcMidnight, quotaDay, type HostState, type MeetingSettings } from './allocation.ts';
import type { ZoomClient } from './client.ts';
import { failureBackoffMs, listingGivenUp, needsRetitle, refusalCoversAccount, refusesForGood } from './decisions.ts';
import { isHostRefused, ZoomError } from './errors.ts';
import { countNoCapacity, loadHost, loadPool, markHostExhausted, noteRefused, noteWorks, reservedWindows, type PoolHost } from './hosts.ts';
import { claimMeetingWork, releaseMeetingLeases, renewMeetingLeases, settleMeetingWork, type MeetingFields, type MeetingWork } from './meeting-work.ts';
import { adoptOrNull, type HostCall } from './meeting-calls.ts';
import { create } from './meeting-create.ts';
import { close, move, remove } from './meeting-moves.ts';
import { retitle } from './meeting-topic.ts';
import { dropReplaced, keepReplaced } from './meeting-replaced.ts';
import type { Pass } from './pass.ts';
import { accountUsageOn, hostWritesOn } from './usage.ts';
import type { DeliveryRules } from '../deliveries/rules.ts';
import { checkAndReportHeadcount, type MinimumPolicy } from '../monitor/headcount.ts';
import type { MonitorMetrics } from '../monitor/metrics.ts';

export interface ProvisionerDeps {
  db: Db;
  box: SecretBox;
  clock: Clock;
  config: ConfigStore;
  client: ZoomClient;
  logger: Logger;
  metrics: Pick<Metrics, 'meetingOutcomes' | 'schedulesWithoutCapacity'>;
  /** Distinguishes this worker's leases (default: host:pid:random). */
  owner?: string;
  /** The early (reporting only) minimum-headcount check before a meeting is made (absent: no check). */
  headcount?: {
    policy: () => MinimumPolicy;
    rules: () => DeliveryRules;
    metrics?: Pick<MonitorMetrics, 'headcount'>;
    onDeliveriesChanged?: (ids: number[]) => void;
  };
}

export interface PassReport {
  claimed: number;
  outcomes: Record<string, number>;
}

export interface Provisioner {
  /** One pass: claim the schedules that need meeting work and do it, concurrently within limits. */
  runPass(): Promise<PassReport>;
  /** Runs a pass every `zoom.provisioning.interval` (re-read each time) until stopped. */
  start(): void;
  /** A class was created, moved or cancelled: run a pass soon (at most one a second), not at the next interval. */
  wake(): void;
  /** Stops the loop, waits for the pass in flight, hands back leases. */
  stop(): Promise<void>;
}

/** Wake-ups run a pass at most this often, however many changes arrive. */
const WAKE_GAP_MS = 1000;
/** Zoom's listing may lag a create: an intent whose meeting is not listed is given up on only this long after it. */
const LISTING_LAG_MS = 5 * 60_000;

export function createProvisioner(deps: ProvisionerDeps): Provisioner {
  const { db, box, clock, config, client, logger } = deps;
  const owner = deps.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const zoomCfg = () => config.current().zoom;
  const overall = createLimiter(() => zoomCfg().provisioning.concurrency);
  let stopped = false;
  const perAccount = keyedLimiter(() => zoomCfg().provisioning.perAccountConcurrency);

  const runPass = async (): Promise<PassReport> => {
    const cfg = zoomCfg();
    const now = clock.now();
    const settings: MeetingSettings = { ...cfg.meeting, basic: cfg.basic };
    const cap = cfg.quota.hostMeetingWrites;
    // Host writes by UTC day (Zoom's reset); the account counters by the configured day.
    let snapshotDay = hostWriteDay(now);
    /** Each write counts on the UTC day it is made: a pass may cross 00:00 UTC. */
    const day = (): string => hostWriteDay(clock.now());
    const accountDay = quotaDay(now, cfg.quota.timezone);
    const horizonEnd = new Date(now.getTime() + cfg.provisioning.horizon.ms);
    const work = await claimMeetingWork(db, { owner, now, horizonEnd, leaseMs: cfg.provisioning.lease.ms, limit: cfg.provisioning.batchSize });
    const outcomes: Record<string, number> = {};
    if (work.length === 0) return { claimed: 0, outcomes };

    const { hosts: pool, unusable } = await loadPool(db, box);
    for (const h of unusable) logger.error({ host: h.label, reason: h.reason }, 'Zoom host left out of provisioning');
    const byId = new Map(pool.map((h) => [h.id, h]));
    // A snapshot for ranking; reserveHost re-checks every choice under a lock.
    const windows = await reservedWindows(db, now, new Date(horizonEnd.getTime() + 86_400_000));
    const writes = await hostWritesOn(db, snapshotDay);
    const usage = await accountUsageOn(db, accountDay);
    const states = new Map<number, HostState>(
      pool.map((h) => [
        h.id,
        {
          id: h.id,
          plan: h.plan,
          accountId: h.creds.accountId,
          exhaustedUntil: h.exhaustedUntil,
          lastAssignedAt: h.lastAssignedAt,
          writesToday: writes.get(h.id) ?? 0,
          accountBudgetLeft: h.plan === 'licensed' || (usage.get(h.creds.accountId)?.medium ?? 0) < cfg.quota.basicAccountDaily.medium,
          busy: (windows.get(h.id) ?? []).map((w) => ({ start: w.start, end: w.end })),
        },
      ]),
    );
    /** Hosts Zoom refused for good during this pass (user gone, credentials refused), and why: not tried again in it. */
    const refused = new Map<number, string>();
    const candidates = (): HostState[] => {
      // Past 00:00 UTC the snapshot's write counts are yesterday's: start the new day's from zero
      // (reserveHost spends from the database's count, so the snapshot only ranks).
      if (day() !== snapshotDay) {
        snapshotDay = day();
        for (const s of states.values()) s.writesToday = 0;
      }
      return [...states.values()].filter((s) => !refused.has(s.id));
    };
    const leftOut = () => [...unusable, ...[...refused].map(([id, reason]) => ({ label: byId.get(id)?.label ?? String(id), reason }))];
    const inPool = (host: PoolHost): boolean => byId.has(host.id);
    /** A meeting's host, enabled or not: the meetings of a host taken out of the pool still need moving, closing, deleting. */
    const hostOf = async (id: number): Promise<PoolHost | undefined> => byId.get(id) ?? loadHost(db, box, id);
    /** Drops a schedule's own reservation from the snapshot, so creating it afresh does not find its host busy with itself. */
    const freeOwnWindow = (w: MeetingWork): void => {
      const state = w.hostId === null ? undefined : states.get(w.hostId);
      const own = w.hostId === null ? undefined : windows.get(w.hostId)?.find((x) => x.scheduleId === w.id && !x.replaced);
      if (state && own) state.busy = state.busy.filter((b) => b.start.getTime() !== own.start.getTime() || b.end.getTime() !== own.end.getTime());
    };
    let lastStamp = 0;
    const nextStamp = (): Date => {
      lastStamp = Math.max(clock.now().getTime(), lastStamp + 1);
      return new Date(lastStamp);
    };
    /** Hosts a refusal of `host` covers: rejected credentials are the account's, so its other hosts would be refused alike. */
    const refusedWith = (host: PoolHost, error: unknown): PoolHost[] => {
      const account = refusalCoversAccount(error);
      return [host, ...pool.filter((h) => h.id !== host.id && account && h.creds.accountId === host.creds.accountId)];
    };
    const refusalOf = (error: unknown): string => `refused by Zoom: ${coerceError(error).message}`;
    /**
     * Every Zoom call of the pass: a refusal for good is kept on the host(s) for operators to see,
     * and a success clears it, with a refusal of the account's credentials on its other hosts
     * (one write, only when one is marked).
     */
    const call: HostCall = async (host, fn) => {
      let out;
      try {
        out = await perAccount(host.creds.accountId).run(() => fn(client, host.creds));
      } catch (error) {
        if (isHostRefused(error)) {
          await noteRefused(db, refusedWith(host, error), refusalOf(error), refusalCoversAccount(error), clock.now()).catch((e: unknown) =>
            logger.error({ err: coerceError(e), host: host.label }, 'could not record why Zoom refuses a host'),
          );
        }
        throw error;
      }
      if (await noteWorks(db, pool, host, clock.now()).catch((e: unknown) => logger.error({ err: coerceError(e), host: host.label }, 'could not clear a host refusal'))) logger.info({ host: host.label }, 'Zoom takes this host again');
      return out;
    };
    const count = (outcome: string): void => {
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      deps.metrics.meetingOutcomes.inc({ outcome });
    };
    const settle = (w: MeetingWork, fields: MeetingFields, release = true) => settleMeetingWork(db, w.id, owner, clock.now(), fields, release);
    /**
     * Records a failure and backs off. `state` is set only when the caller knows it: otherwise the
     * row keeps its state, for only a listing of the host can drop an intent Zoom may have acted on.
     */
    const fail = async (w: MeetingWork, error: unknown, state?: MeetingState, outcome = 'failed'): Promise<void> => {
      const reason = coerceError(error).message;
      const attempts = w.attempts + 1;
      const retryAt = new Date(clock.now().getTime() + failureBackoffMs(cfg.provisioning.retryDelay.ms, attempts));
      logger.warn({ schedule: w.externalId, reason, attempts, retryAt: retryAt.toISOString() }, 'meeting work failed; will retry');
      await settle(w, { ...(state ? { meeting_state: state } : {}), meeting_error: reason, meeting_attempts: attempts, meeting_retry_at: retryAt });
      count(outcome);
    };
    /** Zoom may have made this intent's meeting and cannot tell us yet: keep the intent, list again later. */
    const unresolved = async (w: MeetingWork, reason: string): Promise<void> => {
      if (w.endsAt.getTime() <= clock.now().getTime()) {
        // Nothing will be created for a class that is over, but a meeting Zoom made for it would be
        // left live with no row pointing at it: keep listing (backing off) to adopt it, so it is
        // closed like any other, and give up only days later, saying what may be left at Zoom.
        if (listingGivenUp(clock.now(), w.endsAt)) {
          return fail(w, new Error(`${reason}; the class is over: a meeting marked ${meetingMarker(w.externalId)} may be left at Zoom on its host; delete it there by hand`), 'failed');
        }
        return fail(w, new Error(`${reason}; the class is over, its host is listed again to find its meeting`), 'creating', 'unresolved');
      }
      logger.warn({ schedule: w.externalId, reason }, 'meeting intent unresolved; will list the host again');
      await settle(w, { meeting_state: 'creating', meeting_error: reason, meeting_attempts: w.attempts + 1, meeting_retry_at: new Date(clock.now().getTime() + cfg.provisioning.retryDelay.ms) });
      count('unresolved');
    };
    /** Zoom will not take writes on this host today (its daily limit) or at all (refused): keep it out, say why. */
    const setHostAside = async (host: PoolHost, error: unknown): Promise<boolean> => {
      if (error instanceof ZoomError && error.kind === 'host-daily-limit') {
        const until = nextUtcMidnight(clock.now());
        await markHostExhausted(db, host.id, until, clock.now());
        const state = states.get(host.id);
        if (state) state.exhaustedUntil = until;
        logger.warn({ host: host.label, until: until.toISOString() }, 'Zoom host reached its daily create/update limit; using another host');
        return true;
      }
      if (!isHostRefused(error)) return false;
      const reason = refusalOf(error);
      for (const h of refusedWith(host, error)) refused.set(h.id, reason);
      logger.error({ host: host.label, reason }, 'Zoom refuses this host; leaving it out of this pass');
      return true;
    };
    // What the meeting flows (meeting-create.ts, meeting-moves.ts) use of this pass.
    const pass: Pass = { db, box, clock, config, logger, cfg, settings, cap, day, owner, states, refused, byId, candidates, leftOut, inPool, hostOf, freeOwnWindow, nextStamp, call, count, settle, fail, unresolved, setHostAside };

    const recover = async (w: MeetingWork): Promise<void> => {
      if (w.state !== 'creating') {
        // The meeting is known, whether Zoom took the change is not: redo it (PATCH and DELETE are
        // idempotent), so the version stamped is the one Zoom has.
        return w.cancelled ? remove(pass, w) : move(pass, { ...w, state: 'ready' });
      }
      // A create was left half-done and Zoom may have made the meeting. Only a successful listing of
      // the reserved host (even if disabled since) can tell; until then the intent stays.
      let adopted: MeetingFields | null = null;
      let refusedForGood = false;
      if (w.hostId !== null) {
        let host: PoolHost | undefined;
        try {
          host = await hostOf(w.hostId);
          if (!host) throw new Error(`Zoom host ${w.hostId} is not in the database`);
          // Stamped with the version it was created for (null if the intent predates recording it):
          // if the class moved since, the claim picks the meeting up again and moves it.
          adopted = await adoptOrNull(call, host, w, w.intent?.version ?? null, box, cfg.meeting.topicTemplate);
        } catch (error) {
          // A host taken out of the pool whose credentials or user Zoom now refuses for good will
          // never answer: any meeting made there cannot run a class of ours, so the class is placed afresh.
          refusedForGood = host !== undefined && !inPool(host) && refusesForGood(error);
          if (!refusedForGood) return unresolved(w, `could not list the reserved host: ${coerceError(error).message}`);
          logger.warn({ schedule: w.externalId, host: w.hostId, reason: coerceError(error).message }, 'the disabled host of a meeting intent is refused by Zoom; placing the class afresh');
        }
      }
      if (adopted) {
        if (w.cancelled) return remove(pass, { ...w, meetingId: adopted.meeting_id ?? null });
        await settle(w, adopted);
        count('adopted');
        return;
      }
      // Zoom's listing may lag the create: a young intent is listed again on a later pass.
      if (!refusedForGood && w.intent && clock.now().getTime() - w.intent.at.getTime() < LISTING_LAG_MS) return unresolved(w, 'no meeting listed for the intent yet');
      // A re-host made nothing: the meeting it was to replace is the class's again (then moved, deleted or closed).
      if (w.replaced) return keepReplaced(pass, w, 'Zoom lists no meeting made for the re-host');
      if (w.cancelled) return remove(pass, { ...w, meetingId: null });
      // Zoom made nothing, and a class that is over needs nothing.
      if (w.endsAt.getTime() <= clock.now().getTime()) return fail(w, new Error('the class is over and Zoom lists no meeting made for it'), 'failed');
      await settle(w, { meeting_state: 'none', meeting_account_id: null, host_window_start: null, host_window_end: null }, false);
      freeOwnWindow(w);
      return create(pass, { ...w, state: 'none' });
    };

    /**
     * The first meeting of a class with a minimum is preceded by an early headcount report. It never
     * calls the class off, whatever the policy: bookings usually arrive after the class enters the
     * horizon, and only the monitor's check before the link goes out is binding.
     */
    const createChecked = async (w: MeetingWork): Promise<void> => {
      const hc = deps.headcount;
      if (hc && w.minParticipants > 0 && w.headcountStage === null) {
        await checkAndReportHeadcount(
          db,
          clock,
          { scheduleId: w.id, stage: 'provision', policy: hc.policy(), rules: hc.rules() },
          { logger, label: w.externalId, metrics: hc.metrics, onDeliveriesChanged: hc.onDeliveriesChanged },
        );
      }
      return create(pass, w);
    };

    // Keep the leases of this batch alive while it is worked on (slow Zoom, retries, a long queue).
    let renewal: TimerHandle | undefined;
    const renew = (): void => {
      renewal = clock.setTimeout(() => {
        void renewMeetingLeases(db, owner, new Date(clock.now().getTime() + cfg.provisioning.lease.ms))
          .catch((error: unknown) => logger.warn({ err: coerceError(error) }, 'could not renew meeting leases'))
          .finally(() => {
            if (renewal) renew();
          });
      }, cfg.provisioning.lease.ms / 3);
    };
    renew();
    await Promise.all(
      work.map((claimed) =>
        overall.run(async () => {
          let w = claimed;
          // Stopping: leave queued work unstarted; its lease is handed back in stop().
          if (stopped) return;
          try {
            // A side task with its own backoff: the class's own work goes on whatever it gives.
            w = await dropReplaced(pass, w);
            if (!w.due) await settle(w, {}); // picked for that alone: hand the lease back
            else if (w.state === 'creating' || w.state === 'updating' || w.state === 'deleting') await recover(w);
            else if (w.cancelled) await remove(pass, w);
            // Judged at the claim's instant, as the claim was: a class over by now is closed, not re-titled.
            else if (w.state === 'ready' && w.meetingVersion === w.version) await (needsRetitle(w, now) ? retitle(pass, w) : close(pass, w));
            else if (w.state === 'ready') await move(pass, w);
            else await createChecked(w);
          } catch (error) {
            // Unexpected (a DB error, an unreadable host): its state stays, as it may be an intent.
            await fail(w, error).catch((e: unknown) => logger.error({ err: coerceError(e) }, 'could not record a meeting failure'));
          }
        }),
      ),
    );
    if (renewal) clock.clearTimeout(renewal);
    renewal = undefined;
    deps.metrics.schedulesWithoutCapacity.set(await countNoCapacity(db, now, horizonEnd));
    return { claimed: work.length, outcomes };
  };

  let running: Promise<unknown> | undefined;
  let lastEnd = -Infinity;
  let again = false;
  let started = false;
  const tick = (): void => {
    if (stopped) return;
    running = runPass()
      .then((report) => {
        if (report.claimed) logger.info({ ...report }, 'provisioning pass');
      })
      .catch((error: unknown) => logger.error({ err: coerceError(error) }, 'provisioning pass failed'))
      .finally(() => {
        running = undefined;
        lastEnd = clock.now().getTime();
        if (!stopped) {
          if (again) next.armIn(WAKE_GAP_MS);
          else next.arm();
        }
        again = false;
      });
  };
  const next = createPeriodTimer(clock, () => zoomCfg().provisioning.interval.ms, tick, (listener) => config.onChange(listener));
  return {
    runPass,
    start() {
      stopped = false;
      started = true;
      tick();
    },
    wake() {
      // Only a provisioner that runs its loop (one-shot tools and tests drive runPass themselves).
      if (!started || stopped) return;
      if (running) {
        again = true;
        return;
      }
      next.armIn(Math.max(0, lastEnd + WAKE_GAP_MS - clock.now().getTime()));
    },
    async stop() {
      stopped = true;
      next.clear();
      await running;
      await releaseMeetingLeases(db, owner);
    },
  };
}
