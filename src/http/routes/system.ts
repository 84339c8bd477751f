import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { redactConfig } from '../../config/store.ts';
import { collectStatus } from '../../status.ts';
import type { HttpDeps } from '../app.ts';
import { adminAuth } from '../auth.ts';

export interface Readiness {
  ready: boolean;
  checks: Record<string, string>;
}

const reloadOutcome = z
  .object({
    at: z.string(),
    trigger: z.string(),
    status: z.string(),
    changed: z.array(z.string()),
    restartRequired: z.array(z.string()),
    error: z.string().optional(),
  })
  .nullable();

export function systemRoutes(scope: FastifyInstance, deps: HttpDeps): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();

  app.get('/healthz', { schema: { tags: ['system'], security: [], response: { 200: z.object({ status: z.literal('ok') }) } } }, async () => ({
    status: 'ok' as const,
  }));

  app.get(
    '/readyz',
    { schema: { tags: ['system'], security: [], response: { 200: z.object({ status: z.string(), checks: z.record(z.string(), z.string()) }), 503: z.object({ status: z.string(), checks: z.record(z.string(), z.string()) }) } } },
    async (_request, reply) => {
      const readiness = await deps.readiness();
      return reply.code(readiness.ready ? 200 : 503).send({ status: readiness.ready ? 'ready' : 'not ready', checks: readiness.checks });
    },
  );

  const auth = adminAuth(deps.adminToken, deps.adminExposure);
  app.get(
    '/api/config',
    {
      onRequest: auth,
      schema: {
        tags: ['system'],
        description: 'The configuration in force (secrets redacted) and the outcome of the last reload attempt.',
        response: { 200: z.object({ config: z.unknown(), lastReload: reloadOutcome }) },
      },
    },
    async () => ({ config: redactConfig(deps.config.current()), lastReload: deps.config.lastReload() ?? null }),
  );

  app.get(
    '/api/status',
    { onRequest: auth, schema: { tags: ['system'], description: 'Counts of what the service holds, by state.', response: { 200: z.record(z.string(), z.unknown()) } } },
    async () => ({ ...(await collectStatus(deps.db, deps.clock.now())) }),
  );

  app.post(
    '/api/config/reload',
    {
      onRequest: auth,
      schema: { tags: ['system'], description: 'Re-read the config file now (like SIGHUP).', response: { 200: reloadOutcome.unwrap() } },
    },
    async () => deps.config.reload('api'),
  );
}
