import type { Clock } from '../clock.ts';
import type { Metrics } from '../metrics.ts';
import { parseResetEpoch, parseRetryAfter, retryDelay, type BackoffPolicy } from '../retry.ts';
import { classifyZoomResponse, describeZoomError, ZoomError, type ZoomErrorBody } from './errors.ts';
import { createTokenCache, type ZoomCredentials } from './tokens.ts';
import { parseMeeting, parseMeetingList, type ZoomMeeting, type ZoomMeetingSummary } from './types.ts';

export type ZoomCategory = 'light' | 'medium' | 'heavy';

export interface ZoomClientSettings {
  apiBaseUrl: string;
  oauthUrl: string;
  timeoutMs: number;
  attempts: number;
  backoff: BackoffPolicy;
}

export interface ZoomClientOptions {
  clock: Clock;
  /** Read on every call, so hot-reloaded settings apply to the next request. */
  settings: () => ZoomClientSettings;
  /** Called once per request that reached Zoom (usage counters). */
  onRequest?: (accountId: string, category: ZoomCategory) => Promise<void> | void;
  /** onRequest failed (the call's own outcome stands). */
  onRequestError?: (error: unknown) => void;
  metrics?: Pick<Metrics, 'zoomRequestSeconds'>;
  random?: () => number;
}

export interface CreateMeetingBody {
  topic: string;
  type: 2;
  start_time: string;
  duration: number;
  timezone: 'UTC';
  agenda: string;
  settings: {
    join_before_host: boolean;
    jbh_time: 0 | 5 | 10;
    waiting_room: boolean;
    auto_recording: 'none' | 'local' | 'cloud';
    approval_type: 2;
    meeting_authentication: boolean;
  };
}

export type UpdateMeetingBody = Partial<Pick<CreateMeetingBody, 'topic' | 'start_time' | 'duration' | 'agenda' | 'timezone'>> & {
  settings?: Partial<CreateMeetingBody['settings']>;
};

/** The calls the service makes, typed; credentials per call because one client serves the whole pool. */
export interface ZoomClient {
  /** Not retried on ambiguous failures: a second create could double-book. Reconcile, then decide. */
  createMeeting(creds: ZoomCredentials, hostUserId: string, body: CreateMeetingBody): Promise<ZoomMeeting>;
  getMeeting(creds: ZoomCredentials, meetingId: string): Promise<ZoomMeeting>;
  /** Every upcoming/scheduled meeting of a host, all pages. */
  listMeetings(creds: ZoomCredentials, hostUserId: string, type?: 'scheduled' | 'upcoming'): Promise<ZoomMeetingSummary[]>;
  updateMeeting(creds: ZoomCredentials, meetingId: string, body: UpdateMeetingBody): Promise<void>;
  endMeeting(creds: ZoomCredentials, meetingId: string): Promise<void>;
  deleteMeeting(creds: ZoomCredentials, meetingId: string): Promise<void>;
  getRecordings(creds: ZoomCredentials, meetingIdOrUuid: string): Promise<unknown>;
  /** Live participants from the dashboard API (Business plans and up; Heavy). All pages, raw items. */
  liveParticipants(creds: ZoomCredentials, meetingId: string): Promise<unknown[]>;
  /** A current access token of the account (recording downloads send it as a Bearer token). */
  accessToken(creds: ZoomCredentials): Promise<string>;
  /** Drops a token the far side refused, so the next call fetches a fresh one. */
  invalidateToken(creds: ZoomCredentials, token: string): void;
}

interface Call {
  operation: string;
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  path: string;
  query?: Record<string, string>;
  body?: unknown;
  category: ZoomCategory;
  idempotent: boolean;
}

export function createZoomClient(options: ZoomClientOptions): ZoomClient {
  const { clock } = options;
  const tokens = createTokenCache({ clock, settings: () => options.settings() });

  const attempt = async (creds: ZoomCredentials, call: Call, token: string): Promise<{ status: number; body: unknown; headers: Headers }> => {
    const settings = options.settings();
    const url = new URL(`${settings.apiBaseUrl.replace(/\/$/, '')}${call.path}`);
    for (const [k, v] of Object.entries(call.query ?? {})) url.searchParams.set(k, v);
    const controller = new AbortController();
    const timer = clock.setTimeout(() => controller.abort(new Error(`Zoom ${call.operation} timed out after ${settings.timeoutMs} ms`)), settings.timeoutMs);
    const started = performance.now();
    let outcome = 'error';
    try {
      const response = await fetch(url, {
        method: call.method,
        headers: { authorization: `Bearer ${token}`, ...(call.body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
        signal: controller.signal,
      });
      const text = await response.text();
      outcome = String(response.status);
      let body: unknown = undefined;
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          body = { message: `non-JSON body: ${text.slice(0, 200)}` };
        }
      }
      return { status: response.status, body, headers: response.headers };
    } finally {
      clock.clearTimeout(timer);
      options.metrics?.zoomRequestSeconds.observe({ operation: call.operation, outcome }, (performance.now() - started) / 1000);
      // Counting is bookkeeping: its failure must not replace what Zoom answered (a created meeting, say).
      try {
        await options.onRequest?.(creds.accountId, call.category);
      } catch (error) {
        options.onRequestError?.(error);
      }
    }
  };

  const pause = (ms: number): Promise<void> => (ms > 0 ? clock.sleep(ms) : Promise.resolve());

  const request = async (creds: ZoomCredentials, call: Call): Promise<unknown> => {
    const { attempts, backoff } = options.settings();
    let refreshed = false;
    for (let n = 1; ; n++) {
      let token: string;
      try {
        token = await tokens.get(creds);
      } catch (error) {
        // No token, nothing sent: an OAuth 5xx, 429 or timeout is retried like any call (never ambiguous).
        if (error instanceof ZoomError && error.kind === 'retryable' && n < attempts) {
          await pause(retryDelay(backoff, n, error.retryAfterMs, options.random));
          continue;
        }
        throw error;
      }
      let result: { status: number; body: unknown; headers: Headers };
      try {
        result = await attempt(creds, call, token);
      } catch (error) {
        // Timeout or dropped connection: for a create we cannot know whether Zoom acted.
        const kind = call.idempotent ? 'retryable' : 'ambiguous';
        const failure = new ZoomError(kind, `Zoom ${call.operation} failed: ${(error as Error).message}`, { cause: error });
        if (kind === 'retryable' && n < attempts) {
          await pause(retryDelay(backoff, n, undefined, options.random));
          continue;
        }
        throw failure;
      }
      if (result.status >= 200 && result.status < 300) return result.body;
      const body = asErrorBody(result.body);
      if (result.status === 401 && !refreshed) {
        // Expired or revoked token (code 124): fetch a fresh one once and repeat.
        refreshed = true;
        tokens.invalidate(creds, token);
        n--;
        continue;
      }
      const kind = classifyZoomResponse(result.status, body, call.idempotent);
      const now = clock.now();
      const retryAfterMs =
        parseRetryAfter(result.headers.get('retry-after'), now) ?? parseResetEpoch(result.headers.get('x-ratelimit-reset'), now);
      const error = new ZoomError(kind, describeZoomError(result.status, body), {
        status: result.status,
        ...(body.code !== undefined ? { code: body.code } : {}),
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      });
      if (kind === 'retryable' && n < attempts) {
        await pause(retryDelay(backoff, n, retryAfterMs, options.random));
        continue;
      }
      throw error;
    }
  };

  const enc = encodeURIComponent;
  return {
    async createMeeting(creds, hostUserId, body) {
      // A 429 means Zoom refused before acting, so `idempotent: false` still retries those (classify).
      return parseMeeting(await request(creds, { operation: 'create_meeting', method: 'POST', path: `/users/${enc(hostUserId)}/meetings`, body, category: 'medium', idempotent: false }));
    },
    async getMeeting(creds, meetingId) {
      return parseMeeting(await request(creds, { operation: 'get_meeting', method: 'GET', path: `/meetings/${enc(meetingId)}`, category: 'light', idempotent: true }));
    },
    async listMeetings(creds, hostUserId, type = 'upcoming') {
      const all: ZoomMeetingSummary[] = [];
      let pageToken = '';
      for (let page = 0; page < 100; page++) {
        const query: Record<string, string> = { type, page_size: '300', ...(pageToken ? { next_page_token: pageToken } : {}) };
        const raw = await request(creds, { operation: 'list_meetings', method: 'GET', path: `/users/${enc(hostUserId)}/meetings`, query, category: 'medium', idempotent: true });
        const parsed = parseMeetingList(raw);
        all.push(...parsed.meetings);
        if (!parsed.nextPageToken) break;
        pageToken = parsed.nextPageToken;
      }
      return all;
    },
    async updateMeeting(creds, meetingId, body) {
      await request(creds, { operation: 'update_meeting', method: 'PATCH', path: `/meetings/${enc(meetingId)}`, body, category: 'light', idempotent: true });
    },
    async endMeeting(creds, meetingId) {
      await request(creds, { operation: 'end_meeting', method: 'PUT', path: `/meetings/${enc(meetingId)}/status`, body: { action: 'end' }, category: 'light', idempotent: true });
    },
    async deleteMeeting(creds, meetingId) {
      await request(creds, { operation: 'delete_meeting', method: 'DELETE', path: `/meetings/${enc(meetingId)}`, category: 'light', idempotent: true });
    },
    async getRecordings(creds, meetingIdOrUuid) {
      // UUIDs that start with "/" or contain "//" must be double-encoded.
      const id = meetingIdOrUuid.startsWith('/') || meetingIdOrUuid.includes('//') ? enc(enc(meetingIdOrUuid)) : enc(meetingIdOrUuid);
      return request(creds, { operation: 'get_recordings', method: 'GET', path: `/meetings/${id}/recordings`, category: 'light', idempotent: true });
    },
    async liveParticipants(creds, meetingId) {
      const all: unknown[] = [];
      let pageToken = '';
      for (let page = 0; page < 100; page++) {
        const query: Record<string, string> = { type: 'live', page_size: '300', ...(pageToken ? { next_page_token: pageToken } : {}) };
        const raw = await request(creds, { operation: 'live_participants', method: 'GET', path: `/metrics/meetings/${enc(meetingId)}/participants`, query, category: 'heavy', idempotent: true });
        const body = (typeof raw === 'object' && raw !== null ? raw : {}) as { participants?: unknown; next_page_token?: unknown };
        if (Array.isArray(body.participants)) all.push(...(body.participants as unknown[]));
        if (typeof body.next_page_token !== 'string' || !body.next_page_token) break;
        pageToken = body.next_page_token;
      }
      return all;
    },
    accessToken: (creds) => tokens.get(creds),
    invalidateToken: (creds, token) => tokens.invalidate(creds, token),
  };
}

function asErrorBody(body: unknown): ZoomErrorBody {
  if (typeof body !== 'object' || body === null) return {};
  const { code, message } = body as { code?: unknown; message?: unknown };
  return { ...(typeof code === 'number' ? { code } : {}), ...(typeof message === 'string' ? { message } : {}) };
}
