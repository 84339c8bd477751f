import { z } from 'zod';
import { formatDuration, parseDuration, type Duration } from './duration.ts';
import { cronProblem } from '../deliveries/cron.ts';
import { imageProblem } from './image.ts';
import { templateProblems, type TemplateRule } from '../line/templates.ts';

/**
 * The one configuration schema: the source of the Config type, its defaults and its validation.
 * Defaults are good for the embedded demo. Every object is strict so a mistyped key is an error
 * that names the key, not a silently ignored setting.
 */

export const durationSchema = z.string().transform((text, ctx): Duration => {
  const parsed = parseDuration(text);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration (use e.g. 30s, 5m, 48h)` });
    return z.NEVER;
  }
  return parsed;
});

/**
 * The period of a loop, poll or sweep, or a lease: (nearly) zero would spin, also after a live
 * reload, and a lease that short is taken over while its work is in flight.
 */
const durationAtLeast = (minMs: number) => durationSchema.refine((d) => d.ms >= minMs, { error: `must be at least ${formatDuration(minMs)}` });
const period = durationAtLeast(1_000);
const lease = durationAtLeast(5_000);

export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const timeZoneSchema = z.string().refine(isValidTimeZone, { error: (issue) => `"${String(issue.input)}" is not an IANA time zone (e.g. Asia/Taipei)` });

const httpUrl = z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' });

const databaseUrl = z
  .string()
  .refine((url) => url.startsWith('sqlite:') || /^postgres(ql)?:\/\//.test(url), {
    message: 'must be sqlite:<path>, sqlite::memory: or postgres://…',
  });

const hostName = z
  .string()
  .transform((s) => s.toLowerCase())
  .refine((s) => /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(s), 'must be a DNS name, e.g. line.example.com');

/** A LINE message template, checked at load so a bad one fails the reload rather than the send. */
const template = (rule: TemplateRule) =>
  z.string().superRefine((text, ctx) => {
    for (const message of templateProblems(text, rule)) ctx.addIssue({ code: 'custom', message });
  });

/** The message part of a notification kind (its timing keys are added beside it). */
const notificationMessage = (defaults: { text: string; altText: string }) => ({
  /** `imagemap`: a tappable image whose altText carries the link; `text`: the link in a text message. */
  format: z.enum(['imagemap', 'text']).default('imagemap'),
  text: template({ maxLength: 5000, required: ['url'] }).default(defaults.text),
  altText: template({ maxLength: 1500 }).default(defaults.altText),
});

export const configSchema = z.strictObject({
  /** The business time zone: how local times are shown to students and how cron expressions are read. */
  timezone: timeZoneSchema.default('Asia/Taipei'),
  database: z
    .strictObject({
      url: databaseUrl.default('sqlite:./data/scheduler.db'),
      /** PostgreSQL connection pool size (SQLite uses one connection). */
      poolSize: z.int().min(1).max(200).default(10),
    })
    .prefault({}),
  http: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.int().min(0).max(65535).default(3000),
      /** The address students and LINE reach this service at (imagemap images, signed links). */
      publicBaseUrl: httpUrl.default('http://localhost:3000'),
      /** Largest accepted request body; bulk upserts of thousands of rows need room. */
      bodyLimitBytes: z.int().min(1024).max(100 * 1024 * 1024).default(10 * 1024 * 1024),
      /** Trust X-Forwarded-* headers (behind a reverse proxy). */
      trustProxy: z.boolean().default(false),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .prefault({}),
  reload: z
    .strictObject({
      /** Watch the config file and re-read it on change (SIGHUP always works). */
      watch: z.boolean().default(true),
      /** Wait this long after the last file event before reading (editors write in several steps). */
      debounce: durationSchema.prefault('200ms'),
    })
    .prefault({}),
  shutdown: z
    .strictObject({
      /** How long SIGTERM waits for in-flight work before releasing it and exiting. */
      grace: durationSchema.prefault('20s'),
    })
    .prefault({}),
  zoom: z
    .strictObject({
      apiBaseUrl: httpUrl.default('https://api.zoom.us/v2'),
      oauthUrl: httpUrl.default('https://zoom.us/oauth/token'),
      /** Deadline of one Zoom API call. */
      requestTimeout: durationSchema.prefault('15s'),
      /** Retries of retryable failures (429 per-second, 5xx, timeouts on idempotent calls): full-jitter backoff. */
      retry: z
        .strictObject({
          attempts: z.int().min(1).max(10).default(4),
          baseDelay: durationSchema.prefault('500ms'),
          maxDelay: durationSchema.prefault('20s'),
        })
        .prefault({}),
      meeting: z
        .strictObject({
          /** Minutes the meeting stays scheduled after the class ends (Zoom duration = class + this). */
          afterClassMinutes: z.int().min(0).max(120).default(10),
          /** How early students may join before the start (Zoom jbh_time accepts 5 or 10 minutes). */
          earlyJoinMinutes: z.union([z.literal(5), z.literal(10)], { error: 'must be 5 or 10 (the values Zoom accepts for jbh_time)' }).default(10),
          /** `cloud` applies to licensed hosts only; basic hosts cannot record to the cloud. */
          autoRecording: z.enum(['none', 'local', 'cloud']).default('none'),
          /** Meeting topic; `{title}` is the class title (Zoom allows 200 characters). */
          topicTemplate: z.string().min(1).max(200).refine((t) => t.includes('{title}'), 'must contain {title}').default('{title}'),
        })
        .prefault({}),
      basic: z
        .strictObject({
          /**
           * Zoom ends a basic host's meeting this many minutes after it starts, and with join-before-host
           * it starts when the first student joins early. So a class fits a basic host only if
           * earlyJoin + class + afterClass <= maxMinutes.
           */
          maxMinutes: z.int().min(1).max(40).default(40),
          earlyJoinMinutes: z.union([z.literal(5), z.literal(10)], { error: 'must be 5 or 10 (the values Zoom accepts for jbh_time)' }).default(5),
          afterClassMinutes: z.int().min(0).max(30).default(0),
        })
        .prefault({}),
      provisioning: z
        .strictObject({
          /** How often to look for schedules that need a meeting created, moved or deleted. */
          interval: period.prefault('5m'),
          /** Only schedules starting within this much time get a meeting. */
          horizon: durationSchema.prefault('48h'),
          /** Schedules claimed per pass (each replica claims its own batch). */
          batchSize: z.int().min(1).max(10_000).default(1000),
          /** Zoom calls in flight at once, overall and per Zoom account (creates take about 1 s). */
          concurrency: z.int().min(1).max(200).default(32),
          perAccountConcurrency: z.int().min(1).max(50).default(8),
          /** Lease on one schedule's meeting work; renewed while the call is in flight. */
          lease: lease.prefault('2m'),
          /** Wait before retrying a schedule whose meeting failed or found no host. */
          retryDelay: durationSchema.prefault('5m'),
        })
        .prefault({}),
      quota: z
        .strictObject({
          /**
           * Day boundary of the per-account request counters (the basic accounts' daily caps). Per-host
           * meeting writes are always counted by UTC day: Zoom resets that limit at 00:00 UTC.
           */
          timezone: timeZoneSchema.default('UTC'),
          /** Meeting creates + updates per host per day we allow ourselves (Zoom's limit is 100). */
          hostMeetingWrites: z.int().min(1).max(100).default(90),
          /** Requests per day per basic (Free) account by category, below Zoom's 6,000 / 2,000 / 1,000. */
          basicAccountDaily: z
            .strictObject({ light: z.int().min(1).default(5400), medium: z.int().min(1).default(1800), heavy: z.int().min(1).default(900) })
            .prefault({}),
        })
        .prefault({}),
    })
    .prefault({}),
  line: z
    .strictObject({
      apiBaseUrl: httpUrl.default('https://api.line.me'),
      /** Deadline of one LINE API call. */
      requestTimeout: durationSchema.prefault('10s'),
      /** Webhooks reach `POST /webhooks/line` at `<slug>.<webhookDomain>`; null: only `/webhooks/line/{slug}`. */
      webhookDomain: hostName.nullable().default(null),
      /** Largest webhook body accepted (LINE's are a few KB). */
      webhookBodyLimitBytes: z.int().min(1024).max(10 * 1024 * 1024).default(1024 * 1024),
      /** How often the channel pool checks the database for added, changed or disabled channels. */
      channelRefresh: period.prefault('5s'),
      /** How often stored webhook events left unprocessed (a crash, another replica) are picked up. */
      eventSweep: period.prefault('30s'),
      /**
       * Which LINE calls go to the request log (line_requests): `problems` keeps every call that did not
       * simply succeed (timeouts, 5xx, 4xx, 409s, with their request ids and reasons); a success's
       * x-line-request-id is already on its delivery or multicast row. `all` also logs each success:
       * at the 20:00 peak that is 73,000 more rows, about a sixth of the send path's time on SQLite.
       */
      requestLog: z.enum(['problems', 'all']).default('problems'),
      /** Fetch a new follower's display name (GET /v2/bot/profile) when LINE allows it. */
      fetchDisplayName: z.boolean().default(true),
      /** Requests per second per channel, shared by all replicas; LINE allows 2,000 push, 200 multicast. */
      rateLimits: z
        .strictObject({
          push: z.number().positive().max(2000).default(1950),
          multicast: z.number().positive().max(200).default(195),
          profile: z.number().positive().max(2000).default(1950),
        })
        .prefault({}),
      /** Bucket capacity, as time at the rate: how large a burst may leave at once. */
      rateBurst: durationSchema.prefault('200ms'),
      /** Backoff after a retryable failure (5xx, timeout, network, rate-limit 429): full jitter. */
      retry: z.strictObject({ baseDelay: durationSchema.prefault('1s'), maxDelay: durationSchema.prefault('5m') }).prefault({}),
      /** After LINE answers "monthly limit reached", the channel pauses this long before trying again. */
      quotaRecheck: period.prefault('1h'),
    })
    .prefault({}),
  /** What students receive. Templates: {title}, {date}, {start}, {end} (local, in `timezone`), {url}. */
  notifications: z
    .strictObject({
      meetingUrl: z
        .strictObject({
          ...notificationMessage({
            text: '【上課提醒】{title}\n時間：{date} {start}–{end}\n請點以下連結進入 Zoom 教室：\n{url}',
            altText: '【上課提醒】{title} {date} {start} 開課，進入教室：{url}',
          }),
          /** Sent this many minutes before the class starts. */
          leadMinutes: z.int().min(0).max(24 * 60).default(10),
        })
        .prefault({}),
      feedbackUrl: z
        .strictObject({
          ...notificationMessage({
            text: '【課後回饋】{title}\n謝謝你今天的參與！請花一分鐘填寫課後回饋：\n{url}',
            altText: '【課後回饋】{title}，填寫回饋：{url}',
          }),
          /** Sent this many minutes before the class ends. */
          beforeEndMinutes: z.int().min(0).max(24 * 60).default(10),
          /** After downtime, still sent up to this long after the class ends; older ones expire. */
          lateWindow: durationSchema.prefault('24h'),
        })
        .prefault({}),
      /** A link to the class recording, once it is stored (a third delivery kind; off by default). */
      replayUrl: z
        .strictObject({
          enabled: z.boolean().default(false),
          ...notificationMessage({
            text: '【課程錄影】{title}（{date} {start}）\n錄影已可觀看：\n{url}',
            altText: '【課程錄影】{title}，觀看錄影：{url}',
          }),
          format: z.enum(['imagemap', 'text']).default('text'),
          /** How long the signed replay link works. */
          linkTtl: durationSchema.prefault('7d'),
          /** Not sent later than this after the recording is stored. */
          lateWindow: durationSchema.prefault('24h'),
        })
        .prefault({}),
      /** Sent when the minimum-headcount policy `cancel` calls a class off. */
      classCancelled: z
        .strictObject({
          text: template({ maxLength: 5000 }).default('【停課通知】{title}（{date} {start}–{end}）因報名人數未達開課門檻，本堂課取消。造成不便，敬請見諒。'),
        })
        .prefault({}),
      /** `continuous`: each delivery at its own due instant. `cron`: the seed's form, at the ticks of `cron`. */
      trigger: z.enum(['continuous', 'cron']).default('continuous'),
      /** Cron ticks in the business time zone (DST-correct); each takes everything due by then. */
      cron: z.string().min(1).default('20,50 * * * *'),
      /** How due deliveries are fetched: one query, keyset pages, or a timing wheel preloaded from the DB. */
      strategy: z.enum(['all-at-once', 'batched', 'timing-wheel']).default('batched'),
      batchSize: z.int().min(1).max(100_000).default(1000),
      /** Lease on claimed deliveries, renewed while in flight; a dead worker's claims return after it. */
      lease: lease.prefault('60s'),
      /** Continuous trigger: the longest sleep (notices other replicas' changes); also the wheel's refresh period. */
      pollInterval: period.prefault('30s'),
      /** Timing wheel: how far ahead it preloads. */
      lookahead: durationSchema.prefault('2h'),
      /**
       * LINE requests in flight at once (rates are held per channel by the LINE limiter). Reaching
       * LINE's rates takes about (sum of the channels' rates) x (LINE's answer time) in flight: five
       * channels at 2,145/s with 50 ms answers need about 540. 64 took a 50 ms peak ten times longer.
       */
      sendConcurrency: z.int().min(1).max(5000).default(1000),
      /** Send a class's identical messages as multicast where that drains a peak faster. */
      multicast: z.boolean().default(true),
      /** Retry delay while a channel is paused with no known end. */
      pausedRetry: period.prefault('15m'),
    })
    .superRefine((n, ctx) => {
      const problem = cronProblem(n.cron, 'UTC');
      if (problem) ctx.addIssue({ code: 'custom', path: ['cron'], message: `not a cron expression: ${problem}` });
    })
    .prefault({}),
  /** Watching started meetings: attendance, the minimum headcount, ending empty classes early. */
  monitor: z
    .strictObject({
      /** Watching Zoom (attendance, the reconciliation poll, the replay-link catch-up); the headcount check runs either way. */
      enabled: z.boolean().default(true),
      /** Attendance is judged this many minutes after the start. */
      graceMinutes: z.int().min(1).max(120).default(10),
      /**
       * Fewer booked students than the class minimum, checked before provisioning and before the
       * meeting link: `notify-only` reports it; `cancel` deletes the meeting, cancels the deliveries
       * and tells the students (notifications.classCancelled).
       */
      minimumPolicy: z.enum(['notify-only', 'cancel']).default('notify-only'),
      /** End (then delete) a meeting with no student present at grace time. */
      endEmpty: z.boolean().default(true),
      /** How often to look for meetings due a grace check and to reconcile live state with the API. */
      interval: period.prefault('1m'),
      /** Poll GET /meetings/{id} for meetings whose webhooks may be missing (not configured or lost). */
      reconcile: z.boolean().default(true),
      /** Also read live participants from the dashboard API (Business plans and up; Heavy rate limit). */
      dashboardParticipants: z.boolean().default(false),
      /** Zoom webhook timestamps older than this are rejected as replays. */
      webhookTolerance: durationSchema.prefault('5m'),
      /** How often stored webhook events left unprocessed (a crash, another replica) are picked up. */
      eventSweep: period.prefault('30s'),
      /** Largest Zoom webhook body accepted (recording.completed with many files is the largest). */
      webhookBodyLimitBytes: z.int().min(1024).max(10 * 1024 * 1024).default(1024 * 1024),
    })
    .prefault({}),
  /** Saving cloud recordings (licensed hosts with zoom.meeting.autoRecording: cloud). */
  recordings: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** Local directory of the filesystem store. */
      dir: z.string().min(1).default('./data/recordings'),
      /** Zoom file_type values to keep (MP4, M4A, TRANSCRIPT, CHAT, CC, TIMELINE, SUMMARY, …). */
      fileTypes: z.array(z.string().min(1).transform((s) => s.toUpperCase())).min(1).default(['MP4', 'M4A', 'TRANSCRIPT', 'CHAT', 'CC']),
      /** Downloads at once. */
      concurrency: z.int().min(1).max(32).default(2),
      /**
       * How often to ask Zoom for recordings of ended meetings (missed recording.completed events).
       * Each class waiting for one is asked again every interval, so a floor of 1m spares Zoom's rate limit.
       */
      sweepInterval: durationAtLeast(60_000).prefault('30m'),
      /** How far back the sweep looks at ended classes. */
      sweepLookback: durationSchema.prefault('72h'),
      /** Deadline of one download attempt. */
      downloadTimeout: durationSchema.prefault('30m'),
      retry: z
        .strictObject({
          attempts: z.int().min(1).max(50).default(10),
          baseDelay: durationSchema.prefault('30s'),
          maxDelay: durationSchema.prefault('1h'),
        })
        .prefault({}),
      /** Lease on one file's download; renewed while the bytes flow. */
      lease: lease.prefault('2m'),
    })
    .prefault({}),
  /** How long finished bookkeeping is kept (null: for ever). Deliveries and recordings are not pruned. */
  retention: z
    .strictObject({
      /** How often each replica prunes (deleting what another replica just deleted is harmless). */
      interval: durationSchema.refine((d) => d.ms >= 60_000, { error: 'retention.interval must be at least 1m' }).prefault('1h'),
      /** LINE and Zoom webhook events, once applied or set aside (they only deduplicate redeliveries by then). */
      webhookEvents: durationSchema.nullable().prefault('30d'),
      /** The LINE request log: what a support inquiry to LINE needs (request ids) is in it. */
      lineRequests: durationSchema.nullable().prefault('90d'),
      /** Sent or failed multicast chunks and their member sets (kept for resends; LINE forgets a retry key after 24 h). */
      multicastChunks: durationSchema.nullable().prefault('30d'),
      /**
       * Settled deliveries, counted from when each stopped being useful (the class's end; the
       * feedback link's late window). They are the record of what each student was sent, so they
       * are kept for ever unless set; a busy platform adds two rows per booking.
       */
      deliveries: durationSchema.nullable().prefault(null),
    })
    .prefault({}),
  imagemap: z
    .strictObject({
      /** PNG/JPEG/SVG/WebP file the imagemap images are made from (null: the built-in image). */
      source: z
        .string()
        .min(1)
        .superRefine((path, ctx) => {
          // The format, not just the existence: a reload must not be "applied" with a file the runtime cannot use.
          const problem = imageProblem(path);
          if (problem) ctx.addIssue({ code: 'custom', message: problem });
        })
        .nullable()
        .default(null),
    })
    .prefault({}),
}).superRefine(lineConfigProblems);

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/**
 * Keys (or key prefixes) read once at start. A reload that changes them is reported as needing a
 * restart and the running value stays in force.
 */
export const RESTART_KEYS: readonly string[] = [
  'database',
  'http.host',
  'http.port',
  'http.bodyLimitBytes',
  'http.trustProxy',
  'reload.watch',
  'recordings.dir',
];

export function requiresRestart(key: string): boolean {
  return RESTART_KEYS.some((prefix) => key === prefix || key.startsWith(`${prefix}.`));
}

const LOOPBACK = /^(localhost|127(\.\d+){3}|\[::1\])$/;

/** LINE only shows imagemap images from https; a loopback base URL is a development set-up and passes. */
function lineConfigProblems(
  config: { http: { publicBaseUrl: string }; notifications: { meetingUrl: { format: string }; feedbackUrl: { format: string }; replayUrl: { format: string } } },
  ctx: z.core.$RefinementCtx,
): void {
  const url = new URL(config.http.publicBaseUrl);
  if (url.protocol === 'https:' || LOOPBACK.test(url.hostname)) return;
  const { meetingUrl, feedbackUrl, replayUrl } = config.notifications;
  for (const [kind, settings] of Object.entries({ meetingUrl, feedbackUrl, replayUrl })) {
    if (settings.format === 'imagemap') {
      ctx.addIssue({ code: 'custom', path: ['notifications', kind, 'format'], message: 'imagemap needs an https http.publicBaseUrl (LINE loads the images from there); use format: text or an https URL' });
    }
  }
}
