import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { listDeliveries, retryDelivery } from '../../deliveries/admin.ts';
import { invalid } from '../../errors.ts';
import type { HttpDeps } from '../app.ts';
import { errorBody, instant } from '../schemas.ts';
import { iso, isoOrNull, makeCursor, parseCursor } from '../views.ts';

const DAY_MS = 86_400_000;
const state = z.enum(['pending', 'sending', 'sent', 'skipped', 'failed', 'expired', 'cancelled']);
const kind = z.enum(['meeting_url', 'feedback_url', 'replay_url', 'class_cancelled']);
const deliveryItem = z.object({
  id: z.number(),
  kind: z.string(),
  state: z.string(),
  dueAt: z.string(),
  notAfter: z.string(),
  attempts: z.number(),
  sentAt: z.string().nullable(),
  latenessMs: z.number().nullable(),
  lastError: z.string().nullable().describe('why it is in this state: what to act on'),
  appointment: z.string().describe('externalId of the booking'),
  schedule: z.string().describe('externalId of the class'),
  channel: z.string().describe('slug of the LINE channel'),
  lineUserId: z.string(),
});

/** What operators look for after an incident: the deliveries in a window by state, and sending one again. */
export function deliveryRoutes(scope: FastifyInstance, deps: HttpDeps): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { db, clock } = deps;
  app.get(
    '/deliveries',
    {
      schema: {
        tags: ['deliveries'],
        description: 'Deliveries due in [from, to) (default: the last 24 hours), oldest first, optionally of one state and kind, with their reasons.',
        querystring: z.strictObject({
          from: instant.optional(),
          to: instant.optional(),
          state: state.optional(),
          kind: kind.optional(),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          cursor: z.string().optional().describe('nextCursor of the previous page'),
        }),
        response: { 200: z.object({ items: z.array(deliveryItem), nextCursor: z.string().nullable() }), 400: errorBody, 401: errorBody },
      },
    },
    async (request) => {
      const q = request.query;
      const to = q.to ?? clock.now();
      const from = q.from ?? new Date(to.getTime() - DAY_MS);
      if (to <= from) throw invalid('query.to', 'must be after from');
      const cursor = q.cursor ? parseCursor(q.cursor) : undefined;
      const items = await listDeliveries(db, { from, to, state: q.state, kind: q.kind, limit: q.limit, after: cursor ? { dueAt: cursor.at, id: cursor.id } : undefined });
      const last = items.at(-1);
      return {
        items: items.map((d) => ({ ...d, dueAt: iso(d.dueAt), notAfter: iso(d.notAfter), sentAt: isoOrNull(d.sentAt) })),
        nextCursor: last && items.length === q.limit ? makeCursor(last.dueAt, last.id) : null,
      };
    },
  );

  app.post(
    '/deliveries/:id/retry',
    {
      schema: {
        tags: ['deliveries'],
        description:
          'Send again a delivery that failed or was skipped, while it is still useful: it is owed now, as a new message (a new LINE retry key). One that was tried may have been accepted by LINE, so it takes force=true (read its reason first). 409 with the reason otherwise, and for one sent, on its way, cancelled or past its window.',
        params: z.strictObject({ id: z.coerce.number().int().min(1) }),
        querystring: z.strictObject({ force: z.enum(['true', 'false']).default('false').describe('send a delivery that was tried before, accepting that LINE may have taken it') }),
        response: { 202: z.object({ id: z.number(), state: z.literal('pending') }), 401: errorBody, 404: errorBody, 409: errorBody },
      },
    },
    async (request, reply) => {
      await retryDelivery(db, clock, request.params.id, { force: request.query.force === 'true' });
      deps.outbox?.().onDeliveriesChanged?.([request.params.id]);
      return reply.code(202).send({ id: request.params.id, state: 'pending' as const });
    },
  );
}
