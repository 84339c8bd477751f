/**
 * Pure retry arithmetic shared by the Zoom and LINE clients: full-jitter exponential backoff
 * (AWS, "Exponential Backoff and Jitter"), bounded, and never shorter than what the server asked for.
 */
export interface BackoffPolicy {
  baseDelayMs: number;
  maxDelayMs: number;
}

/** Delay before retry number `attempt` (1 = first retry): uniform in [0, min(max, base·2^(attempt−1))]. */
export function fullJitterDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}

/** The wait before the next try: the jittered backoff, but at least what the server said (if it said). */
export function retryDelay(policy: BackoffPolicy, attempt: number, serverSaysMs: number | undefined, random?: () => number): number {
  const jittered = fullJitterDelay(policy, attempt, random);
  return serverSaysMs === undefined ? jittered : Math.max(jittered, Math.min(serverSaysMs, policy.maxDelayMs * 4));
}

/**
 * Reads `Retry-After` (seconds or an HTTP/ISO date) or an epoch-seconds reset header into a wait in
 * ms from `now`. Unparseable or past values give undefined.
 */
export function parseRetryAfter(value: string | null | undefined, now: Date): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  const wait = at - now.getTime();
  return wait > 0 ? wait : undefined;
}

/** `X-RateLimit-Reset` style: unix seconds at which the window resets. */
export function parseResetEpoch(value: string | null | undefined, now: Date): number | undefined {
  if (!value || !/^\d+$/.test(value.trim())) return undefined;
  const wait = Number(value.trim()) * 1000 - now.getTime();
  return wait > 0 ? wait : 0;
}
