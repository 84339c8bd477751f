import { validateSignature } from '@line/bot-sdk';
import { z } from 'zod';

/**
 * The pure parts of webhook intake: which channel a request is for, whether LINE signed it, and
 * what the body holds. Unknown event types and fields are kept as sent (they are stored verbatim).
 */

/** `<slug>.<webhookDomain>` → slug (case-insensitive, port already removed); undefined for any other host. */
export function slugFromHost(hostname: string, webhookDomain: string | null): string | undefined {
  if (!webhookDomain) return undefined;
  const host = hostname.toLowerCase().replace(/\.$/, '');
  const suffix = `.${webhookDomain}`;
  if (!host.endsWith(suffix)) return undefined;
  const slug = host.slice(0, -suffix.length);
  return /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(slug) ? slug : undefined;
}

/**
 * LINE's signature: base64(HMAC-SHA256(channel secret, raw body)), compared in constant time by
 * the SDK's own check. The body must be the bytes as received: re-serialised JSON would not match.
 */
export function isSignedByLine(rawBody: Buffer, channelSecret: string, signature: string | string[] | undefined): boolean {
  if (typeof signature !== 'string' || signature === '') return false;
  return validateSignature(rawBody, channelSecret, signature);
}

export const USER_ID = /^U[0-9a-f]{32}$/;

const event = z.looseObject({
  type: z.string().min(1),
  mode: z.string().optional(),
  timestamp: z.number().int().nonnegative(),
  webhookEventId: z.string().min(1).max(100),
  source: z.looseObject({ type: z.string(), userId: z.string().optional() }).optional(),
  deliveryContext: z.looseObject({ isRedelivery: z.boolean() }).optional(),
});

const callback = z.looseObject({
  destination: z.string().min(1),
  events: z.array(event),
});

export type WebhookEvent = z.infer<typeof event>;
export type WebhookBody = z.infer<typeof callback>;

export type ParsedBody = { ok: true; body: WebhookBody } | { ok: false; problem: string };

export function parseWebhookBody(rawBody: Buffer): ParsedBody {
  let json: unknown;
  try {
    json = JSON.parse(rawBody.toString('utf8'));
  } catch {
    return { ok: false, problem: 'the body is not valid JSON' };
  }
  const parsed = callback.safeParse(json);
  if (parsed.success) return { ok: true, body: parsed.data };
  const issue = parsed.error.issues[0];
  return { ok: false, problem: `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}` };
}
