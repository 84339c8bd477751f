/** `next_page_token`s of list calls: opaque, tied to one listing, valid for 15 minutes (SPEC). */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../clock.ts';

const TOKEN_TTL_MS = 15 * 60_000;

export interface PageCursor {
  /** What the token continues: e.g. `host|type`; a token used for another listing is refused. */
  scope: string;
  offset: number;
}

export interface PageTokens {
  issue(cursor: PageCursor): string;
  /** The cursor, or why it cannot be used. */
  take(token: string, scope: string): PageCursor | 'invalid' | 'expired';
  reset(): void;
}

export function createPageTokens(clock: Clock): PageTokens {
  const tokens = new Map<string, PageCursor & { expiresAt: number }>();
  return {
    issue(cursor) {
      // Zoom's tokens are ~35 alphanumerics; base64url minus '-'/'_' keeps them URL-safe without encoding.
      const token = randomBytes(32).toString('base64url').replace(/[-_]/g, '').slice(0, 35);
      tokens.set(token, { ...cursor, expiresAt: clock.now().getTime() + TOKEN_TTL_MS });
      return token;
    },
    take(token, scope) {
      const entry = tokens.get(token);
      if (!entry || entry.scope !== scope) return 'invalid';
      if (clock.now().getTime() >= entry.expiresAt) return 'expired';
      return { scope: entry.scope, offset: entry.offset };
    },
    reset() {
      tokens.clear();
    },
  };
}
