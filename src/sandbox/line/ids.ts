import { randomBytes, randomInt, randomUUID } from 'node:crypto';

/** LINE user ids (and the bot's own user id): `U` + 32 lowercase hex. */
export const USER_ID_PATTERN = /^U[0-9a-f]{32}$/;

/** LINE documents the retry key as "a hexadecimal UUID"; any version is accepted, case-insensitively. */
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}

export function newUserId(): string {
  return `U${randomBytes(16).toString('hex')}`;
}

/** x-line-request-id values are UUIDs in LINE's responses. */
export function newRequestId(): string {
  return randomUUID();
}

export function newHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}

/** Channel ids are 10-digit numbers in the LINE console. */
export function newChannelId(): string {
  return String(randomInt(1_000_000_000, 2_000_000_000));
}

/** `@` + 8 lowercase alphanumerics, the shape of an OA basic id. */
export function newBasicId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let id = '@';
  for (let i = 0; i < 8; i++) id += alphabet[randomInt(alphabet.length)];
  return id;
}

/**
 * Sent-message ids are 18-digit decimal strings (they exceed 2^53, so they stay strings).
 * A process-wide counter keeps them unique and increasing.
 */
let messageSeq = 0n;
const MESSAGE_ID_BASE = 461_230_966_842_064_897n;
export function newMessageId(): string {
  messageSeq += 1n;
  return String(MESSAGE_ID_BASE + messageSeq * 1_000n + BigInt(randomInt(1_000)));
}

export function newQuoteToken(): string {
  return randomBytes(48).toString('base64url');
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A ULID (26 Crockford base32 chars: 48-bit ms time + 80 random bits), as in `webhookEventId`. */
export function newUlid(timeMs: number): string {
  let time = Math.max(0, Math.floor(timeMs));
  let head = '';
  for (let i = 0; i < 10; i++) {
    head = CROCKFORD.charAt(time % 32) + head;
    time = Math.floor(time / 32);
  }
  const random = randomBytes(16);
  let tail = '';
  for (let i = 0; i < 16; i++) tail += CROCKFORD.charAt((random[i] ?? 0) % 32);
  return head + tail;
}
