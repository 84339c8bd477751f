import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { Clock, TimerHandle } from '../clock.ts';
import { createLimiter } from '../concurrency.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import type { DeliveryRules } from '../deliveries/rules.ts';
import { coerceError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { readZoomCredentials } from '../zoom/accounts.ts';
import type { ZoomClient } from '../zoom/client.ts';
import { ZoomError } from '../zoom/errors.ts';
import { participantKey } from '../zoom/webhook.ts';
import type { ZoomCredentials } from '../zoom/tokens.ts';
import { participantRole } from './attendance.ts';
import { applyLiveSnapshot, applyLiveStatus, poolHosts } from './live.ts';
import { deleteStep, graceVerdict } from './grace.ts';
import { bookedCounts, checkHeadcount } from './headcount.ts';
import type { MonitorMetrics } from './metrics.ts';
import { cancelLinksOfEndedClass, claimGraceWork, dueForSendCheck, meetingsWithEvents, overrunMeetings, releaseGraceLeases, settleGraceWork, type GraceWork } from './monitor-work.ts';

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
}

const BATCH = 200;
/** How often, and how far apart, a DELETE refused as "in progress" is tried again. */
const DELETE_TRIES = 3;
const DELETE_PAUSE_MS = 2000;
const RETRY_LATER_MS = 60_000;

/** One item of the dashboard's live participants (Business plans); the rest is ignored. */
const text = z.union([z.string(), z.number()]).transform((v) => (v === '' ? null : String(v))).nullish().transform((v) => v ?? null);
const dashboardItem = z.object({
  id: text,
  user_id: text,
  participant_uuid: text,
  participant_user_id: text,
  user_name: text,
  email: text,
  status: text,
});

/**
 * Watches classes around their start, on a loop every `monitor.interval`: the booked-headcount
 * check before the meeting link goes out; the grace-time check of who is really there (ending and
 * deleting an empty meeting); and a reconciliation poll for meetings whose end was never heard of.
 */
export function createMonitor(deps: MonitorDeps) {
  const { db, box, clock, config, client, logger, metrics } = deps;
  const owner = deps.owner ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const zoomCalls = createLimiter(() => 8);

  const credsOf = async (accountId: number | null): Promise<ZoomCredentials | null> => (accountId === null ? null : readZoomCredentials(db, box, accountId).catch(() => null));

  const headcountBeforeSending = async (now: Date): Promise<number> => {
    const cfg = config.current();
    const ids = await dueForSendCheck(db, { now, leadMs: cfg.notifications.meetingUrl.leadMinutes * 60_000, horizonMs: 2 * cfg.monitor.interval.ms, limit: BATCH });
    for (const id of ids) {
      const result = await checkHeadcount(db, clock, { scheduleId: id, stage: 'send', policy: cfg.monitor.minimumPolicy, rules: deps.rules() });
      if (!result) continue;
      metrics.headcount.inc({ stage: 'send', state: result.state });
      if (result.touched.length) deps.onDeliveriesChanged?.(result.touched);
      if (result.state !== 'ok' && result.changed) logger.warn({ schedule: id, booked: result.booked, policy: cfg.monitor.minimumPolicy }, `class below its minimum headcount: ${result.reason ?? ''}`);
    }
    return ids.length;
  };

  /** Ends a meeting nobody attends, then deletes it; returns a note, or null to try again later. */
  const endEmpty = async (creds: ZoomCredentials, w: GraceWork, polled: 'waiting' | 'started' | 'missing' | null): Promise<string | null> => {
    if (polled !== 'waiting') {
      try {
        await client.endMeeting(creds, w.meetingId);
      } catch (error) {
        if (!(error instanceof ZoomError && (error.status === 404 || error.code === 3001))) throw error;
      }
    }
    for (let attempt = 1; attempt <= DELETE_TRIES; attempt++) {
      let step;
      try {
        await client.deleteMeeting(creds, w.meetingId);
        step = deleteStep({ ok: true });
      } catch (error) {
        if (!(error instanceof ZoomError)) throw error;
        step = deleteStep({ status: error.status, code: error.code });
        if (step === 'fail') throw error;
      }
      if (step === 'done') return 'meeting ended and deleted';
      if (step === 'lock-out') {
        await client.updateMeeting(creds, w.meetingId, { settings: { join_before_host: false } });
        return 'meeting ended; Zoom refused to delete it (3007), so join before host was turned off';
      }
      if (attempt < DELETE_TRIES) await clock.sleep(DELETE_PAUSE_MS);
    }
    return null;
  };

  const graceCheck = async (w: GraceWork, webhookSeen: boolean): Promise<string> => {
    const cfg = config.current();
    const now = clock.now();
    const creds = await credsOf(w.accountId);
    let polled: 'waiting' | 'started' | 'missing' | null = null;
    let dashboard: number | null = null;
    if (creds && cfg.monitor.reconcile) {
      try {
        const meeting = await client.getMeeting(creds, w.meetingId);
        polled = meeting.status === 'started' ? 'started' : 'waiting';
        await applyLiveStatus(db, now, w.id, polled);
        if (polled === 'started' && cfg.monitor.dashboardParticipants) {
          const hosts = await poolHosts(db);
          const items = (await client.liveParticipants(creds, w.meetingId)).flatMap((raw) => {
            const p = dashboardItem.safeParse(raw);
            return p.success && p.data.status !== 'in_waiting_room' ? [p.data] : [];
          });
          const participants = items.flatMap((p) => {
            // The same key as the participant webhooks give, so one person stays one row.
            const key = participantKey(p);
            if (!key) return [];
            const userIds = [p.id, p.participant_user_id].filter((v): v is string => v !== null);
            return [{ key, name: p.user_name, email: p.email, role: participantRole({ userIds, email: p.email }, meeting.host_id ?? null, hosts) }];
          });
          dashboard = await applyLiveSnapshot(db, now, { scheduleId: w.id, meetingId: w.meetingId, meetingUuid: meeting.uuid ?? w.meetingId, hostId: meeting.host_id ?? null, participants });
        }
      } catch (error) {
        if (error instanceof ZoomError && (error.status === 404 || error.code === 3001)) polled = 'missing';
        else logger.warn({ schedule: w.externalId, err: coerceError(error) }, 'meeting status poll failed; judging by webhooks alone');
      }
    }
    const fresh = await db.selectFrom('schedules').select('attendance').where('id', '=', w.id).executeTakeFirst();
    const others = await db
      .selectFrom('meeting_participants')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('schedule_id', '=', w.id)
      .where('present', '=', true)
      .where('role', '<>', 'student')
      .executeTakeFirst();
    const booked = (await bookedCounts(db, [w.id])).get(w.id) ?? 0;
    const verdict = graceVerdict({
      minimum: w.minimum,
      booked,
      attendance: fresh?.attendance ?? w.attendance,
      othersPresent: Number(others?.n ?? 0),
      webhookSeen,
      polled,
      dashboard,
      graceMinutes: cfg.monitor.graceMinutes,
      endEmpty: cfg.monitor.endEmpty,
    });
    let reason = verdict.reason;
    if (verdict.end && creds) {
      const note = await endEmpty(creds, w, polled);
      if (note === null) {
        await settleGraceWork(db, { id: w.id, owner, now: clock.now(), state: 'pending', reason: `${reason}; Zoom still reports it in progress, trying again`, retryAt: new Date(clock.now().getTime() + RETRY_LATER_MS) });
        return 'retry';
      }
      reason = `${reason}; ${note}`;
      const cancelled = await cancelLinksOfEndedClass(db, clock.now(), w.id, reason);
      if (cancelled.length) deps.onDeliveriesChanged?.(cancelled);
    }
    const ended = verdict.end && creds !== null;
    await settleGraceWork(db, { id: w.id, owner, now: clock.now(), state: ended ? 'ended_empty' : verdict.state === 'ended_empty' ? 'below_minimum' : verdict.state, reason, endedEmpty: ended });
    const log = { schedule: w.externalId, booked, present: verdict.present, minimum: w.minimum };
    if (ended) logger.warn(log, `class ended early: ${reason}`);
    else if (verdict.state !== 'ok') logger.warn(log, `attendance check: ${reason}`);
    return ended ? 'ended_empty' : verdict.state;
  };

  const graceChecks = async (now: Date): Promise<Record<string, number>> => {
    const cfg = config.current();
    const work = await claimGraceWork(db, { owner, now, graceMs: cfg.monitor.graceMinutes * 60_000, leaseMs: 5 * 60_000, limit: BATCH });
    const seen = await meetingsWithEvents(db, work.map((w) => w.meetingId));
    const counts: Record<string, number> = {};
    await Promise.all(
      work.map((w) =>
        zoomCalls.run(async () => {
          let state: string;
          try {
            state = await graceCheck(w, seen.has(w.meetingId));
          } catch (error) {
            state = 'error';
            const reason = coerceError(error).message;
            logger.error({ schedule: w.externalId, reason }, 'attendance check failed; trying again');
            await settleGraceWork(db, { id: w.id, owner, now: clock.now(), state: 'pending', reason: `check failed: ${reason}`, retryAt: new Date(clock.now().getTime() + RETRY_LATER_MS) }).catch(() => undefined);
          }
          counts[state] = (counts[state] ?? 0) + 1;
          metrics.grace.inc({ state });
        }),
      ),
    );
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
        if (error instanceof ZoomError && (error.status === 404 || error.code === 3001)) await applyLiveStatus(db, clock.now(), m.id, 'ended');
        else logger.warn({ schedule: m.id, err: coerceError(error) }, 'meeting status poll failed');
      }
      await db.updateTable('schedules').set({ attendance_checked_at: clock.now() }).where('id', '=', m.id).execute();
    }
    return meetings.length;
  };

  const runPass = async (): Promise<MonitorReport> => {
    const now = clock.now();
    if (!config.current().monitor.enabled) return { headcountChecked: 0, graceChecked: {}, reconciled: 0 };
    const headcountChecked = await headcountBeforeSending(now);
    const graceChecked = await graceChecks(now);
    const reconciled = await reconcileOverruns(now);
    return { headcountChecked, graceChecked, reconciled };
  };

  let stopped = true;
  let timer: TimerHandle | undefined;
  let running: Promise<unknown> | undefined;
  const tick = (): void => {
    if (stopped) return;
    running = runPass()
      .then((r) => {
        if (r.headcountChecked || Object.keys(r.graceChecked).length || r.reconciled) logger.info({ ...r }, 'monitor pass');
      })
      .catch((error: unknown) => logger.error({ err: coerceError(error) }, 'monitor pass failed'))
      .finally(() => {
        running = undefined;
        if (!stopped) timer = clock.setTimeout(tick, config.current().monitor.interval.ms);
      });
  };
  return {
    owner,
    runPass,
    start(): void {
      stopped = false;
      tick();
    },
    async stop(): Promise<void> {
      stopped = true;
      if (timer) clock.clearTimeout(timer);
      await running;
      await releaseGraceLeases(db, owner);
    },
  };
}

export type Monitor = ReturnType<typeof createMonitor>;
