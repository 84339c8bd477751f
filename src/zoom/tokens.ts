import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../clock.ts';
import { describeZoomError, ZoomError } from './errors.ts';

export interface ZoomCredentials {
  accountId: string;
  clientId: string;
  clientSecret: string;
}

/** Refresh this long before expiry, so a token never dies mid-request (Zoom's own SDK uses 60 s). */
const REFRESH_MARGIN_MS = 60_000;

const tokenResponse = z.object({ access_token: z.string().min(1), expires_in: z.number().positive() });

export interface TokenCache {
  get(creds: ZoomCredentials): Promise<string>;
  /** Forget `token` (rejected with 401) unless a newer one already replaced it. */
  invalidate(creds: ZoomCredentials, token: string): void;
}

/**
 * Server-to-Server OAuth tokens, one per Zoom account app, cached until a minute before expiry.
 * Single-flight: concurrent callers needing a token share one token request.
 */
export function createTokenCache(options: { clock: Clock; settings: () => { oauthUrl: string; timeoutMs: number } }): TokenCache {
  const cached = new Map<string, { token: string; expiresAt: number }>();
  const inflight = new Map<string, Promise<string>>();
  // The secret is part of the key: a rotated or mistyped secret must not reuse a token minted with another.
  const keyOf = (c: ZoomCredentials): string => createHash('sha256').update(`${c.accountId}\u0000${c.clientId}\u0000${c.clientSecret}`).digest('base64url');

  const fetchToken = async (creds: ZoomCredentials): Promise<string> => {
    const { oauthUrl, timeoutMs } = options.settings();
    const url = new URL(oauthUrl);
    url.searchParams.set('grant_type', 'account_credentials');
    url.searchParams.set('account_id', creds.accountId);
    const controller = new AbortController();
    const timer = options.clock.setTimeout(() => controller.abort(new Error('timed out')), timeoutMs);
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`${creds.clientId}:${creds.clientSecret}`).toString('base64')}` },
        signal: controller.signal,
      });
      // Read under the same deadline: a body that stalls must not hang every caller sharing this token.
      text = await response.text();
    } catch (error) {
      throw new ZoomError('retryable', `Zoom OAuth token request failed: ${(error as Error).message}`, { cause: error, oauth: true });
    } finally {
      options.clock.clearTimeout(timer);
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = {};
    }
    if (!response.ok) {
      const b = body as { reason?: unknown; error?: unknown; message?: unknown; code?: unknown };
      const message = [b.reason, b.error, b.message].filter((x) => typeof x === 'string').join(': ') || text.slice(0, 200);
      const kind = response.status >= 500 || response.status === 429 ? 'retryable' : 'auth';
      throw new ZoomError(kind, `Zoom OAuth for account ${creds.accountId}: ${describeZoomError(response.status, { message })}`, { status: response.status, oauth: true });
    }
    const parsed = tokenResponse.safeParse(body);
    if (!parsed.success) throw new ZoomError('auth', `Zoom OAuth for account ${creds.accountId} returned no access_token`, { oauth: true });
    cached.set(keyOf(creds), { token: parsed.data.access_token, expiresAt: options.clock.now().getTime() + parsed.data.expires_in * 1000 });
    return parsed.data.access_token;
  };

  return {
    get(creds) {
      const key = keyOf(creds);
      const hit = cached.get(key);
      if (hit && hit.expiresAt - options.clock.now().getTime() > REFRESH_MARGIN_MS) return Promise.resolve(hit.token);
      let pending = inflight.get(key);
      if (!pending) {
        pending = fetchToken(creds).finally(() => inflight.delete(key));
        inflight.set(key, pending);
      }
      return pending;
    },
    invalidate(creds, token) {
      const key = keyOf(creds);
      if (cached.get(key)?.token === token) cached.delete(key);
    },
  };
}
