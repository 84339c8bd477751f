/** The provisioner's create: a class's meeting placed on the best-ranked host of the pass, as an intent first. */
import { randomUUID } from 'node:crypto';
import { coerceError } from '../errors.ts';
import { describeNoCapacity, planMeeting, rankHosts } from './allocation.ts';
import { isHostRefused, zoomDidNothing } from './errors.ts';
import { reserveHost, type PoolHost } from './hosts.ts';
import { adoptOrNull, meetingBody, savedMeeting } from './meeting-calls.ts';
import type { MeetingWork } from './meeting-work.ts';
import type { Pass } from './pass.ts';
import type { ZoomMeeting } from './types.ts';

const MAX_HOST_TRIES = 6;

/**
 * A re-host: the class's working meeting on another host. Another host is reserved first and only
 * then is the old meeting deleted (`deleteOld`), so a race for the new host (another pass or
 * replica taking it) leaves the class with its old meeting, never with none.
 */
export interface Replacing {
  meetingId: string;
  host: PoolHost;
  /** Why the meeting cannot stay on its host. */
  why: string;
  deleteOld: () => Promise<void>;
}

export async function create(p: Pass, w: MeetingWork, replacing?: Replacing): Promise<void> {
  const { box, byId, call, candidates, cap, cfg, clock, count, day, db, fail, leftOut, logger, nextStamp, owner, setHostAside, settings, settle } = p;
  const klass = { startsAt: w.startsAt, endsAt: w.endsAt, trial: w.trial };
  /** Zoom refused a host this class was tried on: with no host left, that is the class's failure. */
  let refusal: unknown;
  /** Until another host is reserved, the old meeting stays: its host is not a candidate. */
  let pending = replacing;
  for (let round = 0; round < MAX_HOST_TRIES; round++) {
    const hosts = candidates().filter((h) => h.id !== pending?.host.id);
    const ranking = rankHosts(klass, hosts, settings, clock.now(), cap);
    const state = ranking.hosts[0];
    const host = state ? byId.get(state.id) : undefined;
    if ((!state || !host) && pending) {
      // Nothing reserved and nothing written: the class keeps its meeting at its old time.
      const why = `the class moved: ${pending.why}, and no other host can take it (${describeNoCapacity(ranking, hosts.length, leftOut())}); its meeting stays as it was`;
      return fail(w, new Error(why), 'ready', 'move_blocked');
    }
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
    const replaces = pending ? { meetingId: pending.meetingId, hostId: pending.host.id } : undefined;
    const reserved = await reserveHost(db, { scheduleId: w.id, hostId: host.id, windowStart: plan.windowStart, windowEnd: plan.windowEnd, day: day(), writeCap: cap, leaseOwner: owner, attemptId: randomUUID(), version: w.version, state: 'creating', now: clock.now(), ...(replaces ? { replacing: replaces } : {}) });
    if (reserved.result !== 'reserved') {
      state.busy = reserved.result === 'busy' ? state.busy : previous.busy; // a clash in the DB: keep the window as busy
      state.writesToday = reserved.result === 'write_budget' ? cap : previous.writes;
      state.lastAssignedAt = previous.stamp;
      if (reserved.result === 'lease_lost') return;
      continue;
    }
    // The new host is held: now the old meeting goes (or is left to a later pass, which the row remembers).
    if (pending) {
      await pending.deleteOld();
      pending = undefined;
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
      return adoptAfter(p, w, host, coerceError(error).message);
    }
    try {
      await settle(w, savedMeeting(meeting, host.id, w.version, w.title, box));
    } catch (error) {
      // Zoom made it but it is not recorded: the intent stays, its lease runs out, and recovery adopts it by its marker.
      logger.error({ schedule: w.externalId, meeting: meeting.id, err: coerceError(error) }, 'could not record a created meeting; recovery will adopt it');
      count('unrecorded');
      return;
    }
    count('created');
    return;
  }
  // Still replacing: nothing was reserved, so the class keeps its meeting (a later pass moves it).
  if (pending) return fail(w, new Error(`the class moved: ${pending.why}; no other host could be reserved after trying ${MAX_HOST_TRIES}; its meeting stays as it was`), 'ready', 'move_blocked');
  await fail(w, new Error(`gave up after trying ${MAX_HOST_TRIES} hosts`), 'failed');
}

/** After a create Zoom may have acted on: adopt the meeting if listed, else keep the intent. */
async function adoptAfter(p: Pass, w: MeetingWork, host: PoolHost, reason: string): Promise<void> {
  const { box, call, cfg, count, settle, unresolved } = p;
  let adopted;
  try {
    adopted = await adoptOrNull(call, host, w, w.version, box, cfg.meeting.topicTemplate);
  } catch (listError) {
    return unresolved(w, `${reason}; then listing failed: ${coerceError(listError).message}`);
  }
  if (!adopted) return unresolved(w, `${reason}; no meeting listed yet`); // the listing may lag the create
  await settle(w, adopted);
  count('adopted');
}
