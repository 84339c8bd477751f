import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import type { DeliveryRules } from '../deliveries/rules.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createPeriodTimer } from '../period-timer.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { readZoomCredentials } from '../zoom/accounts.ts';
import type { ZoomClient } from '../zoom/client.ts';
import { isMeetingGone } from '../zoom/errors.ts';
import type { ZoomCredentials } from '../zoom/tokens.ts';
import { applyLiveStatus } from './live.ts';
import { checkAndReportHeadcount } from './headcount.ts';
import { classesMissingReplayLinks, oweReplayLinks } from '../deliveries/owed.ts';
import type { MonitorMetrics } from './metrics.ts';
import { claimGraceWork, dueForSendCheck, meetingsWithEvents, overrunMeetings, releaseGraceLeases, retryGraceWork } from './monitor-work.ts';
import { checkAttendance, RETRY_LATER_MS } from './grace-check.ts';

export interface MonitorDeps {
  db: Db;
  box: SecretBox;
  clock: Clock;
  config: ConfigStore;
  client: ZoomClient;
  logger: Logger;
  metrics: MonitorMetrics;
  /** The outbox's due-time rules (a policy cancellation re-syncs deliveries). */
  rules: () => DeliveryRules;
  /** Deliveries created or cancelled here (the timing wheel re-arms them). */
  onDeliveriesChanged?: (ids: number[]) => void;
  owner?: string;
}

export interface MonitorReport {
  headcountChecked: number;
  graceChecked: Record<string, number>;
  reconciled: number;
  replayLinksOwed: number;
}

const BATCH = 200;
/** Attendance checks in flight at once (each a few Zoom calls), and the lease on each. */
const GRACE_AT_ONCE = 8;
const GRACE_LEASE_MS = 5 * 60_000;
const MAX_GRACE_ROUNDS = 50;

/**
 * Watches classes around their start, on a loop every `monitor.interval`: the booked-headcount
 * check before the meeting link goes out (always); and, while `monitor.enabled`, the grace-time
 * check of who is really there (ending and deleting an empty meeting), a reconciliation poll for
 * meetings whose end was never heard of, and the replay links a crash kept from being owed.
 */
export function createMonitor(deps: MonitorDeps) {
  const { db, box, clock, config, client, logger, metrics } = deps;
  const owner = deps.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

  const credsOf = async (accountId: number | null): Promise<ZoomCredentials | null> => (accountId === null ? null : readZoomCredentials(db, box, accountId).catch(() => null));

  const headcountBeforeSending = async (now: Date): Promise<number> => {
    const cfg = config.current();
    const ids = await dueForSendCheck(db, { now, leadMs: cfg.notifications.meetingUrl.leadMinutes * 60_000, horizonMs: 2 * cfg.monitor.interval.ms, limit: BATCH });
    for (const id of ids) {
      try {
        await checkAndReportHeadcount(
          db,
          clock,
          { scheduleId: id, stage: 'send', policy: cfg.monitor.minimumPolicy, rules: deps.rules() },
          { logger, label: id, metrics, onDeliveriesChanged: deps.onDeliveriesChanged },
        );
      } catch (error) {
        // One class's failure must not hold up the others' checks or the attendance checks.
        logger.error({ schedule: id, err: coerceError(error) }, 'headcount check failed; trying again next pass');
      }
    }
    return ids.length;
  };

  const graceDeps = { db, box, clock, config, client, logger, owner, onDeliveriesChanged: deps.onDeliveriesChanged };
  /** Claims as many classes as are checked at once, so no claim waits behind others past its lease. */
  const graceChecks = async (now: Date): Promise<Record<string, number>> => {
    const cfg = config.current();
    const counts: Record<string, number> = {};
    for (let round = 0; round < MAX_GRACE_ROUNDS; round++) {
      const work = await claimGraceWork(db, { owner, now, graceMs: cfg.monitor.graceMinutes * 60_000, leaseMs: GRACE_LEASE_MS, limit: GRACE_AT_ONCE });
      if (work.length === 0) break;
      const seen = await meetingsWithEvents(db, work.map((w) => w.meetingId));
      await Promise.all(
        work.map(async (w) => {
          let state: string;
          try {
            state = await checkAttendance(graceDeps, w, seen.has(w.meetingId));
          } catch (error) {
            state = 'error';
            const reason = coerceError(error).message;
            logger.error({ schedule: w.externalId, reason }, 'attendance check failed; trying again');
            const retryAt = new Date(clock.now().getTime() + RETRY_LATER_MS);
            await retryGraceWork(db, { id: w.id, owner, version: w.version, now: clock.now(), reason: `check failed: ${reason}`, retryAt }).catch(() => undefined);
          }
          counts[state] = (counts[state] ?? 0) + 1;
          metrics.grace.inc({ state });
        }),
      );
      if (work.length < GRACE_AT_ONCE) break;
    }
    return counts;
  };

  /** Started meetings whose meeting.ended never came, well after their class: ask Zoom. */
  const reconcileOverruns = async (now: Date): Promise<number> => {
    const cfg = config.current();
    if (!cfg.monitor.reconcile) return 0;
    const afterMs = (cfg.zoom.meeting.afterClassMinutes + 10) * 60_000;
    const meetings = await overrunMeetings(db, { now, afterMs, limit: BATCH });
    for (const m of meetings) {
      const creds = await credsOf(m.accountId);
      if (!creds) continue;
      try {
        const meeting = await client.getMeeting(creds, m.meetingId);
        await applyLiveStatus(db, clock.now(), m.id, meeting.status === 'started' ? 'started' : 'ended');
      } catch (error) {
        if (isMeetingGone(error)) await applyLiveStatus(db, clock.now(), m.id, 'ended');
        else logger.warn({ schedule: m.id, err: coerceError(error) }, 'meeting status poll failed');
      }
      await db.updateTable('schedules').set({ attendance_checked_at: clock.now() }).where('id', '=', m.id).execute();
    }
    return meetings.length;
  };

  /** Replay links a crash kept from being owed when their recording was stored. */
  const catchUpReplayLinks = async (now: Date): Promise<number> => {
    const replay = config.current().notifications.replayUrl;
    if (!replay.enabled) return 0;
    let owed = 0;
    for (const scheduleId of await classesMissingReplayLinks(db, now, replay.lateWindow.ms)) {
      const ids = await oweReplayLinks(db, now, { scheduleId, lateWindowMs: replay.lateWindow.ms });
      if (ids.length) deps.onDeliveriesChanged?.(ids);
      owed += ids.length;
    }
    return owed;
  };

  const runPass = async (): Promise<MonitorReport> => {
    const now = clock.now();
    // The minimum headcount is a scheduling rule, decided from the bookings alone: a platform that
    // turns off watching Zoom (`monitor.enabled: false`) still has its short classes called off
    // under `cancel` (and reported under `notify-only`). Only what watches the meetings stops.
    const headcountChecked = await headcountBeforeSending(now);
    if (!config.current().monitor.enabled) return { headcountChecked, graceChecked: {}, reconciled: 0, replayLinksOwed: 0 };
    const graceChecked = await graceChecks(now);
    const reconciled = await reconcileOverruns(now);
    const replayLinksOwed = await catchUpReplayLinks(now);
    return { headcountChecked, graceChecked, reconciled, replayLinksOwed };
  };

  let stopped = true;
  let running: Promise<unknown> | undefined;
  const tick = (): void => {
    if (stopped) return;
    running = runPass()
      .then((r) => {
        if (r.headcountChecked || Object.keys(r.graceChecked).length || r.reconciled || r.replayLinksOwed) logger.info({ ...r }, 'monitor pass');
      })
      .catch((error: unknown) => logger.error({ err: coerceError(error) }, 'monitor pass failed'))
      .finally(() => {
        running = undefined;
        if (!stopped) next.arm();
      });
  };
  const next = createPeriodTimer(clock, () => config.current().monitor.interval.ms, tick, (listener) => config.onChange(listener));
  return {
    owner,
    runPass,
    start(): void {
      stopped = false;
      tick();
    },
    async stop(): Promise<void> {
      stopped = true;
      next.clear();
      await running;
      await releaseGraceLeases(db, owner);
    },
  };
}

export type Monitor = ReturnType<typeof createMonitor>;
