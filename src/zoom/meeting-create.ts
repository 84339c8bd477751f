/** The provisioner's create: a class's meeting placed on the best-ranked host of the pass, as an intent first. */
import { randomUUID } from 'node:crypto';
import { coerceError } from '../errors.ts';
import { describeNoCapacity, planMeeting, rankHosts } from './allocation.ts';
import { isHostRefused, zoomDidNothing } from './errors.ts';
import { reserveHost, type PoolHost } from './hosts.ts';
import { adoptOrNull, meetingBody, savedMeeting } from './meeting-calls.ts';
import { dropReplaced, restoreReplaced } from './meeting-replaced.ts';
import type { MeetingWork } from './meeting-work.ts';
import type { Pass } from './pass.ts';
import type { ZoomMeeting } from './types.ts';

const MAX_HOST_TRIES = 6;

/**
 * A re-host: the class's working meeting on another host. Another host is reserved first (the row
 * remembers the old meeting and its window, still held), the new meeting is created and recorded,
 * and only then is the old one deleted (meeting-replaced.ts). A race for the new host, a refused or
 * failed create that proves Zoom made nothing: the old meeting is the class's again (restored), and
 * the move is tried after a backoff. An ambiguous create leaves the intent with the old meeting
 * remembered: recovery adopts the new one (then the old is deleted) or restores the old.
 */
export interface Replacing {
  meetingId: string;
  host: PoolHost;
  /** Why the meeting cannot stay on its host. */
  why: string;
}

export async function create(p: Pass, w: MeetingWork, replacing?: Replacing): Promise<void> {
  const { box, byId, call, candidates, cap, cfg, clock, count, day, db, fail, leftOut, logger, nextStamp, owner, setHostAside, settings, settle } = p;
  const klass = { startsAt: w.startsAt, endsAt: w.endsAt, trial: w.trial };
  /** Zoom refused a host this class was tried on: with no host left, that is the class's failure. */
  let refusal: unknown;
  /** A re-host: the old meeting stays the class's until a new one is recorded; its host is not a candidate. */
  const pending = replacing;
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
    // From here the row is an intent (`creating`): it is dropped only on proof that Zoom made nothing.
    // A re-host's old meeting stays live and remembered until the new one is recorded.
    let meeting: ZoomMeeting;
    try {
      meeting = await call(host, (c, creds) => c.createMeeting(creds, host.hostUserId, meetingBody(w, plan, cfg.meeting.topicTemplate)));
    } catch (error) {
      const nothingMade = (await setHostAside(host, error)) ? 'aside' : zoomDidNothing(error) ? 'refused' : null;
      if (nothingMade && pending) {
        // Zoom made nothing: the old meeting is the class's again, the new host's window is freed.
        state.busy = previous.busy;
        if (!(await restoreReplaced(p, w))) return;
      }
      if (nothingMade === 'aside') {
        if (isHostRefused(error)) refusal = error;
        if (!pending) await settle(w, { meeting_state: 'none', meeting_account_id: null, host_window_start: null, host_window_end: null }, false);
        continue;
      }
      if (nothingMade && pending) return fail(w, new Error(`the class moved: ${pending.why}; creating its meeting on ${host.label} failed (${coerceError(error).message}); its meeting stays as it was`), 'ready', 'move_blocked');
      if (nothingMade) return fail(w, error, 'failed');
      // A timeout, a 5xx, a 2xx we could not read: Zoom may have made it. Look before creating again.
      return adoptAfter(p, w, host, coerceError(error).message, pending);
    }
    try {
      await settle(w, savedMeeting(meeting, host.id, w.version, w.title, box), !pending);
    } catch (error) {
      // Zoom made it but it is not recorded: the intent stays, its lease runs out, and recovery adopts it by its marker.
      logger.error({ schedule: w.externalId, meeting: meeting.id, err: coerceError(error) }, 'could not record a created meeting; recovery will adopt it');
      count('unrecorded');
      return;
    }
    count('created');
    if (pending) await deleteOld(p, w, pending);
    return;
  }
  // A re-host that reserved or made nothing: the class keeps its meeting (a later pass moves it).
  if (pending) return fail(w, new Error(`the class moved: ${pending.why}; no other host could be reserved after trying ${MAX_HOST_TRIES}; its meeting stays as it was`), 'ready', 'move_blocked');
  await fail(w, new Error(`gave up after trying ${MAX_HOST_TRIES} hosts`), 'failed');
}

/** The new meeting is recorded: the replaced one goes now, or on a later pass (the row remembers it). */
async function deleteOld(p: Pass, w: MeetingWork, old: Replacing): Promise<void> {
  p.count('moved');
  const after = await dropReplaced(p, { ...w, state: 'ready', replaced: { meetingId: old.meetingId, hostId: old.host.id, attempts: 0, retryAt: null } }, true);
  await p.settle(after, {});
}

/** After a create Zoom may have acted on: adopt the meeting if listed, else keep the intent. */
async function adoptAfter(p: Pass, w: MeetingWork, host: PoolHost, reason: string, old: Replacing | undefined): Promise<void> {
  const { box, call, cfg, count, settle, unresolved } = p;
  let adopted;
  try {
    adopted = await adoptOrNull(call, host, w, w.version, box, cfg.meeting.topicTemplate);
  } catch (listError) {
    return unresolved(w, `${reason}; then listing failed: ${coerceError(listError).message}`);
  }
  if (!adopted) return unresolved(w, `${reason}; no meeting listed yet`); // the listing may lag the create
  await settle(w, adopted, !old);
  count('adopted');
  if (old) await deleteOld(p, w, old);
}
