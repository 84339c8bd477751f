/**
 * Zoom's rate limits (doc §3): per-account per-category QPS and daily buckets by plan, and the per-host
 * 100/day budget of meeting create+update requests. Windows are fixed and read from the injected clock:
 * QPS per wall-clock second (per minute for Resource-intensive), daily per UTC day.
 */
import type { Clock } from '../../clock.ts';
import { type Reply, zoomError } from './http.ts';
import { nextUtcMidnight, utcDay, zoomTime } from './time.ts';
import type { AccountRecord, Category, Plan, RateLimitOverrides } from './types.ts';

interface Window {
  limit: number;
  ms: number;
}

const PER_WINDOW: Record<Plan, Record<Category, Window>> = {
  basic: { Light: w(4), Medium: w(2), Heavy: w(1), 'Resource-intensive': { limit: 10, ms: 60_000 } },
  pro: { Light: w(30), Medium: w(20), Heavy: w(10), 'Resource-intensive': { limit: 10, ms: 60_000 } },
  business: { Light: w(80), Medium: w(60), Heavy: w(40), 'Resource-intensive': { limit: 20, ms: 60_000 } },
};

function w(limit: number): Window {
  return { limit, ms: 1000 };
}

/** Daily caps. Free accounts cap each category; paid ones only Heavy and Resource-intensive, together. */
function dailyBucket(plan: Plan, category: Category): { key: string; limit: number | null } {
  if (plan === 'basic') {
    const limits: Record<Category, number> = { Light: 6000, Medium: 2000, Heavy: 1000, 'Resource-intensive': 30_000 };
    return { key: category, limit: limits[category] };
  }
  if (category === 'Heavy' || category === 'Resource-intensive') {
    return { key: 'Heavy+Resource-intensive', limit: plan === 'pro' ? 30_000 : 60_000 };
  }
  return { key: category, limit: null };
}

export interface RateLimitSettings {
  /** QPS and account-daily limits on (the per-host budget is separate: `hostDailyLimit`). */
  enabled: boolean;
  overrides: RateLimitOverrides | undefined;
  /** Create+update requests per host per UTC day (Infinity = off). */
  hostDailyLimit: number;
  /** Zoom documents HTTP 300 for the per-host limit, but 429 is what is seen in practice. */
  hostDailyStatus: 429 | 300;
}

export interface RateCounters {
  accountDaily: Array<{ accountId: string; day: string; bucket: string; used: number; limit: number | null }>;
  hostDaily: Array<{ hostId: string; accountId: string; day: string; used: number; limit: number | null }>;
  rejected: { qps: number; daily: number; hostDaily: number };
}

export interface RateLimiter {
  /** Counts one request of `category` against the account; a reply when it must be refused. */
  admit(account: AccountRecord, category: Category): Reply | undefined;
  /** Refusal when the host has no create/update budget left today. */
  checkHostWrite(hostId: string, category: Category): Reply | undefined;
  /** Spends one unit of the host's budget; returns headers showing what is left. */
  spendHostWrite(hostId: string, accountId: string): Record<string, string>;
  counters(): RateCounters;
  reset(): void;
}

export function createRateLimiter(clock: Clock, settings: RateLimitSettings): RateLimiter {
  const windows = new Map<string, { start: number; count: number }>();
  const daily = new Map<string, { accountId: string; bucket: string; limit: number | null; day: string; used: number }>();
  const hosts = new Map<string, { accountId: string; day: string; used: number }>();
  const rejected = { qps: 0, daily: 0, hostDaily: 0 };

  const windowFor = (account: AccountRecord, category: Category): Window => {
    const base = PER_WINDOW[account.plan][category];
    const override = account.rateLimits?.perSecond?.[category] ?? settings.overrides?.perSecond?.[category];
    return override === undefined ? base : { ...base, limit: override };
  };

  const bucketFor = (account: AccountRecord, category: Category): { key: string; limit: number | null } => {
    const base = dailyBucket(account.plan, category);
    const accountOverride = account.rateLimits?.daily;
    const override = accountOverride && category in accountOverride ? accountOverride[category] : settings.overrides?.daily?.[category];
    return override === undefined ? base : { ...base, limit: override };
  };

  const hostUsed = (hostId: string, day: string): number => {
    const h = hosts.get(hostId);
    return h && h.day === day ? h.used : 0;
  };

  return {
    admit(account, category) {
      const now = clock.now();
      const ms = now.getTime();
      const win = windowFor(account, category);
      const wKey = `${account.accountId}|${category}`;
      const start = Math.floor(ms / win.ms) * win.ms;
      const current = windows.get(wKey);
      const slot = current && current.start === start ? current : { start, count: 0 };
      windows.set(wKey, slot);
      if (settings.enabled && slot.count >= win.limit) {
        rejected.qps++;
        return zoomError(429, 429, 'You have reached the maximum per-second rate limit for this API. Try again later.', {
          'X-RateLimit-Category': category,
          'X-RateLimit-Type': 'QPS',
          'X-RateLimit-Limit': String(win.limit),
          'X-RateLimit-Remaining': '0',
          'X-RateLimit-Reset': String(Math.ceil((start + win.ms) / 1000)),
        });
      }
      slot.count++;

      const bucket = bucketFor(account, category);
      const day = utcDay(now);
      const dKey = `${account.accountId}|${bucket.key}`;
      const prev = daily.get(dKey);
      const entry = prev && prev.day === day ? prev : { accountId: account.accountId, bucket: bucket.key, limit: bucket.limit, day, used: 0 };
      daily.set(dKey, entry);
      if (settings.enabled && bucket.limit !== null && entry.used >= bucket.limit) {
        rejected.daily++;
        return zoomError(
          429,
          429,
          'You have reached the maximum daily rate limit for this API. Refer to the response header for details on when you can make another request.',
          {
            'X-RateLimit-Category': category,
            'X-RateLimit-Type': 'Daily-limit',
            'X-RateLimit-Limit': String(bucket.limit),
            'X-RateLimit-Remaining': '0',
            'Retry-After': zoomTime(nextUtcMidnight(now)),
          },
        );
      }
      entry.used++;
      return undefined;
    },

    checkHostWrite(hostId, category) {
      const now = clock.now();
      const limit = settings.hostDailyLimit;
      if (hostUsed(hostId, utcDay(now)) < limit) return undefined;
      rejected.hostDaily++;
      if (settings.hostDailyStatus === 300) {
        return zoomError(300, 300, `A maximum of ${limit} meetings can be created/updated for a single user in one day.`);
      }
      // Real responses for this limit sometimes lack Type/Retry-After (doc §3); clients must key on the message.
      return zoomError(
        429,
        429,
        `You have exceeded the daily rate limit (${limit}) of Meeting Create/Update API requests permitted for this particular user. You may resume these requests at GMT 00:00:00.`,
        {
          'X-RateLimit-Category': category,
          'X-RateLimit-Type': 'Daily-limit',
          'X-RateLimit-Limit': String(limit),
          'X-RateLimit-Remaining': '0',
          'Retry-After': zoomTime(nextUtcMidnight(now)),
        },
      );
    },

    spendHostWrite(hostId, accountId) {
      const day = utcDay(clock.now());
      const used = hostUsed(hostId, day) + 1;
      hosts.set(hostId, { accountId, day, used });
      const limit = settings.hostDailyLimit;
      const headers: Record<string, string> = {};
      if (Number.isFinite(limit)) {
        headers['X-RateLimit-Limit'] = String(limit);
        headers['X-RateLimit-Remaining'] = String(Math.max(0, limit - used));
      }
      return headers;
    },

    counters() {
      const today = utcDay(clock.now());
      return {
        accountDaily: [...daily.values()]
          .filter((d) => d.day === today)
          .map((d) => ({ accountId: d.accountId, day: d.day, bucket: d.bucket, used: d.used, limit: d.limit })),
        hostDaily: [...hosts.entries()]
          .filter(([, h]) => h.day === today)
          .map(([hostId, h]) => ({
            hostId,
            accountId: h.accountId,
            day: h.day,
            used: h.used,
            limit: Number.isFinite(settings.hostDailyLimit) ? settings.hostDailyLimit : null,
          })),
        rejected: { ...rejected },
      };
    },

    reset() {
      windows.clear();
      daily.clear();
      hosts.clear();
      rejected.qps = 0;
      rejected.daily = 0;
      rejected.hostDaily = 0;
    },
  };
}
