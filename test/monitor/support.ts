import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { Registry } from 'prom-client';
import { deliveryRules } from '../../src/deliveries/settings.ts';
import { createMonitorMetrics } from '../../src/monitor/metrics.ts';
import { createMonitor, type Monitor } from '../../src/monitor/monitor.ts';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { virtualClock, type VirtualClock } from '../../src/clock.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { createConfigStore, type ConfigStore } from '../../src/config/store.ts';
import type { Dialect } from '../../src/db/database.ts';
import { buildHttpApp } from '../../src/http/app.ts';
import type { Logger } from '../../src/logger.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { createZoomWebhookRuntime, type ZoomWebhookRuntime } from '../../src/monitor/event-processor.ts';
import { startZoomEmulator, type ZoomEmulator } from '../../src/sandbox/zoom/index.ts';
import { upsertSchedules } from '../../src/schedules/schedules.ts';
import { createSecretBox, type SecretBox } from '../../src/secrets/secret-box.ts';
import { insertZoomAccount } from '../../src/zoom/accounts.ts';
import { createProvisioner } from '../../src/zoom/provisioner.ts';
import type { ZoomClient } from '../../src/zoom/client.ts';
import { zoomClientFor } from '../../src/zoom/wiring.ts';
import { openTestDatabase, type TestDatabase } from '../support/databases.ts';
import { capturingLogger } from '../support/logs.ts';

/** The Zoom account the school's pool lives in: two licensed hosts sharing one app (one secret token). */
export const SCHOOL = 'acc-school';
export const SCHOOL_SECRET = 'whsec-school-0001';
/** Another Zoom account of the pool, with a secret of its own. */
export const OTHER = 'acc-other';
export const OTHER_SECRET = 'whsec-other-0002';
/** A pool account without a webhook secret token. */
export const SILENT = 'acc-silent';

export const HOSTS = {
  t1: { id: 'user-t1', email: 't1@school.example' },
  t2: { id: 'user-t2', email: 't2@school.example' },
  o1: { id: 'user-o1', email: 'o1@other.example' },
  s1: { id: 'user-s1', email: 's1@silent.example' },
} as const;

export interface RecordingCall {
  accountId: string;
  object: unknown;
  downloadToken: string | null;
}

export interface MonitorHarness {
  database: TestDatabase;
  clock: VirtualClock;
  config: ConfigStore;
  box: SecretBox;
  logger: Logger;
  logs: string[];
  metrics: Metrics;
  em: ZoomEmulator;
  runtime: ZoomWebhookRuntime;
  app: FastifyInstance;
  /** http://127.0.0.1:port */
  base: string;
  /** What `onRecording` was called with. */
  recordings: RecordingCall[];
  /** The Zoom client the service uses (for the monitor). */
  client: ZoomClient;
  /** A class starting `startsAt` with a meeting made by the real provisioner on the emulator. */
  schedule(externalId: string, startsAt?: string, minutes?: number): Promise<{ scheduleId: number; meetingId: number; hostId: string }>;
  /** Waits until the emulator delivered everything and every stored event was applied. */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export interface MonitorHarnessOptions {
  config?: ConfigInput;
  /** Subscribe the emulator to our endpoint (default true). */
  subscribe?: boolean;
  /** Without it, recordings are "off". */
  onRecording?: boolean;
  /** The school account's plan (business has the dashboard API). Default pro. */
  schoolPlan?: 'pro' | 'business';
  /** The event processor's backoff jitter (a fixed one makes retry times exact). */
  random?: () => number;
}

const silent = pino({ level: 'silent' });

/**
 * The real webhook intake and processing on a real database: the Zoom emulator (same virtual clock)
 * posts signed events over HTTP to the real Fastify app listening on 127.0.0.1.
 */
export async function openMonitorHarness(dialect: Dialect, options: MonitorHarnessOptions = {}): Promise<MonitorHarness> {
  const clock = virtualClock('2026-12-01T00:00:00Z');
  const em = await startZoomEmulator({
    clock,
    createLatencyMs: 0,
    accounts: [
      { accountId: SCHOOL, clientId: 'cid-school', clientSecret: 'cs-school', plan: options.schoolPlan ?? 'pro', users: [HOSTS.t1, HOSTS.t2].map((u) => ({ ...u, type: 2 as const })) },
      { accountId: OTHER, clientId: 'cid-other', clientSecret: 'cs-other', plan: 'pro', users: [{ ...HOSTS.o1, type: 2 as const }] },
      { accountId: SILENT, clientId: 'cid-silent', clientSecret: 'cs-silent', plan: 'pro', users: [{ ...HOSTS.s1, type: 2 as const }] },
    ],
  });
  const database = await openTestDatabase(dialect);
  const raw: ConfigInput = {
    ...options.config,
    zoom: { apiBaseUrl: em.apiBaseUrl, oauthUrl: em.oauthUrl, retry: { baseDelay: '0ms' } },
  };
  const config = createConfigStore(parseConfig(raw, 'test'), { env: {} }, clock);
  const box = createSecretBox(randomBytes(32));
  const { logger, logs } = capturingLogger();
  const metrics = createMetrics();

  const rows: Array<{ label: string; accountId: string; clientId: string; clientSecret: string; host: { id: string; email: string }; secret?: string }> = [
    { label: 't1', accountId: SCHOOL, clientId: 'cid-school', clientSecret: 'cs-school', host: HOSTS.t1, secret: SCHOOL_SECRET },
    // The pool's host may be given by email (as the API allows).
    { label: 't2', accountId: SCHOOL, clientId: 'cid-school', clientSecret: 'cs-school', host: { id: HOSTS.t2.email, email: HOSTS.t2.email }, secret: SCHOOL_SECRET },
    { label: 'o1', accountId: OTHER, clientId: 'cid-other', clientSecret: 'cs-other', host: HOSTS.o1, secret: OTHER_SECRET },
    { label: 's1', accountId: SILENT, clientId: 'cid-silent', clientSecret: 'cs-silent', host: HOSTS.s1 },
  ];
  for (const r of rows) {
    await insertZoomAccount(database.db, box, clock, { label: r.label, plan: 'licensed', accountId: r.accountId, clientId: r.clientId, clientSecret: r.clientSecret, hostUserId: r.host.id, webhookSecretToken: r.secret });
  }
  // Only t1 takes classes, so every test meeting is on a known host.
  for (const label of ['t2', 'o1', 's1']) await database.db.updateTable('zoom_accounts').set({ enabled: false }).where('label', '=', label).execute();

  const recordings: RecordingCall[] = [];
  const runtime = createZoomWebhookRuntime({
    db: database.db,
    clock,
    config,
    logger,
    metrics,
    random: options.random,
    ...(options.onRecording
      ? {
          onRecording: async (accountId: string, object: unknown, downloadToken: string | null) => {
            recordings.push({ accountId, object, downloadToken });
            return 'stored: 2 files';
          },
        }
      : {}),
  });
  runtime.start();
  const app = await buildHttpApp({
    db: database.db,
    clock,
    box,
    config,
    logger,
    metrics,
    adminToken: undefined,
    readiness: async () => ({ ready: true, checks: {} }),
    zoomWebhooks: runtime,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  if (options.subscribe !== false) {
    em.webhooks.subscribe({ accountId: SCHOOL, url: `${base}/webhooks/zoom/${SCHOOL}`, secretToken: SCHOOL_SECRET });
    em.webhooks.subscribe({ accountId: OTHER, url: `${base}/webhooks/zoom/${OTHER}`, secretToken: OTHER_SECRET });
  }

  const client = zoomClientFor({ db: database.db, clock, config, metrics });
  const provisioner = createProvisioner({ db: database.db, box, clock, config, client, logger: silent, metrics });

  return {
    database,
    clock,
    config,
    box,
    logger,
    logs,
    metrics,
    em,
    runtime,
    app,
    base,
    recordings,
    client,
    async schedule(externalId, startsAt = '2026-12-01T01:00:00Z', minutes = 50) {
      const start = new Date(startsAt);
      await upsertSchedules(database.db, clock, [
        { externalId, title: `class ${externalId}`, startsAt: start, endsAt: new Date(start.getTime() + minutes * 60_000), trial: false, minParticipants: 0, feedbackUrl: null, cancelled: false },
      ]);
      await provisioner.runPass();
      const row = await database.db.selectFrom('schedules').select(['id', 'meeting_id', 'meeting_state']).where('external_id', '=', externalId).executeTakeFirstOrThrow();
      if (row.meeting_id === null) throw new Error(`no meeting for ${externalId} (${row.meeting_state})`);
      return { scheduleId: row.id, meetingId: Number(row.meeting_id), hostId: HOSTS.t1.id };
    },
    async settle() {
      for (let i = 0; i < 5; i++) {
        await em.webhooks.settle();
        await runtime.idle();
      }
    },
    async close() {
      // Deliveries still in flight (a test that failed before settling) would hold the server open.
      await em.webhooks.settle();
      await app.close();
      await runtime.stop();
      await em.close();
      await database.close();
    },
  };
}

/**
 * A real database error inside the applying transaction, without touching our code: a trigger that
 * rejects every new participant row, as a dropped connection or a serialization failure would
 * (on PostgreSQL it raises SQLSTATE 40001, serialization_failure). Returns the "heal".
 */
export async function breakParticipantInserts(h: MonitorHarness): Promise<() => Promise<void>> {
  const { db, dialect } = h.database;
  if (dialect === 'sqlite') {
    await sql`create trigger fail_participants before insert on meeting_participants begin select raise(abort, 'simulated transient failure'); end`.execute(db);
    return async () => void (await sql`drop trigger fail_participants`.execute(db));
  }
  // Unqualified names land in the test's own schema (first on the search_path; dropped with it).
  await sql.raw(`create function fail_participants() returns trigger language plpgsql as $$ begin raise exception 'simulated transient failure' using errcode = '40001'; end $$`).execute(db);
  await sql`create trigger fail_participants before insert on meeting_participants for each row execute function fail_participants()`.execute(db);
  return async () => void (await sql`drop trigger fail_participants on meeting_participants`.execute(db));
}

/** The live columns of a schedule. */
export async function liveOf(h: MonitorHarness, scheduleId: number) {
  const row = await h.database.db
    .selectFrom('schedules')
    .select(['live_status', 'live_started_at', 'live_ended_at', 'attendance', 'attendance_peak', 'attendance_checked_at'])
    .where('id', '=', scheduleId)
    .executeTakeFirstOrThrow();
  return { status: row.live_status, attendance: row.attendance, peak: row.attendance_peak, startedAt: row.live_started_at, endedAt: row.live_ended_at, checkedAt: row.attendance_checked_at };
}

/** Participants of a schedule, by name. */
export async function participantsOf(h: MonitorHarness, scheduleId: number) {
  const rows = await h.database.db.selectFrom('meeting_participants').selectAll().where('schedule_id', '=', scheduleId).orderBy('user_name').execute();
  return rows.map((r) => ({ name: r.user_name, role: r.role, present: r.present === true || r.present === 1, key: r.participant_key }));
}

export async function countEvents(h: MonitorHarness): Promise<number> {
  const row = await h.database.db.selectFrom('meeting_events').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function eventRows(h: MonitorHarness) {
  return h.database.db.selectFrom('meeting_events').select(['id', 'event', 'event_key', 'meeting_id', 'outcome', 'processed_at', 'error']).orderBy('id').execute();
}

/** The real monitor over a test's parts; its client defaults to one built from the config. */
export function monitorOf(
  parts: { db: TestDatabase['db']; box: SecretBox; clock: VirtualClock; config: ConfigStore; logger: Logger; client?: ZoomClient },
  onDeliveriesChanged?: (ids: number[]) => void,
): Monitor {
  return createMonitor({
    db: parts.db,
    box: parts.box,
    clock: parts.clock,
    config: parts.config,
    client: parts.client ?? zoomClientFor({ db: parts.db, clock: parts.clock, config: parts.config, metrics: createMetrics() }),
    logger: parts.logger,
    metrics: createMonitorMetrics(new Registry()),
    rules: () => deliveryRules(parts.config.current()),
    ...(onDeliveriesChanged ? { onDeliveriesChanged } : {}),
  });
}
