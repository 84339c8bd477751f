import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { body } from './errors.ts';

/**
 * Bearer-token check for the admin API. Tokens are compared as SHA-256 digests so the comparison
 * is constant-time whatever their lengths.
 */
export function adminAuth(token: string | undefined, exposure: () => string | undefined = () => undefined) {
  const expected = token ? digest(token) : undefined;
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (!expected) {
      // No token: allowed only on a loopback-only service (checked at start, and here again, since
      // a reload can give it a public address). A request a proxy forwarded came from elsewhere,
      // whatever the socket says.
      const exposed = exposure();
      if (exposed) {
        await reply.code(401).send(body('unauthorized', `the service can be reached from outside (${exposed}): set SCHEDULER_ADMIN_TOKEN and restart`));
        return;
      }
      if (request.headers.forwarded === undefined && request.headers['x-forwarded-for'] === undefined) return;
      await reply.code(401).send(body('unauthorized', 'a proxied request needs SCHEDULER_ADMIN_TOKEN to be set on the service'));
      return;
    }
    const header = request.headers.authorization ?? '';
    const match = /^Bearer\s+(.+)$/i.exec(header);
    if (!match?.[1] || !timingSafeEqual(digest(match[1].trim()), expected)) {
      await reply
        .code(401)
        .header('www-authenticate', 'Bearer realm="scheduler-admin"')
        .send(body('unauthorized', 'missing or wrong bearer token (SCHEDULER_ADMIN_TOKEN)'));
    }
  };
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** True when `host` only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
