import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock, TimerHandle } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import { createLimiter, keyedLimiter } from '../concurrency.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { describeNoCapacity, hostWriteDay, nextUtcMidnight, planMeeting, quotaDay, rankHosts, type HostState, type MeetingSettings } from './allocation.ts';
import type { ZoomClient } from './client.ts';
import { isMeetingGone, ZoomError } from './errors.ts';
import { countNoCapacity, loadHost, loadPool, markHostExhausted, reservedWindows, reserveHost, type PoolHost } from './hosts.ts';
import { claimMeetingWork, releaseMeetingLeases, renewMeetingLeases, settleMeetingWork, type MeetingFields, type MeetingWork } from './meeting-work.ts';
import { adoptOrNull, meetingBody, savedMeeting, type HostCall } from './meeting-calls.ts';
import { accountUsageOn, hostWritesOn, spendHostWrite } from './usage.ts';
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

const MAX_HOST_TRIES = 6;
/** Wake-ups run a pass at most this often, however many changes arrive. */
const WAKE_GAP_MS = 1000;
/** Longest wait between tries of a schedule whose meeting work keeps failing (unless retryDelay is longer). */
const MAX_FAILURE_BACKOFF_MS = 2 * 60 * 60_000;

/**
 * Wait before the next try after `attempts` failures in a row (this one included): retryDelay,
 * doubling with each failure, up to MAX_FAILURE_BACKOFF_MS. A create or a move spends a write of the
 * host's 100 a day before Zoom is asked, so a failure that repeats (Zoom refusing to move a class
 * that is live, say) must not be tried every pass: at most about 16 writes a day instead of 288.
 */
export function failureBackoffMs(retryDelayMs: number, attempts: number): number {
  const doubled = retryDelayMs * 2 ** Math.min(Math.max(0, attempts - 1), 20);
  return Math.min(doubled, Math.max(retryDelayMs, MAX_FAILURE_BACKOFF_MS));
}
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
    // Host writes by UTC day (Zoom's reset); the account counters by the configured day.
    const day = hostWriteDay(now);
    const accountDay = quotaDay(now, cfg.quota.timezone);
    const horizonEnd = new Date(now.getTime() + cfg.provisioning.horizon.ms);
    const work = await claimMeetingWork(db, { owner, now, horizonEnd, leaseMs: cfg.provisioning.lease.ms, limit: cfg.provisioning.batchSize });
    const outcomes: Record<string, number> = {};
    if (work.length === 0) return { claimed: 0, outcomes };

    const pool = await loadPool(db, box);
    const byId = new Map(pool.map((h) => [h.id, h]));
    // A snapshot for ranking; reserveHost re-checks every choice under a lock.
    const windows = await reservedWindows(db, now, new Date(horizonEnd.getTime() + 86_400_000));
    const writes = await hostWritesOn(db, day);
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
    /** Drops a schedule's own reservation from the snapshot, so creating it afresh does not find its host busy with itself. */
    const freeOwnWindow = (w: MeetingWork): void => {
      const state = w.hostId === null ? undefined : states.get(w.hostId);
      const own = w.hostId === null ? undefined : windows.get(w.hostId)?.find((x) => x.scheduleId === w.id);
      if (state && own) state.busy = state.busy.filter((b) => b.start.getTime() !== own.start.getTime() || b.end.getTime() !== own.end.getTime());
    };
    let lastStamp = 0;
    const nextStamp = (): Date => {
      lastStamp = Math.max(clock.now().getTime(), lastStamp + 1);
      return new Date(lastStamp);
    };
    const call: HostCall = (host, fn) => perAccount(host.creds.accountId).run(() => fn(client, host.creds));
    const count = (outcome: string): void => {
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      deps.metrics.meetingOutcomes.inc({ outcome });
    };
    const settle = (w: MeetingWork, fields: Parameters<typeof settleMeetingWork>[4], release = true) => settleMeetingWork(db, w.id, owner, clock.now(), fields, release);
    const fail = async (w: MeetingWork, error: unknown, outcome = 'failed'): Promise<void> => {
      const reason = coerceError(error).message;
      const attempts = w.attempts + 1;
      const retryAt = new Date(clock.now().getTime() + failureBackoffMs(cfg.provisioning.retryDelay.ms, attempts));
      logger.warn({ schedule: w.externalId, reason, attempts, retryAt: retryAt.toISOString() }, 'meeting work failed; will retry');
      // An intent stays an intent: Zoom may hold its meeting, and only a listing of the host can tell.
      await settle(w, { meeting_state: w.meetingId || w.state === 'creating' ? w.state : 'failed', meeting_error: reason, meeting_attempts: attempts, meeting_retry_at: retryAt });
      count(outcome);
    };
    /** Zoom may have made this intent's meeting and cannot tell us yet: keep the intent, list again later. */
    const unresolved = async (w: MeetingWork, reason: string): Promise<void> => {
      // Once the class is over nothing will be created for it, so stop asking (the claim would retry for ever).
      if (w.endsAt.getTime() <= clock.now().getTime()) return fail({ ...w, state: 'none' }, new Error(`${reason}; the class is over`));
      logger.warn({ schedule: w.externalId, reason }, 'meeting intent unresolved; will list the host again');
      await settle(w, { meeting_state: 'creating', meeting_error: reason, meeting_attempts: w.attempts + 1, meeting_retry_at: new Date(clock.now().getTime() + cfg.provisioning.retryDelay.ms) });
      count('unresolved');
    };

    const create = async (w: MeetingWork): Promise<void> => {
      const klass = { startsAt: w.startsAt, endsAt: w.endsAt, trial: w.trial };
      for (let round = 0; round < MAX_HOST_TRIES; round++) {
        const ranking = rankHosts(klass, [...states.values()], settings, clock.now(), cfg.quota.hostMeetingWrites);
        const state = ranking.hosts[0];
        const host = state ? byId.get(state.id) : undefined;
        if (!state || !host) {
          const reason = describeNoCapacity(ranking, pool.length);
          logger.warn({ schedule: w.externalId, startsAt: w.startsAt.toISOString(), reason }, 'no Zoom host can take this class');
          await settle(w, { meeting_state: 'no_capacity', meeting_error: reason, meeting_account_id: null, host_window_start: null, host_window_end: null, meeting_retry_at: new Date(clock.now().getTime() + cfg.provisioning.retryDelay.ms) });
          count('no_capacity');
          return;
        }
        const plan = planMeeting(klass, host.plan, settings);
        const window = { start: plan.windowStart, end: plan.windowEnd };
        // Take the host in the snapshot before awaiting, so concurrent flows spread over the pool
        // (round-robin) instead of all ranking the same least-recently-used host first.
        const previous = { busy: state.busy, writes: state.writesToday, stamp: state.lastAssignedAt };
        state.busy = [...state.busy, window];
        state.writesToday++;
        state.lastAssignedAt = nextStamp();
        const reserved = await reserveHost(db, { scheduleId: w.id, hostId: host.id, windowStart: plan.windowStart, windowEnd: plan.windowEnd, day, writeCap: cfg.quota.hostMeetingWrites, leaseOwner: owner, attemptId: randomUUID(), version: w.version, state: 'creating', now: clock.now() });
        if (reserved.result !== 'reserved') {
          state.busy = reserved.result === 'busy' ? state.busy : previous.busy; // a clash in the DB: keep the window as busy
          state.writesToday = reserved.result === 'write_budget' ? cfg.quota.hostMeetingWrites : previous.writes;
          state.lastAssignedAt = previous.stamp;
          if (reserved.result === 'lease_lost') return;
          continue;
        }
        const body = meetingBody(w, plan, cfg.meeting.topicTemplate);
        try {
          const meeting = await call(host, (c, creds) => c.createMeeting(creds, host.hostUserId, body));
          await settle(w, savedMeeting(meeting, host.id, w.version, box));
          count('created');
          return;
        } catch (error) {
          if (error instanceof ZoomError && error.kind === 'host-daily-limit') {
            const until = nextUtcMidnight(clock.now());
            await markHostExhausted(db, host.id, until, clock.now());
            state.exhaustedUntil = until;
            logger.warn({ host: host.label, until: until.toISOString() }, 'Zoom host reached its daily create/update limit; using another host');
            await settle(w, { meeting_state: 'none', meeting_account_id: null, host_window_start: null, host_window_end: null }, false);
            continue;
          }
          if (error instanceof ZoomError && error.kind === 'ambiguous') {
            // Zoom may have created it: look before creating again.
            let adopted;
            try {
              adopted = await adoptOrNull(call, host, w, w.version, box);
            } catch (listError) {
              // Cannot tell: keep the intent so the next pass looks again before any new create.
              return unresolved(w, `${error.message}; then listing failed: ${coerceError(listError).message}`);
            }
            if (adopted) {
              await settle(w, adopted);
              count('adopted');
              return;
            }
            // Not listed, perhaps not yet (the listing may lag the create): a later pass looks again.
            return unresolved(w, `${error.message}; no meeting listed yet`);
          }
          await fail(w, error);
          return;
        }
      }
      await fail(w, new Error(`gave up after trying ${MAX_HOST_TRIES} hosts`));
    };

    const recover = async (w: MeetingWork, host: PoolHost | undefined): Promise<void> => {
      if (w.state !== 'creating') {
        // The meeting is known, whether Zoom took the change is not: redo it (PATCH and DELETE are
        // idempotent), so the version stamped is the one Zoom has.
        return w.cancelled ? remove(w, host) : move({ ...w, state: 'ready' }, host);
      }
      // A create was left half-done and Zoom may have made the meeting. Only a successful listing of
      // the reserved host (even if disabled since) can tell; until then the intent stays.
      let adopted: MeetingFields | null = null;
      let reservedHost = host;
      let refused = false;
      if (w.hostId !== null) {
        try {
          reservedHost ??= await loadHost(db, box, w.hostId);
          if (!reservedHost) throw new Error(`Zoom host ${w.hostId} is not in the database`);
          // Stamped with the version it was created for (null if the intent predates recording it):
          // if the class moved since, the claim picks the meeting up again and moves it.
          adopted = await adoptOrNull(call, reservedHost, w, w.intent?.version ?? null, box);
        } catch (error) {
          // A host taken out of the pool whose credentials or user Zoom now refuses for good (401,
          // 403, 404) will never answer: any meeting made there cannot run a class of ours, so the
          // class is placed afresh instead of waiting for an answer that never comes.
          refused = host === undefined && error instanceof ZoomError && (error.status === 401 || error.status === 403 || error.status === 404);
          if (!refused) return unresolved(w, `could not list the reserved host: ${coerceError(error).message}`);
          logger.warn({ schedule: w.externalId, host: w.hostId, reason: coerceError(error).message }, 'the disabled host of a meeting intent is refused by Zoom; placing the class afresh');
        }
      }
      if (adopted) {
        if (w.cancelled) return remove({ ...w, meetingId: adopted.meeting_id ?? null }, reservedHost);
        await settle(w, adopted);
        count('adopted');
        return;
      }
      // Zoom's listing may lag the create: a young intent is listed again on a later pass.
      if (!refused && w.intent && clock.now().getTime() - w.intent.at.getTime() < LISTING_LAG_MS) return unresolved(w, 'no meeting listed for the intent yet');
      if (w.cancelled) return remove({ ...w, meetingId: null }, reservedHost);
      await settle(w, { meeting_state: 'none', meeting_account_id: null, host_window_start: null, host_window_end: null }, false);
      freeOwnWindow(w);
      return create({ ...w, state: 'none' });
    };

    const remove = async (w: MeetingWork, host: PoolHost | undefined): Promise<void> => {
      if (w.meetingId && host) {
        try {
          await call(host, (c, creds) => c.deleteMeeting(creds, w.meetingId ?? ''));
        } catch (error) {
          if (!(error instanceof ZoomError && error.status === 404)) return fail(w, error);
        }
      }
      await settle(w, { meeting_state: 'deleted', host_window_start: null, host_window_end: null, meeting_error: null });
      count('deleted');
    };

    /**
     * A regular class on a basic host (a trial until its flag changed, or a fallback when no licensed
     * host was free) moves to a licensed host that can take it, as a new one would be placed. Not once
     * its link may have gone out: students would be left with the deleted meeting's link.
     */
    const leavesBasicHost = (w: MeetingWork, host: PoolHost): boolean => {
      if (host.plan !== 'basic' || w.trial) return false;
      const linkDue = w.startsAt.getTime() - config.current().notifications.meetingUrl.leadMinutes * 60_000;
      if (clock.now().getTime() >= linkDue) return false;
      const licensed = [...states.values()].filter((s) => s.plan === 'licensed');
      return rankHosts({ startsAt: w.startsAt, endsAt: w.endsAt, trial: false }, licensed, settings, clock.now(), cfg.quota.hostMeetingWrites).hosts.length > 0;
    };

    /**
     * A finished class's meeting is closed to late students: join before host lets anyone with the
     * link start it for 30 days, on its host, blocking that host's next class. Turning it off (a
     * PATCH, one host write) keeps the meeting and its recordings; a student then waits for a host
     * who never comes. Zoom refuses while the meeting runs (3000): tried again after retryDelay.
     */
    const close = async (w: MeetingWork, host: PoolHost | undefined): Promise<void> => {
      if (host && w.meetingId) {
        if (!(await spendHostWrite(db, host.id, day, cfg.quota.hostMeetingWrites))) {
          await settle(w, { meeting_state: 'ready', meeting_retry_at: nextUtcMidnight(clock.now()) });
          count('close_deferred');
          return;
        }
        try {
          await call(host, (c, creds) => c.updateMeeting(creds, w.meetingId ?? '', { settings: { join_before_host: false } }));
        } catch (error) {
          if (!isMeetingGone(error)) return fail(w, error);
        }
      }
      // A disabled host's meeting cannot be reached: nothing more to do for it.
      await settle(w, { meeting_state: 'ready', meeting_closed_at: clock.now(), meeting_error: null, meeting_attempts: 0, meeting_retry_at: null });
      count('closed');
    };

    const move = async (w: MeetingWork, host: PoolHost | undefined): Promise<void> => {
      const klass = { startsAt: w.startsAt, endsAt: w.endsAt, trial: w.trial };
      if (host && w.meetingId) {
        const plan = planMeeting(klass, host.plan, settings);
        const eligible = host.plan === 'licensed' || rankHosts(klass, [{ ...(states.get(host.id) as HostState), busy: [] }], settings, clock.now(), Infinity).hosts.length > 0;
        const fits = eligible && !leavesBasicHost(w, host);
        const reserved = fits
          ? await reserveHost(db, { scheduleId: w.id, hostId: host.id, windowStart: plan.windowStart, windowEnd: plan.windowEnd, day, writeCap: cfg.quota.hostMeetingWrites, leaseOwner: owner, attemptId: randomUUID(), version: w.version, state: 'updating', now: clock.now() })
          : { result: 'busy' as const };
        if (reserved.result === 'lease_lost') return;
        if (reserved.result === 'reserved') {
          try {
            const body = meetingBody(w, plan, cfg.meeting.topicTemplate);
            await call(host, (c, creds) => c.updateMeeting(creds, w.meetingId ?? '', { start_time: body.start_time, duration: body.duration, topic: body.topic, timezone: 'UTC', settings: { jbh_time: body.settings.jbh_time } }));
            await settle(w, { meeting_state: 'ready', meeting_version: w.version, meeting_error: null, meeting_attempts: 0, meeting_retry_at: null });
            count('updated');
            return;
          } catch (error) {
            if (!(error instanceof ZoomError && (error.status === 404 || error.kind === 'host-daily-limit'))) return fail(w, error);
          }
        }
        // The host cannot keep it (busy, budget, gone): delete and create elsewhere.
        try {
          await call(host, (c, creds) => c.deleteMeeting(creds, w.meetingId ?? ''));
        } catch (error) {
          if (!(error instanceof ZoomError && error.status === 404)) return fail(w, error);
        }
      }
      await settle(w, { meeting_state: 'none', meeting_id: null, meeting_uuid: null, join_url: null, start_url: null, passcode: null, meeting_account_id: null, host_window_start: null, host_window_end: null }, false);
      freeOwnWindow(w);
      count('moved');
      return create({ ...w, state: 'none', meetingId: null });
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
      return create(w);
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
      work.map((w) =>
        overall.run(async () => {
          // Stopping: leave queued work unstarted; its lease is handed back in stop().
          if (stopped) return;
          const host = w.hostId === null ? undefined : byId.get(w.hostId);
          try {
            if (w.state === 'creating' || w.state === 'updating' || w.state === 'deleting') await recover(w, host);
            else if (w.cancelled) await remove(w, host);
            else if (w.state === 'ready' && w.meetingVersion === w.version) await close(w, host);
            else if (w.state === 'ready') await move(w, host);
            else await createChecked(w);
          } catch (error) {
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

  let timer: TimerHandle | undefined;
  let running: Promise<unknown> | undefined;
  let lastEnd = -Infinity;
  let again = false;
  let started = false;
  const tick = (): void => {
    if (stopped) return;
    timer = undefined;
    running = runPass()
      .then((report) => {
        if (report.claimed) logger.info({ ...report }, 'provisioning pass');
      })
      .catch((error: unknown) => logger.error({ err: coerceError(error) }, 'provisioning pass failed'))
      .finally(() => {
        running = undefined;
        lastEnd = clock.now().getTime();
        if (!stopped) timer = clock.setTimeout(tick, again ? WAKE_GAP_MS : zoomCfg().provisioning.interval.ms);
        again = false;
      });
  };
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
      if (timer) clock.clearTimeout(timer);
      timer = clock.setTimeout(tick, Math.max(0, lastEnd + WAKE_GAP_MS - clock.now().getTime()));
    },
    async stop() {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
      await running;
      await releaseMeetingLeases(db, owner);
    },
  };
}
