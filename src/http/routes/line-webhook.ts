import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { learnBotUserId } from '../../line/channels.ts';
import { insertLineEvents } from '../../line/events.ts';
import type { LineRuntime } from '../../line/runtime.ts';
import { isSignedByLine, parseWebhookBody, slugFromHost, USER_ID } from '../../line/webhook.ts';
import type { HttpDeps } from '../app.ts';
import { body } from '../errors.ts';
import { rawBodyScope } from '../raw-body.ts';

/**
 * LINE webhooks: `POST /webhooks/line` with the channel in the Host's subdomain
 * (`<slug>.<line.webhookDomain>`), or `POST /webhooks/line/{slug}`. The body is kept as raw bytes
 * for the signature check; events are stored (deduplicated) before the 200, and applied after it.
 * A rejected request stores nothing.
 */
export function lineWebhookRoutes(scope: FastifyInstance, deps: HttpDeps, line: LineRuntime): void {
  const { db, clock, config, logger } = deps;

  // This scope only: the raw bytes, whatever the content type, under the webhook's own (live) limit.
  rawBodyScope(scope, logger, () => config.current().line.webhookBodyLimitBytes, 'line.webhookBodyLimitBytes');

  const handle = async (request: FastifyRequest, reply: FastifyReply, slug: string | undefined): Promise<FastifyReply> => {
    const { webhookDomain } = config.current().line;
    if (slug === undefined) {
      const message = webhookDomain
        ? `no LINE channel in the Host "${request.hostname}" (expected <slug>.${webhookDomain})`
        : 'line.webhookDomain is not set: post to /webhooks/line/{slug}';
      return reply.code(404).send(body('not_found', message));
    }
    let channel = await line.pool.bySlug(slug);
    if (!channel) return reply.code(404).send(body('not_found', `unknown LINE channel "${slug}"`));

    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const signature = request.headers['x-line-signature'];
    let signed = isSignedByLine(raw, channel.channelSecret, signature);
    if (!signed && signature !== undefined) {
      // The secret may have been rotated since the pool loaded (here or on another replica), and LINE
      // does not redeliver by default: look for a change (rate-limited, as for an unknown slug) and
      // try the reloaded secret once.
      await line.pool.recheck();
      const reloaded = await line.pool.bySlug(slug);
      if (reloaded && reloaded.channelSecret !== channel.channelSecret) {
        channel = reloaded;
        signed = isSignedByLine(raw, channel.channelSecret, signature);
      }
    }
    if (!signed) {
      logger.warn({ channel: slug, hasSignature: signature !== undefined }, 'LINE webhook with a missing or wrong signature rejected');
      return reply.code(401).send(body('unauthorized', 'missing or invalid x-line-signature'));
    }
    const parsed = parseWebhookBody(raw);
    if (!parsed.ok) return reply.code(400).send(body('invalid', parsed.problem));
    const { destination, events } = parsed.body;
    if (channel.botUserId !== null && destination !== channel.botUserId) {
      logger.warn({ channel: slug, destination }, 'LINE webhook for another bot rejected (check the channel\'s botUserId)');
      return reply.code(400).send(body('invalid', `destination ${destination} is not this channel's bot`, 'destination'));
    }
    if (channel.botUserId === null && USER_ID.test(destination)) {
      await learnBotUserId(db, clock, channel.id, destination);
      line.pool.patch(channel.id, { botUserId: destination });
    }
    if (events.length === 0) return reply.code(200).send({ stored: 0, duplicates: 0 });
    const result = await insertLineEvents(db, clock, channel.id, events);
    if (result.stored > 0) line.processor.wake();
    return reply.code(200).send(result);
  };

  const schema = { tags: ['line'], security: [], description: 'LINE webhook (signed with the channel secret); answered once the events are stored.' };
  scope.post('/webhooks/line', { schema }, (request, reply) => handle(request, reply, slugFromHost(request.hostname, config.current().line.webhookDomain)));
  scope.post<{ Params: { slug: string } }>('/webhooks/line/:slug', { schema }, (request, reply) => handle(request, reply, request.params.slug.toLowerCase()));
}

