import { invalid, type DomainError } from '../errors.ts';

/** Pure rules about schedules, shared by the API, the CLI and bulk imports. */

export interface ScheduleInput {
  externalId: string;
  title: string;
  startsAt: Date;
  endsAt: Date;
  trial: boolean;
  minParticipants: number;
  feedbackUrl: string | null;
  cancelled: boolean;
  /** The platform's revision of the class, if it sends one (grows with each change there). */
  revision?: number | null | undefined;
}

/** The stored fields that a PUT replaces, with the version they are at. */
export type ScheduleFields = Omit<ScheduleInput, 'externalId'> & { version: number };

export const MAX_CLASS_MS = 24 * 60 * 60 * 1000;

/**
 * The earliest start the API accepts. Anything before is a placeholder or a typo (year 0003,
 * 1970's epoch zero); classes since are history a platform may sync, and stay welcome: a class
 * over makes no meeting, and its messages expire.
 */
export const EARLIEST_CLASS_START = new Date('2000-01-01T00:00:00Z');
/**
 * How far ahead of now a class may start through the API: two years (731 days) holds any real
 * timetable. A year-9999 placeholder or a mistyped year would otherwise sit in the table for good,
 * never provisioned nor sent, and skew the capacity view.
 */
export const MAX_CLASS_LEAD_MS = 731 * 24 * 60 * 60 * 1000;

/** Whether a class's start is within the bounds the API accepts (see above), naming startsAt. */
export function checkClassTimes(input: Pick<ScheduleInput, 'startsAt'>, now: Date, prefix = ''): DomainError[] {
  const latest = new Date(now.getTime() + MAX_CLASS_LEAD_MS);
  const start = input.startsAt.getTime();
  if (start >= EARLIEST_CLASS_START.getTime() && start <= latest.getTime()) return [];
  return [invalid(`${prefix}startsAt`, `must be from ${EARLIEST_CLASS_START.toISOString()} up to two years ahead (${latest.toISOString()})`)];
}

/** Problems with one schedule, each naming its field (prefixed for bulk items). */
export function checkSchedule(input: ScheduleInput, prefix = ''): DomainError[] {
  const problems: DomainError[] = [];
  const length = input.endsAt.getTime() - input.startsAt.getTime();
  if (length <= 0) problems.push(invalid(`${prefix}endsAt`, 'must be after startsAt'));
  else if (length > MAX_CLASS_MS) problems.push(invalid(`${prefix}endsAt`, 'a class cannot last longer than 24 hours'));
  return problems;
}

/** `stale`: older than the revision stored (a delayed or retried write); ignored. */
export type UpsertOutcome = 'created' | 'updated' | 'unchanged' | 'stale';

/**
 * Whether a write carrying `incoming` that would change the stored item is stale: its revision is
 * not newer than the one stored. Only when both have a revision: a platform that sends none gets
 * last-write-wins. The same revision again changes nothing when it is a retry of what was applied;
 * if it would change something, the item was changed since by a write without a revision, and the
 * retry of the older write must not undo that.
 */
export function isStale(stored: number | null | undefined, incoming: number | null | undefined): boolean {
  return stored != null && incoming != null && incoming <= stored;
}

/** Whether a write that changes nothing still records its revision: only a newer one. */
export function isNewerRevision(stored: number | null | undefined, incoming: number | null | undefined): boolean {
  return incoming != null && (stored == null || incoming > stored);
}

/**
 * What a PUT does to an existing schedule. The version moves whenever the time, the cancelled flag or
 * the trial flag changes: meetings and deliveries remember the version they were made for, so a moved
 * class is re-provisioned and its messages re-timed rather than sent at the old time. The trial flag
 * decides which host plan the meeting needs (a trial may sit on a basic host, a regular class belongs
 * on a licensed one), so its meeting must be looked at again too.
 */
export function planScheduleUpdate(existing: ScheduleFields, input: ScheduleInput): { outcome: UpsertOutcome; version: number } {
  const meetingChanged =
    existing.startsAt.getTime() !== input.startsAt.getTime() ||
    existing.endsAt.getTime() !== input.endsAt.getTime() ||
    existing.cancelled !== input.cancelled ||
    existing.trial !== input.trial;
  const otherChanged = existing.title !== input.title || existing.minParticipants !== input.minParticipants || existing.feedbackUrl !== input.feedbackUrl;
  if (!meetingChanged && !otherChanged) return { outcome: 'unchanged', version: existing.version };
  if (isStale(existing.revision, input.revision)) return { outcome: 'stale', version: existing.version };
  return { outcome: 'updated', version: meetingChanged ? existing.version + 1 : existing.version };
}
