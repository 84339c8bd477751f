/**
 * Durations in the config are written as strings like `30s`, `5m`, `48h`, `1d` (or combined: `1h30m`).
 * A parsed Duration keeps its text so the config can be shown and diffed as written.
 */
export interface Duration {
  readonly ms: number;
  readonly text: string;
  toJSON(): string;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;

/** Parses `90s`, `5m`, `1h30m`; returns undefined for anything else. */
export function parseDuration(text: string): Duration | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  let ms = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < trimmed.length) {
    const at = PART.lastIndex;
    const match = PART.exec(trimmed);
    if (!match || match.index !== at) return undefined;
    ms += Number(match[1]) * (UNIT_MS[match[2] ?? ''] ?? Number.NaN);
  }
  if (!Number.isFinite(ms)) return undefined;
  return duration(Math.round(ms), trimmed);
}

export function duration(ms: number, text: string = formatDuration(ms)): Duration {
  return Object.freeze({ ms, text, toJSON: () => text });
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000]] as const) {
    if (ms !== 0 && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
