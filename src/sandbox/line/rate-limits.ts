/**
 * Per-channel, per-endpoint token buckets, as LINE describes its limits ("token bucket; the count is
 * not reset at fixed intervals"). Capacity equals the per-second rate, i.e. one second of burst.
 */
import type { Clock } from '../../clock.ts';
import type { LineEndpoint } from './types.ts';

/** LINE's documented limits in requests per second (docs/line-api.md §1.1, "Other API endpoints" 2,000/s). */
export const DEFAULT_RATE_LIMITS: Readonly<Record<LineEndpoint, number>> = {
  push: 2000,
  multicast: 200,
  reply: 2000,
  validatePush: 2000,
  quota: 2000,
  quotaConsumption: 2000,
  profile: 2000,
  botInfo: 2000,
};

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export interface RateLimiter {
  /** Takes one token; false when the bucket is empty. */
  take(channelId: string, endpoint: LineEndpoint): boolean;
  reset(): void;
}

export function createRateLimiter(clock: Clock, overrides: Partial<Record<LineEndpoint, number>> = {}): RateLimiter {
  const limits: Record<LineEndpoint, number> = { ...DEFAULT_RATE_LIMITS, ...overrides };
  const buckets = new Map<string, Bucket>();
  return {
    take(channelId, endpoint) {
      const perSecond = limits[endpoint];
      if (perSecond === Infinity) return true;
      const now = clock.now().getTime();
      const key = `${channelId} ${endpoint}`;
      const bucket = buckets.get(key) ?? { tokens: perSecond, updatedAt: now };
      // A clock moved backwards must not mint tokens.
      const elapsed = Math.max(0, now - bucket.updatedAt);
      bucket.tokens = Math.min(perSecond, bucket.tokens + (elapsed * perSecond) / 1000);
      bucket.updatedAt = now;
      buckets.set(key, bucket);
      if (bucket.tokens < 1) return false;
      bucket.tokens -= 1;
      return true;
    },
    reset: () => buckets.clear(),
  };
}
