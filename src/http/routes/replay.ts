import type { FastifyInstance } from 'fastify';
import type { Clock } from '../../clock.ts';
import type { Db } from '../../db/database.ts';
import type { RecordingStore } from '../../recordings/store.ts';
import { checkReplayToken, parseRange } from '../../recordings/replay.ts';
import { recordingById } from '../../recordings/rows.ts';
import type { SecretBox } from '../../secrets/secret-box.ts';
import { body } from '../errors.ts';

/**
 * `GET /replay/{token}`: a stored recording behind a signed, expiring link (no login: students open
 * it from LINE). Supports `Range`, which video players need to seek.
 */
export function replayRoutes(scope: FastifyInstance, deps: { db: Db; box: SecretBox; clock: Clock }, store: RecordingStore): void {
  scope.get<{ Params: { token: string } }>('/replay/:token', { schema: { hide: true } }, async (request, reply) => {
    const check = checkReplayToken(deps.box, request.params.token, deps.clock.now());
    if (!check.ok) return reply.code(check.status).send(body(check.status === 403 ? 'unauthorized' : 'not_found', check.message));
    const rec = await recordingById(deps.db, check.recordingId);
    const size = rec?.state === 'stored' && rec.storageKey ? await store.size(rec.storageKey) : null;
    if (!rec?.storageKey || size === null) return reply.code(404).send(body('not_found', 'this recording is not available (any more)'));
    const range = parseRange(request.headers.range, size);
    if (range === 'unsatisfiable') return reply.code(416).header('content-range', `bytes */${size}`).send(body('invalid', `range not satisfiable: the file has ${size} bytes`));
    const type = rec.contentType ?? 'application/octet-stream';
    reply
      .header('content-type', type)
      .header('accept-ranges', 'bytes')
      .header('cache-control', 'private, max-age=3600')
      .header('content-disposition', `inline; filename="${rec.storageKey.split('/').pop() ?? 'recording'}"`)
      .header('x-content-type-options', 'nosniff');
    if (rec.checksumSha256) reply.header('etag', `"${rec.checksumSha256}"`);
    if (range) {
      return reply
        .code(206)
        .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
        .header('content-length', String(range.end - range.start + 1))
        .send(store.read(rec.storageKey, range));
    }
    return reply.header('content-length', String(size)).send(store.read(rec.storageKey));
  });
}
