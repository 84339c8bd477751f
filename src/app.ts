import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Clock } from './clock.ts';
import { ConfigError } from './config/load.ts';
import type { Config } from './config/schema.ts';
import type { ConfigStore } from './config/store.ts';
import { redactUrl } from './config/store.ts';
import { openDatabase, type Database } from './db/database.ts';
import { migrate, pendingMigrations } from './db/migrate.ts';
import { coerceError } from './errors.ts';
import { buildHttpApp } from './http/app.ts';
import { isLoopbackHost } from './http/auth.ts';
import { startLine, type LineRuntime } from './line/runtime.ts';
import type { Logger } from './logger.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { loadSecretKeyBeforeMigrating, verifySecretKey, type LoadedKey } from './secrets/key.ts';
import { SecretKeyError, type SecretBox } from './secrets/secret-box.ts';
import { createProvisioner, type Provisioner } from './zoom/provisioner.ts';
import { createSendPath } from './deliveries/engine.ts';
import { lineDeliverySender } from './deliveries/line-sender.ts';
import { createDeliveryEngine, type DeliveryEngine } from './deliveries/loop.ts';
import { createDeliveryMetrics } from './deliveries/metrics.ts';
import { resyncDriftedDeliveries } from './deliveries/outbox.ts';
import { deliveryRules, engineSettings } from './deliveries/settings.ts';
import { claimSqliteProcessLock } from './db/process-lock.ts';
import { zoomClientFor } from './zoom/wiring.ts';
import { oweReplayLinks } from './deliveries/owed.ts';
import { createZoomWebhookRuntime, type ZoomWebhookRuntime } from './monitor/event-processor.ts';
import { createMonitorMetrics } from './monitor/metrics.ts';
import { createMonitor, type Monitor } from './monitor/monitor.ts';
import { createRecordingMetrics } from './recordings/metrics.ts';
import { createRetention, type Retention } from './retention/runtime.ts';
import { replayUrlFor } from './recordings/replay.ts';
import { createRecordings, type Recordings } from './recordings/runtime.ts';

/** A start-up problem the operator must fix (exit status 2). */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

/** The secret key for this database, checked before migrating; a missing, malformed or wrong one is the operator's to fix (exit 2). */
async function loadStartupKey(env: Record<string, string | undefined>, database: Database): Promise<LoadedKey> {
  try {
    return await loadSecretKeyBeforeMigrating(database, env);
  } catch (error) {
    if (error instanceof SecretKeyError) throw new StartupError(error.message);
    throw error;
  }
}

export interface AppOptions {
  config: ConfigStore;
  env: Record<string, string | undefined>;
  clock: Clock;
  logger: Logger;
  /** Run the background workers (provisioner, …) once listening. Default true; off for one-shot tools. */
  workers?: boolean;
}

export interface App {
  http: FastifyInstance;
  database: Database;
  box: SecretBox;
  metrics: Metrics;
  provisioner: Provisioner;
  line: LineRuntime;
  engine: DeliveryEngine;
  zoomWebhooks: ZoomWebhookRuntime;
  monitor: Monitor;
  recordings: Recordings;
  retention: Retention;
  /** Listen on http.host:http.port and start the workers; resolves to the bound address. */
  listen(): Promise<string>;
  /** Stop taking work, finish or release what is in flight, close the database. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The one composition root: builds every part from the configuration and wires them together.
 * Later parts (provisioner, delivery engine, webhooks) are added here and nowhere else.
 */
export async function createApp(options: AppOptions): Promise<App> {
  const { config, env, clock, logger } = options;
  const initial = config.current();
  const adminToken = env.SCHEDULER_ADMIN_TOKEN || undefined;
  const exposure = reachableFromOutside(initial);
  if (!adminToken && exposure) {
    throw new StartupError(`SCHEDULER_ADMIN_TOKEN is not set: refusing to serve the admin API (join links, students' LINE ids, channel tokens) when ${exposure}`);
  }

  const database = await openDatabase(initial.database.url, { poolSize: initial.database.poolSize });
  const releasers: (() => Promise<void>)[] = [() => database.close()];
  const release = async (): Promise<void> => {
    for (const releaser of releasers.reverse()) {
      await releaser().catch((error: unknown) => logger.error({ err: coerceError(error) }, 'error while stopping'));
    }
    releasers.length = 0;
  };

  try {
    // The key is checked before migrating: a service that refuses to start leaves the database as it was.
    const key = await loadStartupKey(env, database);
    const report = await migrate(database.db, database.dialect);
    logger.info({ database: redactUrl(initial.database.url), dialect: database.dialect, applied: report.applied }, 'database ready');

    if (typeof key.origin === 'object' && 'generatedFile' in key.origin) {
      logger.warn({ keyFile: key.origin.generatedFile }, 'generated a secret key for encrypting credentials at rest; back it up with the database');
    } else if (key.origin === 'ephemeral') {
      logger.warn('in-memory database with no SCHEDULER_SECRET_KEY: using a throw-away secret key');
    }
    const box = await verifySecretKey(database.db, key.key).catch((error: unknown) => {
      throw new StartupError(coerceError(error).message);
    });

    if (!adminToken) logger.warn('SCHEDULER_ADMIN_TOKEN is not set: the admin API is open to this machine only');

    const metrics = createMetrics({ defaultMetrics: true });
    const zoomClient = zoomClientFor({ db: database.db, clock, config, metrics, logger });
    const monitorMetrics = createMonitorMetrics(metrics.registry);
    // Deliveries made outside an upsert (headcount cancellations, replay links) wake the engine, built below.
    const deliveriesChanged = (ids: number[]): void => engine.notifyChanged(ids);
    const provisioner = createProvisioner({
      db: database.db,
      box,
      clock,
      config,
      client: zoomClient,
      logger: logger.child({ part: 'provisioner' }),
      metrics,
      headcount: { policy: () => config.current().monitor.minimumPolicy, rules: () => deliveryRules(config.current()), metrics: monitorMetrics, onDeliveriesChanged: deliveriesChanged },
    });
    const recordingsLogger = logger.child({ part: 'recordings' });
    const recordings = createRecordings({
      db: database.db,
      box,
      clock,
      config,
      client: zoomClient,
      logger: recordingsLogger,
      metrics: createRecordingMetrics(metrics.registry),
      onStored: async (stored) => {
        const replay = config.current().notifications.replayUrl;
        if (!replay.enabled || stored.scheduleId === null) return;
        const ids = await oweReplayLinks(database.db, clock.now(), { scheduleId: stored.scheduleId, lateWindowMs: replay.lateWindow.ms });
        if (ids.length) {
          recordingsLogger.info({ schedule: stored.scheduleId, students: ids.length }, 'replay links owed');
          deliveriesChanged(ids);
        }
      },
    });
    const zoomWebhooks = createZoomWebhookRuntime({ db: database.db, clock, config, logger: logger.child({ part: 'zoom-webhooks' }), metrics, onRecording: recordings.onRecording });
    const monitor = createMonitor({
      db: database.db,
      box,
      clock,
      config,
      client: zoomClient,
      logger: logger.child({ part: 'monitor' }),
      metrics: monitorMetrics,
      rules: () => deliveryRules(config.current()),
      onDeliveriesChanged: deliveriesChanged,
    });

    const line = await startLine({ db: database.db, box, clock, config, logger: logger.child({ part: 'line' }) }).catch((error: unknown) => {
      // An imagemap.source the runtime cannot render is configuration: exit 2, naming the key.
      throw error instanceof ConfigError ? new StartupError(error.message) : error;
    });
    // Released after the HTTP server (no new webhooks) and before the database (LIFO).
    releasers.push(() => line.stop());

    const engineLogger = logger.child({ part: 'deliveries' });
    const settings = () => engineSettings(config.current());
    const sendPath = createSendPath({
      db: database.db,
      clock,
      settings,
      logger: engineLogger,
      metrics: createDeliveryMetrics(metrics.registry),
      sender: lineDeliverySender({ db: database.db, config, send: line.send, imagemap: line.imagemap }),
      replayLink: (recordingId) => replayUrlFor(config.current(), box, recordingId, clock.now()),
    });
    const engine = createDeliveryEngine({ db: database.db, clock, settings, logger: engineLogger, sendPath });

    if (database.sqlitePath) {
      const lock = claimSqliteProcessLock(database.sqlitePath);
      if (lock.others.length) {
        // Each pid and host name as that process sees them (in a container: its own namespace's).
        logger.warn({ otherPid: lock.otherPid, others: lock.others, database: database.sqlitePath }, 'another scheduler process uses this SQLite database: SQLite serves one process; use PostgreSQL for replicas');
      }
      releasers.push(async () => lock.release());
    }

    let stopping = false;
    const http = await buildHttpApp({
      db: database.db,
      clock,
      box,
      config,
      logger,
      metrics,
      adminToken,
      adminExposure: () => reachableFromOutside(config.current()),
      line,
      zoomWebhooks,
      recordings,
      outbox: () => ({ rules: deliveryRules(config.current()), onDeliveriesChanged: (ids) => engine.notifyChanged(ids), onMeetingsChanged: () => provisioner.wake() }),
      readiness: async () => {
        const checks: Record<string, string> = {};
        try {
          await sql`select 1`.execute(database.db);
          checks.database = 'ok';
          const pending = await pendingMigrations(database.db);
          checks.migrations = pending.length ? `pending: ${pending.join(', ')}` : 'ok';
        } catch (error) {
          // The probe is unauthenticated: the driver's text (host names, user) goes to the log only.
          logger.warn({ err: coerceError(error) }, 'readiness: the database check failed');
          checks.database = 'error (see the log)';
        }
        checks.lifecycle = stopping ? 'stopping' : 'ok';
        return { ready: Object.values(checks).every((c) => c === 'ok'), checks };
      },
    });
    // After the HTTP server (LIFO): no event is stored that nothing would apply until the next start.
    releasers.push(() => zoomWebhooks.stop());
    releasers.push(() => http.close());
    // Released before the HTTP server and the database (LIFO): stop claiming, finish, hand back leases.
    releasers.push(() => recordings.stop());
    releasers.push(() => monitor.stop());
    releasers.push(() => provisioner.stop());
    releasers.push(() => engine.stop());
    const retention = createRetention({ db: database.db, clock, config, logger: logger.child({ part: 'retention' }), registry: metrics.registry });
    releasers.push(() => retention.stop());

    /**
     * Waiting deliveries timed by other lead times than the ones in force (a reload, or a restart with
     * new settings) are re-timed; one pass at a time, so a later one cannot be undone by an earlier.
     */
    let retiming: Promise<void> = Promise.resolve();
    const retime = (): Promise<void> => {
      retiming = retiming.then(() =>
        resyncDriftedDeliveries(database.db, clock, () => deliveryRules(config.current()), { stop: () => stopping })
          .then((ids) => {
            if (ids.length) logger.info({ deliveries: ids.length }, 'waiting deliveries re-timed to the lead times in force');
            engine.notifyChanged(ids);
          })
          .catch((error: unknown) => logger.error({ err: coerceError(error) }, 'could not re-time waiting deliveries to the lead times in force')),
      );
      return retiming;
    };
    releasers.push(() => retiming);
    const unsubscribe = config.onChange((next, _previous, changed) => {
      logger.level = next.log.level;
      const exposed = adminToken ? undefined : reachableFromOutside(next);
      if (exposed) logger.error({ exposed }, 'the reloaded configuration makes the service reachable from outside and SCHEDULER_ADMIN_TOKEN is not set: the admin API refuses every request until it is set and the service restarted');
      logger.info({ changed }, 'configuration reloaded');
      // New lead times apply to what is already waiting, not only to new bookings.
      if (changed.some((k) => /^notifications\.(meetingUrl\.leadMinutes|feedbackUrl\.(beforeEndMinutes|lateWindow))$/.test(k))) {
        void retime();
      }
    });
    const unsubscribeReload = config.onReload((outcome) => {
      if (outcome.status === 'rejected') logger.error({ error: outcome.error }, 'configuration reload rejected; the previous configuration stays in force');
      if (outcome.restartRequired.length) logger.warn({ keys: outcome.restartRequired }, 'configuration keys changed that take effect only after a restart');
    });
    releasers.push(async () => {
      unsubscribe();
      unsubscribeReload();
    });

    let stopped: Promise<void> | undefined;
    return {
      http,
      database,
      box,
      metrics,
      provisioner,
      line,
      engine,
      zoomWebhooks,
      monitor,
      recordings,
      retention,
      async listen() {
        const { host, port } = config.current().http;
        const address = await http.listen({ host, port });
        if (options.workers ?? true) {
          provisioner.start();
          line.start();
          zoomWebhooks.start();
          monitor.start();
          recordings.start();
          retention.start();
          // The first round is the catch-up after downtime; it must not hold up listening. Lead times
          // changed while the service was down apply first.
          void retime().then(() => {
            if (stopping) return; // stopped during the re-time: the engine must not start on a closing database
            engine.start().catch((error: unknown) => engineLogger.error({ err: coerceError(error) }, 'delivery engine failed to start'));
          });
        }
        return address;
      },
      stop() {
        stopping = true;
        stopped ??= release();
        return stopped;
      },
    };
  } catch (error) {
    await release();
    throw error;
  }
}

/**
 * Why the service can be reached from beyond this machine, if it can: bound to another address, or
 * behind a reverse proxy or tunnel (it trusts one, or LINE and Zoom are told a public address), where
 * every request arrives from loopback and a loopback bind protects nothing.
 */
function reachableFromOutside(config: Config): string | undefined {
  if (!isLoopbackHost(config.http.host)) return `bound to non-loopback address ${config.http.host}`;
  if (config.http.trustProxy) return 'http.trustProxy is on (a reverse proxy forwards outside requests)';
  const publicHost = new URL(config.http.publicBaseUrl).hostname;
  if (!isLoopbackHost(publicHost)) return `http.publicBaseUrl (${publicHost}) is not a loopback address (a proxy or tunnel forwards outside requests)`;
  if (config.line.webhookDomain) return `line.webhookDomain is set (a proxy forwards LINE's requests)`;
  return undefined;
}
