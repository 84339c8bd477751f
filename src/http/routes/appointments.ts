import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { upsertAppointments } from '../../schedules/appointments.ts';
import type { HttpDeps } from '../app.ts';
import { appointmentBody, appointmentBulk, errorBody, externalId, upsertResults } from '../schemas.ts';

export function appointmentRoutes(scope: FastifyInstance, deps: HttpDeps): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { db, clock } = deps;
  const errors = { 400: errorBody, 401: errorBody, 404: errorBody, 409: errorBody };
  const single = z.object({ externalId: z.string(), id: z.number(), outcome: z.string() });

  app.put(
    '/appointments/:externalId',
    {
      schema: {
        tags: ['appointments'],
        description:
          "Create or replace one student's booking of a schedule. An unknown student becomes a member with following status `unknown`. A student has at most one live booking per schedule: a second one is a 409 naming the booking already there.",
        params: z.strictObject({ externalId }),
        body: appointmentBody,
        response: { 200: single, 201: single, ...errors },
      },
    },
    async (request, reply) => {
      const [result] = await upsertAppointments(db, clock, [{ ...request.body, externalId: request.params.externalId }], { ...deps.outbox?.(), oneLiveBookingPerStudent: true });
      if (!result) throw new Error('upsert returned no result');
      return reply.code(result.outcome === 'created' ? 201 : 200).send(result);
    },
  );

  app.post(
    '/appointments/bulk',
    {
      schema: {
        tags: ['appointments'],
        description: 'Create or replace up to 5,000 appointments at once, all or nothing (a second live booking of one student in one schedule, in the batch or stored, is a 409 naming the item and the booking already there).',
        body: appointmentBulk,
        response: { 200: upsertResults, ...errors },
      },
    },
    async (request) => ({ results: await upsertAppointments(db, clock, request.body.items, { ...deps.outbox?.(), oneLiveBookingPerStudent: true }) }),
  );
}
