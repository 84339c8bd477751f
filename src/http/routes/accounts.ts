import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { getLineChannel, insertLineChannel, listLineChannels, updateLineChannel, type LineChannel } from '../../line/channels.ts';
import { getZoomAccount, insertZoomAccount, listZoomAccounts, updateZoomAccount, type ZoomAccount } from '../../zoom/accounts.ts';
import { coerceError } from '../../errors.ts';
import type { HttpDeps } from '../app.ts';
import { errorBody, idParams, lineChannelCreate, lineChannelPatch, lineChannelView, zoomAccountCreate, zoomAccountPatch, zoomAccountView } from '../schemas.ts';
import { iso, isoOrNull } from '../views.ts';

/** The two pools: Zoom host accounts and LINE channels. Secrets go in, never come out. */
export function accountRoutes(scope: FastifyInstance, deps: HttpDeps): void {
  const app = scope.withTypeProvider<ZodTypeProvider>();
  const { db, box, clock } = deps;
  const errors = { 400: errorBody, 401: errorBody, 404: errorBody, 409: errorBody };

  app.post(
    '/zoom-accounts',
    { schema: { tags: ['zoom'], body: zoomAccountCreate, response: { 201: zoomAccountView, ...errors } } },
    async (request, reply) => reply.code(201).send(zoomView(await insertZoomAccount(db, box, clock, request.body))),
  );
  app.get('/zoom-accounts', { schema: { tags: ['zoom'], response: { 200: z.object({ items: z.array(zoomAccountView) }), ...errors } } }, async () => ({
    items: (await listZoomAccounts(db)).map(zoomView),
  }));
  app.get('/zoom-accounts/:id', { schema: { tags: ['zoom'], params: idParams, response: { 200: zoomAccountView, ...errors } } }, async (request) =>
    zoomView(await getZoomAccount(db, request.params.id)),
  );
  app.patch(
    '/zoom-accounts/:id',
    { schema: { tags: ['zoom'], params: idParams, body: zoomAccountPatch, response: { 200: zoomAccountView, ...errors } } },
    async (request) => zoomView(await updateZoomAccount(db, box, clock, request.params.id, request.body)),
  );

  app.post(
    '/line-channels',
    { schema: { tags: ['line'], body: lineChannelCreate, response: { 201: lineChannelView, ...errors } } },
    async (request, reply) => reply.code(201).send(lineView(await insertLineChannel(db, box, clock, request.body))),
  );
  app.get('/line-channels', { schema: { tags: ['line'], response: { 200: z.object({ items: z.array(lineChannelView) }), ...errors } } }, async () => ({
    items: (await listLineChannels(db)).map(lineView),
  }));
  app.get('/line-channels/:id', { schema: { tags: ['line'], params: idParams, response: { 200: lineChannelView, ...errors } } }, async (request) =>
    lineView(await getLineChannel(db, request.params.id)),
  );
  app.patch(
    '/line-channels/:id',
    { schema: { tags: ['line'], params: idParams, body: lineChannelPatch, response: { 200: lineChannelView, ...errors } } },
    async (request) => {
      const channel = await updateLineChannel(db, box, clock, request.params.id, request.body);
      // This replica sends with a new access token, and checks webhooks with a new secret, at once
      // (others within line.channelRefresh). The change is saved: a failed reload only waits for that.
      await deps.line?.pool.refresh().catch((error: unknown) => deps.logger.warn({ err: coerceError(error), channel: channel.slug }, 'could not reload the LINE channels after a change; it applies at the next refresh'));
      return lineView(channel);
    },
  );
}

function zoomView(a: ZoomAccount): z.output<typeof zoomAccountView> {
  return { ...a, exhaustedUntil: isoOrNull(a.exhaustedUntil), refusedAt: isoOrNull(a.refusedAt), createdAt: iso(a.createdAt), updatedAt: iso(a.updatedAt) };
}

function lineView(c: LineChannel): z.output<typeof lineChannelView> {
  return { ...c, pausedUntil: isoOrNull(c.pausedUntil), createdAt: iso(c.createdAt), updatedAt: iso(c.updatedAt) };
}
