import { invalid } from '../errors.ts';

/** Instants leave the API as ISO-8601 UTC text. */
export const iso = (date: Date): string => date.toISOString();
export const isoOrNull = (date: Date | null): string | null => (date ? date.toISOString() : null);

/** An opaque keyset cursor: the (instant, id) of the last item of a page. */
export function makeCursor(at: Date, id: number): string {
  return Buffer.from(JSON.stringify([at.toISOString(), id])).toString('base64url');
}

/** The (instant, id) a cursor from `makeCursor` holds; a 400 naming `query.cursor` for anything else. */
export function parseCursor(cursor: string): { at: Date; id: number } {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    // A positive safe integer id and a four-digit year, as makeCursor writes them: PostgreSQL
    // refuses 1.5 or 1e20 for a bigint, or a year out of its range (a 500, not a 400).
    if (Array.isArray(value) && typeof value[0] === 'string' && typeof value[1] === 'number' && Number.isSafeInteger(value[1]) && value[1] > 0) {
      const at = new Date(value[0]);
      const year = at.getUTCFullYear();
      if (!Number.isNaN(at.getTime()) && year >= 0 && year <= 9999) return { at, id: value[1] };
    }
  } catch {
    // fall through
  }
  throw invalid('query.cursor', 'is not a cursor this API returned');
}
