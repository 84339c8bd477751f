import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * LINE's webhook signature: base64(HMAC-SHA256(key = channel secret, data = raw body bytes)),
 * sent as `x-line-signature`. Pass the body exactly as sent/received; a string is taken as UTF-8.
 */
export function signLineBody(channelSecret: string, rawBody: string | Uint8Array): string {
  return createHmac('sha256', channelSecret).update(rawBody).digest('base64');
}

/** Constant-time check of an `x-line-signature` value against the raw body. */
export function verifyLineSignature(channelSecret: string, rawBody: string | Uint8Array, signature: string | undefined): boolean {
  if (signature === undefined) return false;
  const expected = Buffer.from(signLineBody(channelSecret, rawBody), 'base64');
  const given = Buffer.from(signature, 'base64');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
