/** The /v2 routes: users, meetings, status, recordings. Each handler decides Zoom's answer; the store keeps state. */
import type { Clock } from '../../clock.ts';
import type { AccountRegistry } from './accounts.ts';
import { type Reply, type Route, invalidJson, noContent, validationFailed, zoomError } from './http.ts';
import { DEFAULT_SETTINGS, type MeetingChanges, type MeetingStore } from './meeting-store.ts';
import type { PageTokens } from './pagination.ts';
import type { Attendance } from './participants.ts';
import type { RateLimiter } from './rate-limits.ts';
import { parseStartTime } from './time.ts';
import type { AccountRecord, Category, MeetingRecord, MeetingSettings, UserRecord } from './types.ts';
import { type ListQuery, type MeetingInput, parseListQuery, parseMeeting, parseStatus } from './validation.ts';
import { listItem, meetingBody, recordingsBody, userBody } from './views.ts';

export interface Behaviour {
  /** Zoom stores `none` for a Basic host asking for cloud recording (observed); `reject` answers 400 instead. */
  basicCloudRecording: 'downgrade' | 'reject';
  /** Whether DELETE of an ended meeting works or fails with 3007 (doc §12 open question 8). */
  deleteEnded: 'allow' | 'reject';
}

export interface ApiDeps {
  clock: Clock;
  accounts: AccountRegistry;
  store: MeetingStore;
  limiter: RateLimiter;
  pageTokens: PageTokens;
  baseUrl: () => string;
  behaviour: Behaviour;
  /** Who is in a live meeting now (the metrics route). */
  attendance: Pick<Attendance, 'present'>;
}

export interface ApiCall {
  deps: ApiDeps;
  account: AccountRecord;
  query: URLSearchParams;
  /** Undefined when the body was absent or not a JSON object. */
  body: Record<string, unknown> | undefined;
}

export interface ApiRoute extends Route<ApiCall> {
  category: Category;
  /** Creates wait `createLatencyMs`, everything else `latencyMs`. */
  slow: boolean;
}

const userMissing = (userId: string): Reply => zoomError(404, 1001, `User ${userId} not exist or not belong to this account.`);
export const meetingMissing = (id: string): Reply => zoomError(404, 3001, `Meeting ${id} is not found or has expired.`);
const hostingNotAllowed = (): Reply => zoomError(400, 3161, 'Meeting hosting and scheduling capabilities are not allowed for your user account.');

export function ownMeeting(call: ApiCall, id: string): MeetingRecord | undefined {
  const m = call.deps.store.find(id);
  return m && m.accountId === call.account.accountId ? m : undefined;
}

/** Settings after a create/PATCH: defaults, then what was there, then the request; waiting room turns JBH off. */
function mergeSettings(base: MeetingSettings, input: MeetingInput['settings']): MeetingSettings {
  const merged: MeetingSettings = { ...base, ...input } as MeetingSettings;
  if (merged.waiting_room) merged.join_before_host = false;
  return merged;
}

function resolveStart(text: string, tz: string): Date | Reply {
  return parseStartTime(text, tz) ?? validationFailed([{ field: 'start_time', message: 'Invalid field.' }]);
}

function getUser(call: ApiCall, [userId = '']: string[]): Reply {
  const user = call.deps.accounts.findUser(call.account.accountId, userId);
  if (!user) return zoomError(404, 1001, `User does not exist: ${userId}.`);
  return { status: 200, body: userBody(call.account, user) };
}

function createMeeting(call: ApiCall, [userId = '']: string[]): Reply {
  const { deps, account } = call;
  const owner = deps.accounts.findUser(account.accountId, userId);
  if (!owner) return userMissing(userId);
  if (owner.hostingDisabled) return hostingNotAllowed();
  if (!call.body) return invalidJson();
  const parsed = parseMeeting(call.body);
  if (!parsed.ok) return parsed.reply;
  const input = parsed.value;

  let host: UserRecord = owner;
  if (input.schedule_for !== undefined) {
    const target = deps.accounts.findUser(account.accountId, input.schedule_for);
    if (!target) return zoomError(400, 300, 'The value that you entered for the schedule_for field is invalid. Enter a valid value and try again.');
    host = target;
  }
  const limited = deps.limiter.checkHostWrite(host.id, 'Medium');
  if (limited) return limited;

  if (input.type === 3 || input.type === 8) return zoomError(400, 300, 'Zoom emulator: recurring meetings (types 3 and 8) are not emulated.');
  const timezone = input.timezone ?? host.timezone;
  // A scheduled meeting without start_time becomes an instant meeting starting now (doc §2).
  const type: 1 | 2 = input.type === 1 || input.start_time === undefined ? 1 : 2;
  let startTime = deps.clock.now();
  if (type === 2 && input.start_time !== undefined) {
    const start = resolveStart(input.start_time, timezone);
    if (!(start instanceof Date)) return start;
    startTime = start;
  }
  const settings = mergeSettings(DEFAULT_SETTINGS, input.settings);
  if (host.type === 1 && settings.auto_recording === 'cloud' && deps.behaviour.basicCloudRecording === 'reject') {
    return zoomError(400, 300, 'Cloud recording is not available for this user.');
  }
  const m = deps.store.create(account, host, {
    type,
    topic: input.topic ?? 'Zoom meeting',
    agenda: input.agenda ?? '',
    startTime,
    duration: input.duration ?? 60,
    timezone,
    password: input.password,
    settings,
  });
  const headers = { 'X-RateLimit-Category': 'Medium', ...deps.limiter.spendHostWrite(host.id, account.accountId) };
  return { status: 201, body: meetingBody(deps.baseUrl(), m), headers };
}

function matchesListType(m: MeetingRecord, type: ListQuery['type'], now: number): boolean {
  if (type === 'live') return m.state === 'started';
  if (m.type !== 2) return false; // instant meetings are not listed (doc §9)
  const end = m.startTime.getTime() + m.duration * 60_000;
  switch (type) {
    case 'scheduled':
      return true;
    case 'upcoming':
    case 'upcoming_meetings':
      return m.state === 'started' || (m.state === 'waiting' && end > now);
    case 'previous_meetings':
      return m.state === 'ended' || (m.state === 'waiting' && end <= now);
  }
}

function listMeetings(call: ApiCall, [userId = '']: string[]): Reply {
  const { deps, account } = call;
  const host = deps.accounts.findUser(account.accountId, userId);
  if (!host) return userMissing(userId);
  if (host.hostingDisabled) return hostingNotAllowed();
  const parsed = parseListQuery(call.query);
  if (!parsed.ok) return parsed.reply;
  const { type, pageSize, nextPageToken } = parsed.value;
  const scope = `${host.id}|${type}`;
  let offset = 0;
  if (nextPageToken) {
    const cursor = deps.pageTokens.take(nextPageToken, scope);
    if (cursor === 'invalid') return zoomError(400, 300, 'Invalid next_page_token.');
    if (cursor === 'expired') return zoomError(400, 300, 'The next page token is invalid or expired.');
    offset = cursor.offset;
  } else {
    const pageNumber = Number(call.query.get('page_number') ?? '1');
    if (Number.isInteger(pageNumber) && pageNumber > 1) offset = (pageNumber - 1) * pageSize;
  }
  const now = deps.clock.now().getTime();
  const all = deps.store.forHost(host.id).filter((m) => matchesListType(m, type, now));
  const page = all.slice(offset, offset + pageSize);
  const nextOffset = offset + page.length;
  return {
    status: 200,
    body: {
      page_size: pageSize,
      total_records: all.length,
      page_count: Math.ceil(all.length / pageSize),
      page_number: Math.floor(offset / pageSize) + 1,
      next_page_token: nextOffset < all.length ? deps.pageTokens.issue({ scope, offset: nextOffset }) : '',
      meetings: page.map((m) => listItem(deps.baseUrl(), m)),
    },
  };
}

function getMeeting(call: ApiCall, [id = '']: string[]): Reply {
  const m = ownMeeting(call, id);
  return m ? { status: 200, body: meetingBody(call.deps.baseUrl(), m) } : meetingMissing(id);
}

function patchMeeting(call: ApiCall, [id = '']: string[]): Reply {
  const { deps, account } = call;
  const m = ownMeeting(call, id);
  if (!m) return meetingMissing(id);
  if (!call.body) return invalidJson();
  const parsed = parseMeeting(call.body);
  if (!parsed.ok) return parsed.reply;
  const input = parsed.value;
  const host = deps.accounts.findUser(account.accountId, m.hostId);
  if (!host) return userMissing(m.hostId);
  const limited = deps.limiter.checkHostWrite(host.id, 'Light');
  if (limited) return limited;
  if (m.state === 'started') return zoomError(400, 3000, 'You cannot update or delete meetings that have started using this method.');
  if (input.type === 3 || input.type === 8) return zoomError(400, 300, 'Zoom emulator: recurring meetings (types 3 and 8) are not emulated.');

  const changes: MeetingChanges = {
    type: input.type,
    topic: input.topic,
    agenda: input.agenda,
    duration: input.duration,
    timezone: input.timezone,
    password: input.password,
  };
  if (input.start_time !== undefined) {
    const start = resolveStart(input.start_time, input.timezone ?? m.timezone);
    if (!(start instanceof Date)) return start;
    changes.startTime = start;
  }
  if (input.settings) {
    changes.settings = mergeSettings(m.settings, input.settings);
    if (host.type === 1 && changes.settings.auto_recording === 'cloud' && deps.behaviour.basicCloudRecording === 'reject') {
      return zoomError(400, 300, 'Cloud recording is not available for this user.');
    }
  }
  deps.store.update(m, host, changes);
  return { status: 204, headers: { 'X-RateLimit-Category': 'Light', ...deps.limiter.spendHostWrite(host.id, account.accountId) } };
}

function setStatus(call: ApiCall, [id = '']: string[]): Reply {
  const { store } = call.deps;
  if (!call.body) return invalidJson();
  const parsed = parseStatus(call.body);
  if (!parsed.ok) return parsed.reply;
  if (parsed.value === 'recover') {
    const deleted = /^\d+$/.test(id) ? store.findDeleted(Number(id)) : undefined;
    if (deleted && deleted.accountId === call.account.accountId) {
      store.recover(deleted);
      return noContent();
    }
    return ownMeeting(call, id) ? noContent() : meetingMissing(id);
  }
  const m = ownMeeting(call, id);
  if (!m) return meetingMissing(id);
  // Ending a meeting that is not in progress is answered 204 and changes nothing (zoom/api#28).
  store.end(m.id);
  return noContent();
}

function deleteMeeting(call: ApiCall, [id = '']: string[]): Reply {
  const m = ownMeeting(call, id);
  if (!m) return meetingMissing(id);
  if (m.state === 'started') return zoomError(400, 3002, 'Sorry, you cannot delete this meeting since it is in progress.');
  if (m.state === 'ended' && call.deps.behaviour.deleteEnded === 'reject') {
    return zoomError(400, 3007, 'Sorry, you cannot delete this meeting since it has ended.');
  }
  call.deps.store.remove(m);
  return noContent();
}

function getRecordings(call: ApiCall, [id = '']: string[]): Reply {
  // UUIDs with '/' arrive double-encoded; the router decoded once.
  const key = id.includes('%') ? safeDecode(id) : id;
  const m = ownMeeting(call, key);
  if (!m || m.recordingFiles.length === 0) return zoomError(404, 3301, 'There is no recording for this meeting.');
  return { status: 200, body: recordingsBody(call.deps.baseUrl(), m) };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

const SEG = '([^/]+)';

export const apiRoutes: ReadonlyArray<ApiRoute> = [
  { method: 'GET', pattern: new RegExp(`^/v2/users/${SEG}$`), category: 'Light', slow: false, handler: getUser },
  { method: 'POST', pattern: new RegExp(`^/v2/users/${SEG}/meetings$`), category: 'Medium', slow: true, handler: createMeeting },
  { method: 'GET', pattern: new RegExp(`^/v2/users/${SEG}/meetings$`), category: 'Medium', slow: false, handler: listMeetings },
  { method: 'GET', pattern: new RegExp(`^/v2/meetings/${SEG}$`), category: 'Light', slow: false, handler: getMeeting },
  { method: 'PATCH', pattern: new RegExp(`^/v2/meetings/${SEG}$`), category: 'Light', slow: false, handler: patchMeeting },
  { method: 'DELETE', pattern: new RegExp(`^/v2/meetings/${SEG}$`), category: 'Light', slow: false, handler: deleteMeeting },
  { method: 'PUT', pattern: new RegExp(`^/v2/meetings/${SEG}/status$`), category: 'Light', slow: false, handler: setStatus },
  { method: 'GET', pattern: new RegExp(`^/v2/meetings/${SEG}/recordings$`), category: 'Light', slow: false, handler: getRecordings },
];
