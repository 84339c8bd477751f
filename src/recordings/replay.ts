import type { Config } from '../config/schema.ts';
import type { SecretBox } from '../secrets/secret-box.ts';

/** Signing purpose of replay links: a signature made for anything else never opens a recording. */
const PURPOSE = 'replay-link';

export type ReplayCheck = { ok: true; recordingId: number; expiresAt: Date } | { ok: false; status: 403 | 404 | 410; message: string };

/** A token naming the recording and its expiry (unix seconds), signed: `<id>.<expires>.<hmac>`. */
export function replayToken(box: SecretBox, recordingId: number, expiresAt: Date): string {
  const body = `${recordingId}.${Math.ceil(expiresAt.getTime() / 1000)}`;
  return `${body}.${box.sign(body, PURPOSE)}`;
}

/** The link students get: `${http.publicBaseUrl}/replay/<token>`, working for notifications.replayUrl.linkTtl. */
export function replayUrlFor(config: Config, box: SecretBox, recordingId: number, now: Date): string {
  const expiresAt = new Date(now.getTime() + config.notifications.replayUrl.linkTtl.ms);
  return `${config.http.publicBaseUrl.replace(/\/$/, '')}/replay/${replayToken(box, recordingId, expiresAt)}`;
}

/** Checks a token: malformed → 404, bad signature → 403, past its expiry → 410 (checked after the signature). */
export function checkReplayToken(box: SecretBox, token: string, now: Date): ReplayCheck {
  const m = /^(\d{1,15})\.(\d{1,12})\.([A-Za-z0-9_-]{20,100})$/.exec(token);
  if (!m) return { ok: false, status: 404, message: 'no such replay link' };
  const [, id = '', expires = '', signature = ''] = m;
  if (!box.verify(`${id}.${expires}`, signature, PURPOSE)) {
    return { ok: false, status: 403, message: 'this replay link is not valid (it was altered, or made by another installation)' };
  }
  const expiresAt = new Date(Number(expires) * 1000);
  if (expiresAt.getTime() <= now.getTime()) return { ok: false, status: 410, message: `this replay link expired at ${expiresAt.toISOString()}; ask for a new one` };
  return { ok: true, recordingId: Number(id), expiresAt };
}

/**
 * Parses a `Range` header against a file of `size` bytes: one range only (players ask for one).
 * Returns null for no/ignorable Range (serve everything), 'unsatisfiable' for a 416.
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | null {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null; // multi-range or garbage: RFC 9110 lets us ignore it
  const [, a = '', b = ''] = m;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0) return 'unsatisfiable';
    return size === 0 ? 'unsatisfiable' : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}
