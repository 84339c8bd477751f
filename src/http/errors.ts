import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { isConcurrencyFailure } from '../db/database.ts';
import { DomainError } from '../errors.ts';
import type { Logger } from '../logger.ts';

type ErrorCode = 'invalid' | 'not_found' | 'conflict' | 'unauthorized' | 'too_large' | 'unavailable' | 'internal';

export interface ErrorBody {
  error: ErrorCode;
  message: string;
  field?: string;
}

const STATUS: Record<DomainError['kind'], number> = { invalid: 400, not_found: 404, conflict: 409 };

/**
 * One error handler: validation problems are 400 naming the field, domain errors keep their kind,
 * anything unexpected is a 500 whose details go to the log, not to the caller.
 */
export function errorHandler(logger: Logger) {
  return (error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const first = error.validation[0];
      const where = error.validationContext === 'body' ? '' : `${error.validationContext ?? 'request'}.`;
      const segments = first?.instancePath.split('/').filter(Boolean) ?? [];
      // An unknown key is reported on its parent; name the key itself so the caller sees the typo.
      const unknownKeys = first?.keyword === 'unrecognized_keys' ? first.params.keys : undefined;
      if (Array.isArray(unknownKeys) && typeof unknownKeys[0] === 'string') segments.push(unknownKeys[0]);
      const field = `${where}${segments.join('.')}` || (error.validationContext ?? 'body');
      const message = first?.keyword === 'unrecognized_keys' ? 'unknown field' : (first?.message ?? 'invalid request');
      return reply.code(400).send(body('invalid', `${field}: ${message}`, field));
    }
    if (error instanceof DomainError) {
      return reply.code(STATUS[error.kind]).send(body(error.kind, error.message, error.field));
    }
    const status = 'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : 500;
    if (status === 413) return reply.code(413).send(body('too_large', 'request body is larger than http.bodyLimitBytes'));
    if (status === 415) return reply.code(415).send(body('invalid', 'send the body as application/json'));
    if (status >= 400 && status < 500) {
      // Fastify's own 4xx (malformed JSON, empty body): safe to show.
      return reply.code(status).send(body('invalid', error.message));
    }
    if (isConcurrencyFailure(error)) {
      // Another request wrote the same rows at the same moment; this one's transaction was rolled back whole.
      logger.warn({ err: error, method: request.method, url: request.url }, 'request lost a race with another write; the caller may retry');
      return reply.code(503).header('retry-after', '1').send(body('unavailable', 'another request wrote the same items at the same time; nothing was written, retry'));
    }
    logger.error({ err: error, method: request.method, url: request.url }, 'request failed');
    return reply.code(500).send(body('internal', 'internal error; see the service log'));
  };
}

export function body(error: ErrorCode, message: string, field?: string): ErrorBody {
  return field === undefined ? { error, message } : { error, message, field };
}
