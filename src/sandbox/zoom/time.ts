/** Time helpers: Zoom's date format, UTC days, and local-time-in-zone conversion without a tz library. */

const DAY_MS = 86_400_000;

/** Zoom writes instants as `yyyy-MM-ddTHH:mm:ssZ` (no milliseconds). */
export function zoomTime(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The UTC calendar day, e.g. `2026-01-31`: the key of every daily counter. */
export function utcDay(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** The next 00:00 UTC after `d`: when daily limits reset. */
export function nextUtcMidnight(d: Date): Date {
  return new Date(Math.floor(d.getTime() / DAY_MS) * DAY_MS + DAY_MS);
}

export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Offset (ms) of `tz` from UTC at instant `ms`. */
function zoneOffset(ms: number, tz: string): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(ms));
  const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return asUtc - Math.floor(ms / 1000) * 1000;
}

const LOCAL = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z)?$/;

/**
 * Parses a Zoom `start_time`: GMT when it ends in `Z` (timezone ignored, as Zoom does), otherwise a wall-clock
 * time in `tz`. Returns null when the text is not one of those two forms.
 */
export function parseStartTime(text: string, tz: string): Date | null {
  const m = LOCAL.exec(text);
  if (!m) return null;
  const [, y, mo, d, h, mi, s, z] = m;
  const wall = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (Number.isNaN(wall)) return null;
  const check = new Date(wall);
  if (check.getUTCMonth() !== Number(mo) - 1 || check.getUTCDate() !== Number(d)) return null;
  if (z) return check;
  // Two passes so instants next to a DST switch land on the right side.
  const first = wall - zoneOffset(wall, tz);
  return new Date(wall - zoneOffset(first, tz));
}
