/**
 * Zoom emulator: an HTTP server that behaves like Zoom's S2S OAuth + Meetings API closely enough for tests,
 * the demo and benchmarks (docs: zoom-api.md). Point the client at `apiBaseUrl` and `oauthUrl`.
 */
import { type Clock, systemClock } from '../../clock.ts';
import { createAccountRegistry } from './accounts.ts';
import { createDownloads } from './downloads.ts';
import { type FaultHandle, type FaultInfo, type FaultRule, createFaultRegistry } from './faults.ts';
import { createControl } from './inspection.ts';
import { type StartResult, createMeetingStore } from './meeting-store.ts';
import type { Behaviour } from './meetings.ts';
import { type TokenPolicy, createTokenStore } from './oauth.ts';
import { createPageTokens } from './pagination.ts';
import { type Attendance, createAttendance } from './participants.ts';
import { type RateCounters, createRateLimiter } from './rate-limits.ts';
import { createRecordingFiles } from './recording-files.ts';
import { createRecorder } from './recordings.ts';
import { createFindings } from './rules.ts';
import { startServer } from './server.ts';
import { meetingObject, participantObject } from './webhook-payloads.ts';
import { type DropRule, type ValidationResult, createWebhooks } from './webhooks.ts';
import type {
  DownloadFaultRule,
  DownloadRequest,
  MeetingEvent,
  MeetingRecord,
  MeetingSnapshot,
  OverlapRecord,
  ParticipantSnapshot,
  Person,
  RateLimitOverrides,
  RecordingFile,
  RequestLogEntry,
  ScriptStep,
  Violation,
  WebhookDelivery,
  WebhookSubscription,
  ZoomAccountConfig,
} from './types.ts';

export type { Fault, FaultHandle, FaultInfo, FaultRule } from './faults.ts';
export type { StartResult } from './meeting-store.ts';
export type { TokenPolicy } from './oauth.ts';
export type { DropRule, ValidationResult } from './webhooks.ts';
export { signature as webhookSignature } from './webhooks.ts';
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
  /** Delay before an auto cloud recording appears after its meeting ends (default 0: at once). */
  recordingDelayMs?: number;
  /**
   * Real ms a webhook receiver may still answer after its 3 s window passed on a *virtual* clock (default 1000;
   * always 0 on the system clock), so advancing virtual time during real HTTP does not fake a timeout.
   */
  webhookAnswerGraceMs?: number;
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
  readonly webhooks: {
    /** An app's event subscription: POSTs signed events of `accountId` to `url` (Zoom's envelope). */
    subscribe(sub: WebhookSubscription): () => void;
    /** Sends endpoint.url_validation and checks the answer (plainToken echoed, encryptedToken = hex HMAC). */
    validate(accountId: string): Promise<ValidationResult>;
    /** Every delivery attempt, oldest first. */
    deliveries(filter?: { accountId?: string; event?: string }): WebhookDelivery[];
    /** Lose the next matching events (never sent, no retries): a lost webhook. */
    drop(rule: DropRule): { remove(): void };
    /** Send an already delivered event again, byte for byte with a fresh timestamp+signature (Zoom's duplicate). */
    redeliver(deliveryId: string): Promise<number | null>;
    /** Resolves when no delivery is in flight (retries scheduled on the clock do not count). */
    settle(): Promise<void>;
  };
  /** A person joins (a waiting meeting is started by them: JBH, or by the host when role is 'host'). Returns the participant uuid. Throws when the meeting does not exist (deleted) or its host is busy. */
  join(meetingId: number, person: Person): string;
  /** Leaves; when the last person leaves, the meeting ends (meeting.ended). */
  leave(meetingId: number, participantUuid: string): boolean;
  /** Scripted attendance on the emulator's clock: minutes after the meeting's scheduled start (may be negative; steps already due run at once). */
  script(meetingId: number, steps: ScriptStep[]): void;
  /** People in the meeting now. */
  participants(meetingId: number): ParticipantSnapshot[];
  /** The bytes and sha256 (hex) the emulator serves for a recording file. */
  recordingFile(fileId: string): { bytes: Buffer; sha256: string; contentType: string } | undefined;
  readonly downloads: {
    add(rule: DownloadFaultRule): { remove(): void };
    requests(): DownloadRequest[];
  };
  /** Forgets meetings, tokens, counters, logs, faults, participants and deliveries; keeps accounts, listeners and webhook subscriptions. */
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
  const hostOf: Parameters<typeof createMeetingStore>[0]['hostOf'] = (m) => {
    const account = accounts.get(m.accountId);
    const host = account?.users.find((u) => u.id === m.hostId);
    return account && host ? { account, host } : undefined;
  };
  const webhooks = createWebhooks(clock, { answerGraceMs: clock.kind === 'virtual' ? (options.webhookAnswerGraceMs ?? 1000) : 0 });
  // The store asks attendance (created just below) to empty a meeting before it ends.
  const store = createMeetingStore({ clock, findings, baseUrl: () => url, hostOf, beforeEnd: (m, reason) => people.evict(m, reason) });
  const people: Attendance = createAttendance({
    clock,
    store,
    joined: (m, p, at) => webhooks.publish(m.accountId, 'meeting.participant_joined', participantObject(m, p, at)),
    left: (m, p, at, reason) => webhooks.publish(m.accountId, 'meeting.participant_left', participantObject(m, p, at, { reason })),
  });
  const files = createRecordingFiles(clock);
  const recorder = createRecorder({ clock, store, webhooks, files, baseUrl: () => url, hostOf, attended: (u) => people.attended(u), delayMs: options.recordingDelayMs ?? 0 });
  const findFile = (fileId: string): { meeting: MeetingRecord; file: RecordingFile } | undefined => {
    for (const meeting of store.all()) {
      const file = meeting.recordingFiles.find((f) => f.id === fileId);
      if (file) return { meeting, file };
    }
    return undefined;
  };
  const downloads = createDownloads({ clock, tokens, files, baseUrl: () => url, findFile });
  store.subscribe((e) => {
    if (e.type !== 'meeting.started' && e.type !== 'meeting.ended') return;
    const m = store.all().find((x) => x.id === e.meeting.id);
    if (!m) return;
    webhooks.publish(m.accountId, e.type, meetingObject(m));
    if (e.type === 'meeting.ended') recorder.ended(m);
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
    addRecording: (id, recordingFiles) => recorder.add(id, recordingFiles),
    onEvent: (listener) => store.subscribe(listener),
    webhooks: {
      subscribe: (sub) => webhooks.subscribe(sub),
      validate: (accountId) => webhooks.validate(accountId),
      deliveries: (filter) => webhooks.deliveries(filter),
      drop: (rule) => webhooks.drop(rule),
      redeliver: (id) => webhooks.redeliver(id),
      settle: () => webhooks.settle(),
    },
    join: (id, person) => people.join(id, person),
    leave: (id, uuid) => people.leave(id, uuid),
    script: (id, steps) => people.script(id, steps),
    participants: (id) => people.participants(id),
    recordingFile: (fileId) => {
      const found = findFile(fileId);
      return found && files.content(found.file);
    },
    downloads: { add: (rule) => downloads.add(rule), requests: () => downloads.requests() },
    reset() {
      people.reset();
      recorder.reset();
      webhooks.reset();
      downloads.reset();
      files.reset();
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
        attendance: people,
      },
      control,
      downloads,
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
      people.reset();
      recorder.reset();
      webhooks.close();
      store.reset(); // clears the Basic 40-minute timers
      await server.close();
    },
  };
}
