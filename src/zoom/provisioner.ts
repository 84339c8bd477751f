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
import type { MeetingState } from '../db/tables.ts';
import { describeNoCapacity, hostWriteDay, nextUtcMidnight, planMeeting, quotaDay, rankHosts, type HostState, type MeetingSettings } from './allocation.ts';
import type { ZoomClient } from './client.ts';
import { DELETE_GIVE_UP_MS, deleteVerdict, failureBackoffMs, refusesForGood } from './decisions.ts';
import { isDeleteDone, isHostRefused, isMeetingGone, zoomDidNothing, ZoomError } from './errors.ts';
import { countNoCapacity, loadHost, loadPool, markHostExhausted, reservedWindows, reserveHost, type PoolHost } from './hosts.ts';
import { claimMeetingWork, releaseMeetingLeases, renewMeetingLeases, settleMeetingWork, type MeetingFields, type MeetingWork } from './meeting-work.ts';
import type { ZoomMeeting } from './types.ts';
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
    const day = hostWriteDay(now);
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
    /** Hosts Zoom refused for good during this pass (user gone, credentials refused), and why: not tried again in it. */
    const refused = new Map<number, string>();
    const candidates = (): HostState[] => [...states.values()].filter((s) => !refused.has(s.id));
    const leftOut = () => [...unusable, ...[...refused].map(([id, reason]) => ({ label: byId.get(id)?.label ?? String(id), reason }))];
    const inPool = (host: PoolHost): boolean => byId.has(host.id);
    /** A meeting's host, enabled or not: the meetings of a host taken out of the pool still need moving, closing, deleting. */
    const hostOf = async (id: number): Promise<PoolHost | undefined> => byId.get(id) ?? loadHost(db, box, id);
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
      // Once the class is over nothing will be created for it, so stop asking (the claim would retry for ever).
      if (w.endsAt.getTime() <= clock.now().getTime()) return fail(w, new Error(`${reason}; the class is over`), 'failed');
      logger.warn({ schedule: w.externalId, reason }, 'meeting intent unresolved; will list the host again');
      await settle(w, { meeting_state: 'creating', meeting_error: reason, meeting_attempts: w.attempts + 1, meeting_retry_at: new Date(clock.now().getTime() + cfg.provisioning.retryDelay.ms) });
      count('unresolved');
    };
    /** After a create Zoom may have acted on: adopt the meeting if listed, else keep the intent. */
    const adoptAfter = async (w: MeetingWork, host: PoolHost, reason: string): Promise<void> => {
      let adopted;
      try {
        adopted = await adoptOrNull(call, host, w, w.version, box);
      } catch (listError) {
        return unresolved(w, `${reason}; then listing failed: ${coerceError(listError).message}`);
      }
      if (!adopted) return unresolved(w, `${reason}; no meeting listed yet`); // the listing may lag the create
      await settle(w, adopted);
      count('adopted');
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
      const reason = `refused by Zoom: ${coerceError(error).message}`;
      // Rejected credentials are the account's: its other hosts would be refused alike.
      const account = error instanceof ZoomError && (error.kind === 'auth' || error.status === 401);
      for (const h of pool) if (h.id === host.id || (account && h.creds.accountId === host.creds.accountId)) refused.set(h.id, reason);
      logger.error({ host: host.label, reason }, 'Zoom refuses this host; leaving it out of this pass');
      return true;
    };

    const create = async (w: MeetingWork): Promise<void> => {
      const klass = { startsAt: w.startsAt, endsAt: w.endsAt, trial: w.trial };
      /** Zoom refused a host this class was tried on: with no host left, that is the class's failure. */
      let refusal: unknown;
      for (let round = 0; round < MAX_HOST_TRIES; round++) {
        const hosts = candidates();
        const ranking = rankHosts(klass, hosts, settings, clock.now(), cap);
        const state = ranking.hosts[0];
        const host = state ? byId.get(state.id) : undefined;
        if ((!state || !host) && refusal !== undefined) return fail(w, refusal, 'failed');
        if (!state || !host) {
          const reason = describeNoCapacity(ranking, hosts.length, leftOut());
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
        const reserved = await reserveHost(db, { scheduleId: w.id, hostId: host.id, windowStart: plan.windowStart, windowEnd: plan.windowEnd, day, writeCap: cap, leaseOwner: owner, attemptId: randomUUID(), version: w.version, state: 'creating', now: clock.now() });
        if (reserved.result !== 'reserved') {
          state.busy = reserved.result === 'busy' ? state.busy : previous.busy; // a clash in the DB: keep the window as busy
          state.writesToday = reserved.result === 'write_budget' ? cap : previous.writes;
          state.lastAssignedAt = previous.stamp;
          if (reserved.result === 'lease_lost') return;
          continue;
        }
        // From here the row is an intent (`creating`): it is dropped only on proof that Zoom made nothing.
        let meeting: ZoomMeeting;
        try {
          meeting = await call(host, (c, creds) => c.createMeeting(creds, host.hostUserId, meetingBody(w, plan, cfg.meeting.topicTemplate)));
        } catch (error) {
          if (await setHostAside(host, error)) {
            if (isHostRefused(error)) refusal = error;
            await settle(w, { meeting_state: 'none', meeting_account_id: null, host_window_start: null, host_window_end: null }, false);
            continue;
          }
          if (zoomDidNothing(error)) return fail(w, error, 'failed');
          // A timeout, a 5xx, a 2xx we could not read: Zoom may have made it. Look before creating again.
          return adoptAfter(w, host, coerceError(error).message);
        }
        try {
          await settle(w, savedMeeting(meeting, host.id, w.version, box));
        } catch (error) {
          // Zoom made it but it is not recorded: the intent stays, its lease runs out, and recovery adopts it by its marker.
          logger.error({ schedule: w.externalId, meeting: meeting.id, err: coerceError(error) }, 'could not record a created meeting; recovery will adopt it');
          count('unrecorded');
          return;
        }
        count('created');
        return;
      }
      await fail(w, new Error(`gave up after trying ${MAX_HOST_TRIES} hosts`), 'failed');
    };

    const recover = async (w: MeetingWork): Promise<void> => {
      if (w.state !== 'creating') {
        // The meeting is known, whether Zoom took the change is not: redo it (PATCH and DELETE are
        // idempotent), so the version stamped is the one Zoom has.
        return w.cancelled ? remove(w) : move({ ...w, state: 'ready' });
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
          adopted = await adoptOrNull(call, host, w, w.intent?.version ?? null, box);
        } catch (error) {
          // A host taken out of the pool whose credentials or user Zoom now refuses for good will
          // never answer: any meeting made there cannot run a class of ours, so the class is placed afresh.
          refusedForGood = host !== undefined && !inPool(host) && refusesForGood(error);
          if (!refusedForGood) return unresolved(w, `could not list the reserved host: ${coerceError(error).message}`);
          logger.warn({ schedule: w.externalId, host: w.hostId, reason: coerceError(error).message }, 'the disabled host of a meeting intent is refused by Zoom; placing the class afresh');
        }
      }
      if (adopted) {
        if (w.cancelled) return remove({ ...w, meetingId: adopted.meeting_id ?? null });
        await settle(w, adopted);
        count('adopted');
        return;
      }
      // Zoom's listing may lag the create: a young intent is listed again on a later pass.
      if (!refusedForGood && w.intent && clock.now().getTime() - w.intent.at.getTime() < LISTING_LAG_MS) return unresolved(w, 'no meeting listed for the intent yet');
      if (w.cancelled) return remove({ ...w, meetingId: null });
      await settle(w, { meeting_state: 'none', meeting_account_id: null, host_window_start: null, host_window_end: null }, false);
      freeOwnWindow(w);
      return create({ ...w, state: 'none' });
    };

    /** A cancelled class's meeting is deleted at Zoom, on its host even if that host left the pool. */
    const remove = async (w: MeetingWork): Promise<void> => {
      let note: string | null = null;
      if (w.meetingId && w.hostId !== null) {
        const meetingId = w.meetingId;
        try {
          const host = await hostOf(w.hostId);
          if (host) await call(host, (c, creds) => c.deleteMeeting(creds, meetingId));
          else note = `meeting ${meetingId} was left at Zoom: its host ${w.hostId} is no longer in the database`;
        } catch (error) {
          const reason = coerceError(error).message;
          const verdict = deleteVerdict(error, { hostInPool: byId.has(w.hostId), now: clock.now(), endsAt: w.endsAt });
          if (verdict === 'retry') return fail(w, error);
          if (verdict === 'give_up') {
            const why = `gave up deleting meeting ${meetingId} at Zoom ${DELETE_GIVE_UP_MS / 86_400_000} days after the class: ${reason}; delete it there by hand`;
            logger.error({ schedule: w.externalId, reason: why }, 'could not delete a cancelled class meeting');
            await settle(w, { meeting_state: 'failed', meeting_error: why, meeting_attempts: w.attempts + 1, meeting_retry_at: null });
            count('delete_abandoned');
            return;
          }
          if (verdict === 'unreachable') note = `meeting ${meetingId} was left at Zoom: its host is disabled and Zoom refuses it (${reason})`;
        }
      }
      if (note) logger.warn({ schedule: w.externalId, reason: note }, 'cancelled class meeting not deleted');
      await settle(w, { meeting_state: 'deleted', host_window_start: null, host_window_end: null, meeting_error: note, meeting_attempts: 0, meeting_retry_at: null });
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
      const licensed = candidates().filter((s) => s.plan === 'licensed');
      return rankHosts({ startsAt: w.startsAt, endsAt: w.endsAt, trial: false }, licensed, settings, clock.now(), cap).hosts.length > 0;
    };

    /**
     * A finished class's meeting is closed to late students: join before host lets anyone with the
     * link start it for 30 days, on its host, blocking that host's next class. Turning it off (a
     * PATCH, one host write) keeps the meeting and its recordings; a student then waits for a host
     * who never comes. Zoom refuses while the meeting runs (3000): tried again after retryDelay.
     */
    const close = async (w: MeetingWork): Promise<void> => {
      let note: string | null = null;
      if (w.meetingId && w.hostId !== null) {
        const meetingId = w.meetingId;
        const host = await hostOf(w.hostId);
        if (!host) note = `meeting ${meetingId} was not closed: its host ${w.hostId} is no longer in the database`;
        else {
          if (!(await spendHostWrite(db, host.id, day, cap))) {
            await settle(w, { meeting_state: 'ready', meeting_retry_at: nextUtcMidnight(clock.now()) });
            count('close_deferred');
            return;
          }
          try {
            await call(host, (c, creds) => c.updateMeeting(creds, meetingId, { settings: { join_before_host: false } }));
          } catch (error) {
            if (!isMeetingGone(error)) {
              if (inPool(host) || !refusesForGood(error)) return fail(w, error);
              note = `meeting ${meetingId} was not closed: its host is disabled and Zoom refuses it (${coerceError(error).message})`;
            }
          }
        }
      }
      await settle(w, { meeting_state: 'ready', meeting_closed_at: clock.now(), meeting_error: note, meeting_attempts: 0, meeting_retry_at: null });
      count('closed');
    };

    /** The host keeps the meeting but may not write to it today: the move waits for Zoom's reset (00:00 UTC). */
    const deferMove = async (w: MeetingWork, why: string, at: Date): Promise<void> => {
      logger.warn({ schedule: w.externalId, reason: why, retryAt: at.toISOString() }, 'meeting move deferred');
      await settle(w, { meeting_state: 'ready', meeting_error: `${why}; the meeting is moved after ${at.toISOString()}`, meeting_retry_at: at });
      count('move_deferred');
    };

    /**
     * Moves the meeting in place if its host can keep the class at its new time: `done` (moved,
     * deferred or failed, all recorded), `gone` (Zoom no longer has it) or `rehost` (it cannot stay).
     */
    const moveInPlace = async (w: MeetingWork, host: PoolHost, meetingId: string): Promise<{ outcome: 'done' | 'gone' } | { outcome: 'rehost'; why: string }> => {
      const state = states.get(host.id);
      if (!state) return { outcome: 'rehost', why: `its host ${host.label} is out of the pool` };
      const refusal = refused.get(host.id);
      if (refusal) return { outcome: 'rehost', why: `its host ${host.label} was ${refusal}` };
      const klass = { startsAt: w.startsAt, endsAt: w.endsAt, trial: w.trial };
      // Whether the plan suits the class; the host's budget and limits are handled below.
      const suits = host.plan === 'licensed' || rankHosts(klass, [{ ...state, busy: [], exhaustedUntil: null, accountBudgetLeft: true }], settings, clock.now(), Infinity).hosts.length > 0;
      if (!suits || leavesBasicHost(w, host)) return { outcome: 'rehost', why: `its basic host ${host.label} does not suit it` };
      const plan = planMeeting(klass, host.plan, settings);
      /** No writes on the host today: keep the meeting and move it after Zoom's reset, unless that comes too late for the class. */
      const noWrites = async (why: string): Promise<{ outcome: 'done' } | { outcome: 'rehost'; why: string }> => {
        const reset = nextUtcMidnight(clock.now());
        if (reset.getTime() > plan.windowStart.getTime()) return { outcome: 'rehost', why: `${why} and its next write comes after the class starts` };
        await deferMove(w, why, reset);
        return { outcome: 'done' };
      };
      if (state.exhaustedUntil && state.exhaustedUntil.getTime() > clock.now().getTime()) return noWrites(`Zoom host ${host.label} reached its daily meeting create/update limit`);
      const reserved = await reserveHost(db, { scheduleId: w.id, hostId: host.id, windowStart: plan.windowStart, windowEnd: plan.windowEnd, day, writeCap: cap, leaseOwner: owner, attemptId: randomUUID(), version: w.version, state: 'updating', now: clock.now() });
      if (reserved.result === 'lease_lost') return { outcome: 'done' };
      if (reserved.result === 'busy') return { outcome: 'rehost', why: `its host ${host.label} is busy then` };
      if (reserved.result === 'write_budget') return noWrites(`Zoom host ${host.label} has spent its ${cap} meeting writes for today (UTC)`);
      const body = meetingBody(w, plan, cfg.meeting.topicTemplate);
      try {
        // join_before_host again: a meeting closed after the old time must open for the new one.
        await call(host, (c, creds) => c.updateMeeting(creds, meetingId, { start_time: body.start_time, duration: body.duration, topic: body.topic, timezone: 'UTC', settings: { join_before_host: true, jbh_time: body.settings.jbh_time } }));
      } catch (error) {
        if (isMeetingGone(error)) return { outcome: 'gone' };
        if (!(error instanceof ZoomError && error.kind === 'host-daily-limit')) {
          await fail(w, error, 'ready');
          return { outcome: 'done' };
        }
        await setHostAside(host, error);
        return noWrites(`Zoom host ${host.label} reached its daily meeting create/update limit`);
      }
      await settle(w, { meeting_state: 'ready', meeting_version: w.version, meeting_closed_at: null, meeting_error: null, meeting_attempts: 0, meeting_retry_at: null });
      count('updated');
      return { outcome: 'done' };
    };

    /**
     * The class moved: its meeting follows, in place if its host can keep it, else on another host.
     * The working meeting is deleted only when another host can take the class: a class keeps a
     * meeting at its old time rather than be left with none.
     */
    const move = async (w: MeetingWork): Promise<void> => {
      if (w.meetingId && w.hostId !== null) {
        const meetingId = w.meetingId;
        const host = await hostOf(w.hostId);
        const inPlace = host ? await moveInPlace(w, host, meetingId) : { outcome: 'gone' as const };
        if (inPlace.outcome === 'done') return;
        if (host && inPlace.outcome === 'rehost') {
          const klass = { startsAt: w.startsAt, endsAt: w.endsAt, trial: w.trial };
          const others = candidates().filter((s) => s.id !== host.id);
          const ranking = rankHosts(klass, others, settings, clock.now(), cap);
          if (ranking.hosts.length === 0) {
            const why = `the class moved: ${inPlace.why}, and no other host can take it (${describeNoCapacity(ranking, others.length, leftOut())}); its meeting stays as it was`;
            return fail(w, new Error(why), 'ready', 'move_blocked');
          }
          try {
            await call(host, (c, creds) => c.deleteMeeting(creds, meetingId));
          } catch (error) {
            if (!isDeleteDone(error)) {
              if (inPool(host) || !refusesForGood(error)) return fail(w, error, 'ready');
              logger.warn({ schedule: w.externalId, meeting: meetingId, reason: coerceError(error).message }, 'meeting left on a disabled host Zoom refuses; re-hosting the class');
            }
          }
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
          try {
            if (w.state === 'creating' || w.state === 'updating' || w.state === 'deleting') await recover(w);
            else if (w.cancelled) await remove(w);
            else if (w.state === 'ready' && w.meetingVersion === w.version) await close(w);
            else if (w.state === 'ready') await move(w);
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
