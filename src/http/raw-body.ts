import type { FastifyError, FastifyInstance } from 'fastify';
import type { Logger } from '../logger.ts';
import { body, errorHandler } from './errors.ts';

/**
 * A webhook scope: every body is kept as raw bytes (signatures are over the exact bytes), whatever
 * the content type, under a limit read per request (hot-reloadable); a larger body is a 413 and the
 * connection is closed. `limitKey` names the setting in the error message.
 */
export function rawBodyScope(scope: FastifyInstance, logger: Logger, limit: () => number, limitKey: string): void {
  const tooLarge = (bytes: number): Error & { statusCode: number } =>
    Object.assign(new Error(`webhook body is larger than ${limitKey} (${bytes})`), { statusCode: 413 });
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', (request, payload, done) => {
    const max = limit();
    if (Number(request.headers['content-length'] ?? 0) > max) {
      done(tooLarge(max));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let finished = false;
    payload.on('data', (chunk: Buffer) => {
      if (finished) return;
      size += chunk.length;
      if (size > max) {
        finished = true;
        done(tooLarge(max));
        return;
      }
      chunks.push(chunk);
    });
    payload.on('end', () => {
      if (!finished) done(null, Buffer.concat(chunks));
    });
    payload.on('error', (error) => {
      if (!finished) done(error);
      finished = true;
    });
  });
  const shared = errorHandler(logger);
  scope.setErrorHandler((error: FastifyError | Error, request, reply) => {
    if ('statusCode' in error && error.statusCode === 413) {
      return reply.code(413).header('connection', 'close').send(body('too_large', error.message));
    }
    return shared(error, request, reply);
  });
}
