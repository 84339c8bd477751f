import { z } from 'zod';
import { parseDuration, type Duration } from './duration.ts';

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
    })
    .prefault({}),
  line: z
    .strictObject({
      apiBaseUrl: httpUrl.default('https://api.line.me'),
      /** Deadline of one LINE API call. */
      requestTimeout: durationSchema.prefault('10s'),
    })
    .prefault({}),
});

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
];

export function requiresRestart(key: string): boolean {
  return RESTART_KEYS.some((prefix) => key === prefix || key.startsWith(`${prefix}.`));
}
