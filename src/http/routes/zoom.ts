import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { capacityReport } from '../../zoom/capacity.ts';
import type { HttpDeps } from '../app.ts';
import { errorBody } from '../schemas.ts';

const shortfall = z.object({ from: z.string(), to: z.string(), classes: z.number(), hosts: z.number(), missing: z.number() });
const capacityView = z.object({
  from: z.string(),
  to: z.string(),
  hosts: z.object({ licensed: z.number(), basic: z.number() }),
  days: z.array(
    z.object({
      day: z.string(),
      classes: z.number(),
      peakConcurrent: z.number(),
      peakAt: z.string().nullable(),
      creates: z.number(),
      closes: z.number().describe('meetings closed to late students this UTC day (after each class): one host write each'),
      writes: z.number().describe('creates + closes, against createBudget'),
      createBudget: z.number().describe("the enabled hosts' meeting writes per UTC day"),
      shortfalls: z.array(shortfall),
    }),
  ),
  refused: z
    .array(z.object({ id: z.number(), label: z.string(), plan: z.enum(['licensed', 'basic']), reason: z.string(), since: z.string().nullable() }))
    .describe('enabled hosts Zoom refuses for good, left out of the counts above until a call on them succeeds'),
});

export function zoomRoutes(scope: FastifyInstance, deps: HttpDeps): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  app.get(
    '/capacity',
    {
      schema: {
        tags: ['zoom'],
        description: 'Concurrent classes vs hosts that can take them, per-day create budget, and the shortfalls, for the coming days.',
        querystring: z.strictObject({ days: z.coerce.number().int().min(1).max(60).default(7) }),
        response: { 200: capacityView, 400: errorBody, 401: errorBody },
      },
    },
    async (request) => {
      const zoom = deps.config.current().zoom;
      return capacityReport(deps.db, { ...zoom.meeting, basic: zoom.basic }, {
        from: deps.clock.now(),
        days: request.query.days,
        horizonMs: zoom.provisioning.horizon.ms,
        hostWriteCap: zoom.quota.hostMeetingWrites,
      });
    },
  );
}
