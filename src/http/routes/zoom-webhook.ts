import type { FastifyInstance } from 'fastify';
import { insertMeetingEvent, webhookSecretTokens } from '../../monitor/events.ts';
import type { ZoomWebhookRuntime } from '../../monitor/event-processor.ts';
import { eventLabel } from '../../monitor/attendance.ts';
import { checkZoomSignature, parseZoomWebhook, urlValidationAnswer } from '../../zoom/webhook.ts';
import type { HttpDeps } from '../app.ts';
import { body } from '../errors.ts';
import { rawBodyScope } from '../raw-body.ts';

/**
 * Zoom webhooks: `POST /webhooks/zoom/{accountId}`, one endpoint per Zoom account (its pool rows
 * share the app's secret token; any of their tokens is accepted, so a rotation never drops events).
 * The raw bytes are checked (signature, timestamp) before anything is parsed; a verified event is
 * stored once per event key and acknowledged at once (Zoom wants an answer within 3 s), then applied
 * by the runtime. A rejected request stores nothing.
 */
export function zoomWebhookRoutes(scope: FastifyInstance, deps: HttpDeps, runtime: ZoomWebhookRuntime): void {
  const { db, box, clock, config, logger, metrics } = deps;

  rawBodyScope(scope, logger, () => config.current().monitor.webhookBodyLimitBytes, 'monitor.webhookBodyLimitBytes');

  const count = (event: string, outcome: string): void => metrics.zoomWebhookEvents.inc({ event: eventLabel(event), outcome });

  scope.post<{ Params: { accountId: string } }>(
    '/webhooks/zoom/:accountId',
    { schema: { tags: ['zoom'], security: [], description: 'Zoom webhook of one Zoom account (signed with its secret token); answered once the event is stored.' } },
    async (request, reply) => {
      const { accountId } = request.params;
      const tokens = await webhookSecretTokens(db, box, accountId);
      if (tokens === null) return reply.code(404).send(body('not_found', `unknown Zoom account "${accountId}"`));
      if (tokens.length === 0) return reply.code(404).send(body('not_found', `Zoom account "${accountId}" has no webhook secret token`));

      const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const check = checkZoomSignature({
        rawBody: raw,
        timestamp: request.headers['x-zm-request-timestamp'],
        signature: request.headers['x-zm-signature'],
        secretTokens: tokens,
        now: clock.now(),
        toleranceMs: config.current().monitor.webhookTolerance.ms,
      });
      if (!check.ok) {
        count('unverified', 'rejected');
        logger.warn({ accountId, reason: check.reason }, 'Zoom webhook with a missing, wrong or stale signature rejected');
        const message = check.reason === 'stale' ? 'x-zm-request-timestamp is outside monitor.webhookTolerance' : 'missing or invalid x-zm-signature';
        return reply.code(401).send(body('unauthorized', message));
      }
      const parsed = parseZoomWebhook(raw);
      if (!parsed.ok) {
        count('unparsed', 'invalid');
        logger.warn({ accountId, problem: parsed.problem }, 'Zoom webhook with a malformed body rejected');
        return reply.code(400).send(body('invalid', parsed.problem));
      }
      const { event } = parsed;
      if (event.event === 'endpoint.url_validation') {
        count(event.event, 'answered');
        return reply.code(200).send(urlValidationAnswer(check.secretToken, event.plainToken));
      }
      const stored = await insertMeetingEvent(db, clock, accountId, parsed);
      if (stored) runtime.wake();
      else count(event.event === 'other' ? event.name : event.event, 'duplicate');
      return reply.code(200).send({ stored: stored ? 1 : 0, duplicates: stored ? 0 : 1 });
    },
  );
}

