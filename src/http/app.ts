import fastifySwagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Clock } from '../clock.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Db } from '../db/database.ts';
import type { LineRuntime } from '../line/runtime.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import type { ZoomWebhookRuntime } from '../monitor/event-processor.ts';
import type { OutboxOptions } from '../schedules/schedules.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { adminAuth } from './auth.ts';
import { errorHandler } from './errors.ts';
import { EXTERNAL_ID_MAX } from './schemas.ts';
import { accountRoutes } from './routes/accounts.ts';
import { appointmentRoutes } from './routes/appointments.ts';
import { imagemapRoutes } from './routes/imagemap.ts';
import { lineWebhookRoutes } from './routes/line-webhook.ts';
import { scheduleRoutes } from './routes/schedules.ts';
import { systemRoutes, type Readiness } from './routes/system.ts';
import { zoomRoutes } from './routes/zoom.ts';
import { deliveryRoutes } from './routes/deliveries.ts';
import { recordingRoutes } from './routes/recordings.ts';
import { zoomWebhookRoutes } from './routes/zoom-webhook.ts';
import { replayRoutes } from './routes/replay.ts';
import type { RecordingStore } from '../recordings/store.ts';

/** What the HTTP layer needs; it holds no business logic of its own. */
export interface HttpDeps {
  db: Db;
  clock: Clock;
  box: SecretBox;
  config: ConfigStore;
  logger: Logger;
  metrics: Metrics;
  /** Due-time rules and the change listener for the outbox (the delivery engine); defaults when absent. */
  outbox?: () => OutboxOptions;
  /** SCHEDULER_ADMIN_TOKEN; without it the admin API is open (loopback only, checked at start). */
  adminToken: string | undefined;
  /** Without a token: why the service can be reached from outside now, if it can (the admin API then refuses everything). */
  adminExposure?: () => string | undefined;
  readiness(): Promise<Readiness>;
  /** The LINE side (webhooks, imagemap images); without it those routes are not served. */
  line?: LineRuntime | undefined;
  /** Zoom webhook event processing; without it /webhooks/zoom/{accountId} is not served. */
  zoomWebhooks?: ZoomWebhookRuntime | undefined;
  /** Stored recordings; without them /replay/{token} is not served. */
  recordings?: { store: RecordingStore } | undefined;
}

/** Builds the Fastify app without listening, so tests drive it through `inject`. */
export async function buildHttpApp(deps: HttpDeps): Promise<FastifyInstance> {
  const config = deps.config.current();
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Per-request info lines would drown the log at webhook rates; failures are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.http.bodyLimitBytes,
    // The router answers a longer path parameter 414 in its own format before any schema sees it;
    // its default (100) is below the longest external id (EXTERNAL_ID_MAX code points, as many as
    // twice that in UTF-16 units). Above that, a too-long id gets the schema's 400 naming the field.
    routerOptions: { maxParamLength: 4 * EXTERNAL_ID_MAX },
    trustProxy: config.http.trustProxy,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler(deps.logger));

  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'Scheduler admin API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  await app.register(async (scope) => {
    systemRoutes(scope, deps);
  });
  await app.register(
    async (api) => {
      api.addHook('onRequest', adminAuth(deps.adminToken, deps.adminExposure));
      accountRoutes(api, deps);
      scheduleRoutes(api, deps);
      appointmentRoutes(api, deps);
      zoomRoutes(api, deps);
      deliveryRoutes(api, deps);
      recordingRoutes(api, deps);
    },
    { prefix: '/api' },
  );
  const line = deps.line;
  if (line) {
    // Own scopes: the webhook routes replace the body parsers with a raw one.
    await app.register(async (scope) => lineWebhookRoutes(scope, deps, line));
    await app.register(async (scope) => imagemapRoutes(scope, line));
  }
  const zoomWebhooks = deps.zoomWebhooks;
  if (zoomWebhooks) await app.register(async (scope) => zoomWebhookRoutes(scope, deps, zoomWebhooks));
  const recordings = deps.recordings;
  if (recordings) await app.register(async (scope) => replayRoutes(scope, deps, recordings.store));
  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());
  // Prometheus text format; behind the admin token when one is set (Prometheus can send it).
  app.get('/metrics', { schema: { hide: true }, onRequest: adminAuth(deps.adminToken, deps.adminExposure) }, async (_request, reply) =>
    reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
  );
  return app;
}
