/**
 * Zoom emulator: an HTTP server that behaves like Zoom's S2S OAuth + Meetings API closely enough for tests,
 * the demo and benchmarks (docs: zoom-api.md). Point the client at `apiBaseUrl` and `oauthUrl`.
 */
import { type Clock, systemClock } from '../../clock.ts';
import { createAccountRegistry } from './accounts.ts';
import { type FaultHandle, type FaultInfo, type FaultRule, createFaultRegistry } from './faults.ts';
import { createControl } from './inspection.ts';
import { type StartResult, createMeetingStore } from './meeting-store.ts';
import type { Behaviour } from './meetings.ts';
import { type TokenPolicy, createTokenStore } from './oauth.ts';
import { createPageTokens } from './pagination.ts';
import { type RateCounters, createRateLimiter } from './rate-limits.ts';
import { createFindings } from './rules.ts';
import { startServer } from './server.ts';
import type {
  MeetingEvent,
  MeetingSnapshot,
  OverlapRecord,
  RateLimitOverrides,
  RecordingFile,
  RequestLogEntry,
  Violation,
  ZoomAccountConfig,
} from './types.ts';

export type { Fault, FaultHandle, FaultInfo, FaultRule } from './faults.ts';
export type { StartResult } from './meeting-store.ts';
export type { TokenPolicy } from './oauth.ts';
export type * from './types.ts';

export interface ZoomEmulatorOptions {
  accounts?: ZoomAccountConfig[];
  /** All time (token expiry, rate windows, daily resets, meeting times, latency). Default: systemClock(). */
  clock?: Clock;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Latency of create-meeting calls (default 1000, like the real API; tests pass 0). */
  createLatencyMs?: number;
  /** Latency of every other call (default 0). */
  latencyMs?: number;
  /** Access-token lifetime (default 3600). */
  tokenTtlSeconds?: number;
  /** Default `multiple` (current Zoom). */
  tokenPolicy?: TokenPolicy;
  /** QPS and per-account daily limits: on (default), off, or on with overrides. */
  rateLimits?: boolean | (RateLimitOverrides & { hostDailyStatus?: 429 | 300 });
  /** Create+update requests per host per UTC day (default 100; Infinity = off). */
  dailyMeetingWriteLimit?: number;
  /** Lead assumed for `jbh_time: 0` ("any time") when looking for overlaps (default 15 minutes). */
  jbhAnyTimeLeadMinutes?: number;
  /** Default `downgrade` (what Zoom does); `reject` answers 400 code 300. */
  basicCloudRecording?: Behaviour['basicCloudRecording'];
  /** Default `allow`; `reject` answers DELETE of an ended meeting with 3007. */
  deleteEndedMeetings?: Behaviour['deleteEnded'];
}

export interface ZoomCounters extends RateCounters {
  tokensIssued: number;
  meetings: { created: number; updated: number; deleted: number; started: number; ended: number };
}

export interface ZoomEmulator {
  /** e.g. http://127.0.0.1:43123 */
  readonly url: string;
  /** `${url}/v2` */
  readonly apiBaseUrl: string;
  /** `${url}/oauth/token` */
  readonly oauthUrl: string;
  close(): Promise<void>;
  addAccount(account: ZoomAccountConfig): void;
  readonly faults: {
    add(rule: FaultRule): FaultHandle;
    clear(): void;
    list(): FaultInfo[];
  };
  /** Makes the account's (or all) current tokens answer 401 code 124 from now on. */
  expireTokens(accountId?: string): void;
  /** Every meeting ever created, deleted ones included. */
  meetings(filter?: { accountId?: string; hostId?: string }): MeetingSnapshot[];
  meeting(id: number): MeetingSnapshot | undefined;
  requests(): RequestLogEntry[];
  tokenRequests(accountId: string): number;
  counters(): ZoomCounters;
  overlaps(filter?: { activeOnly?: boolean }): OverlapRecord[];
  violations(): Violation[];
  /** A participant (JBH, the default) or the host starts the meeting. */
  startMeeting(id: number, options?: { by?: 'participant' | 'host' }): StartResult;
  /** Ends a live meeting (as when everyone leaves or the host ends it); false if it was not live. */
  endMeeting(id: number): boolean;
  /** Gives the meeting cloud recording files (default: one MP4 and one M4A). */
  addRecording(id: number, files?: RecordingFile[]): boolean;
  /** Lifecycle events (the seam for webhooks). Returns an unsubscribe function. */
  onEvent(listener: (event: MeetingEvent) => void): () => void;
  /** Forgets meetings, tokens, counters, logs and faults; keeps accounts and event listeners. */
  reset(): void;
}

export async function startZoomEmulator(options: ZoomEmulatorOptions = {}): Promise<ZoomEmulator> {
  const clock = options.clock ?? systemClock();
  const accounts = createAccountRegistry();
  for (const a of options.accounts ?? []) accounts.add(a, clock.now());

  const rl = options.rateLimits ?? true;
  const limiter = createRateLimiter(clock, {
    enabled: rl !== false,
    overrides: typeof rl === 'object' ? rl : undefined,
    hostDailyLimit: options.dailyMeetingWriteLimit ?? 100,
    hostDailyStatus: typeof rl === 'object' ? (rl.hostDailyStatus ?? 429) : 429,
  });
  const tokens = createTokenStore(clock, options.tokenTtlSeconds ?? 3600, options.tokenPolicy ?? 'multiple');
  const faults = createFaultRegistry();
  const findings = createFindings(options.jbhAnyTimeLeadMinutes ?? 15);
  const pageTokens = createPageTokens(clock);
  const log: RequestLogEntry[] = [];
  let url = '';
  const store = createMeetingStore({
    clock,
    findings,
    baseUrl: () => url,
    hostOf: (m) => {
      const account = accounts.get(m.accountId);
      const host = account?.users.find((u) => u.id === m.hostId);
      return account && host ? { account, host } : undefined;
    },
  });

  const counts = { created: 0, updated: 0, deleted: 0, started: 0, ended: 0 };
  store.subscribe((e) => {
    if (e.type === 'meeting.created') counts.created++;
    else if (e.type === 'meeting.updated') counts.updated++;
    else if (e.type === 'meeting.deleted') counts.deleted++;
    else if (e.type === 'meeting.started') counts.started++;
    else if (e.type === 'meeting.ended') counts.ended++;
  });

  const emulator: Omit<ZoomEmulator, 'url' | 'apiBaseUrl' | 'oauthUrl' | 'close'> = {
    addAccount: (a) => void accounts.add(a, clock.now()),
    faults: { add: (r) => faults.add(r), clear: () => faults.clear(), list: () => faults.list() },
    expireTokens: (accountId) => tokens.expire(accountId),
    meetings: (filter) =>
      store
        .all()
        .filter((m) => (!filter?.accountId || m.accountId === filter.accountId) && (!filter?.hostId || m.hostId === filter.hostId))
        .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime())
        .map((m) => store.snapshot(m)),
    meeting: (id) => {
      const m = store.all().find((x) => x.id === id);
      return m && store.snapshot(m);
    },
    requests: () => log.map((e) => ({ ...e })),
    tokenRequests: (accountId) => tokens.requests(accountId),
    counters: () => ({ ...limiter.counters(), tokensIssued: tokens.issued(), meetings: { ...counts } }),
    overlaps: (filter) => findings.overlaps().filter((o) => !filter?.activeOnly || o.active),
    violations: () => findings.violations(),
    startMeeting: (id, opts) => store.start(id, opts?.by ?? 'participant'),
    endMeeting: (id) => store.end(id),
    addRecording: (id, files) => store.addRecording(id, files),
    onEvent: (listener) => store.subscribe(listener),
    reset() {
      store.reset();
      findings.reset();
      limiter.reset();
      tokens.reset();
      pageTokens.reset();
      faults.clear();
      log.length = 0;
      for (const k of Object.keys(counts) as Array<keyof typeof counts>) counts[k] = 0;
    },
  };

  const control = createControl(emulator);
  const server = await startServer(
    {
      clock,
      accounts,
      tokens,
      faults,
      log,
      latencyMs: options.latencyMs ?? 0,
      createLatencyMs: options.createLatencyMs ?? 1000,
      api: {
        clock,
        accounts,
        store,
        limiter,
        pageTokens,
        baseUrl: () => url,
        behaviour: { basicCloudRecording: options.basicCloudRecording ?? 'downgrade', deleteEnded: options.deleteEndedMeetings ?? 'allow' },
      },
      control,
    },
    options.host ?? '127.0.0.1',
    options.port ?? 0,
  );
  url = server.url;

  return {
    ...emulator,
    url,
    apiBaseUrl: `${url}/v2`,
    oauthUrl: `${url}/oauth/token`,
    async close() {
      store.reset(); // clears the Basic 40-minute timers
      await server.close();
    },
  };
}
