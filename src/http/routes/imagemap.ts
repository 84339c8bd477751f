import type { FastifyInstance } from 'fastify';
import { IMAGEMAP_HASH } from '../../line/imagemap-render.ts';
import type { LineRuntime } from '../../line/runtime.ts';
import { IMAGEMAP_WIDTHS } from '../../line/messages.ts';
import { body } from '../errors.ts';

/**
 * Imagemap images at `/imagemap/{hash}/{width}`: no file extension (LINE clients append the width
 * to baseUrl and refuse extensions), an explicit Content-Type, and cacheable forever because the
 * bytes behind a path never change.
 */
export function imagemapRoutes(scope: FastifyInstance, line: LineRuntime): void {
  const widths = new Set<number>(IMAGEMAP_WIDTHS);
  scope.get<{ Params: { hash: string; width: string } }>('/imagemap/:hash/:width', { schema: { hide: true } }, async (request, reply) => {
    const { hash } = request.params;
    const width = Number(request.params.width);
    const image = IMAGEMAP_HASH.test(hash) && widths.has(width) ? await line.imagemap.get(hash, width) : undefined;
    if (!image) return reply.code(404).send(body('not_found', 'no such imagemap image'));
    return reply
      .header('content-type', image.contentType)
      .header('cache-control', 'public, max-age=31536000, immutable')
      .header('etag', `"${hash}-${width}"`)
      .send(image.bytes);
  });
}
