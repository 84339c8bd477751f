import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { retryRecording } from '../../recordings/rows.ts';
import type { HttpDeps } from '../app.ts';
import { errorBody } from '../schemas.ts';

/** A failed recording comes back only through this (the sweep skips classes that have rows). */
export function recordingRoutes(scope: FastifyInstance, deps: HttpDeps): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  app.post(
    '/recordings/:id/retry',
    {
      schema: {
        tags: ['recordings'],
        description: 'Send a failed recording back to be downloaded (attempts from 0, resumed where it stopped); the downloader takes it within a minute. 409 with the reason for one not failed.',
        params: z.strictObject({ id: z.coerce.number().int().min(1) }),
        response: { 202: z.object({ id: z.number(), state: z.literal('pending') }), 401: errorBody, 404: errorBody, 409: errorBody },
      },
    },
    async (request, reply) => {
      await retryRecording(deps.db, deps.clock.now(), request.params.id);
      return reply.code(202).send({ id: request.params.id, state: 'pending' as const });
    },
  );
}
