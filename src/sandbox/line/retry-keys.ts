/**
 * X-Line-Retry-Key memory: per channel, key → the accepted request, for 24 h from acceptance
 * (after that LINE treats the key as new). Only accepted (2xx) requests are remembered.
 */
import type { Clock } from '../../clock.ts';
import type { SentMessage } from './types.ts';

export const RETRY_KEY_TTL_MS = 24 * 60 * 60 * 1000;

export interface AcceptedRequest {
  requestId: string;
  acceptedAt: number;
  /** Present for push, whose 409 repeats the original `sentMessages`. */
  sentMessages?: SentMessage[];
}

export interface RetryKeyStore {
  lookup(channelId: string, key: string): AcceptedRequest | undefined;
  remember(channelId: string, key: string, accepted: Omit<AcceptedRequest, 'acceptedAt'>): void;
  size(): number;
  reset(): void;
}

export function createRetryKeyStore(clock: Clock, ttlMs = RETRY_KEY_TTL_MS): RetryKeyStore {
  // Map iteration is insertion order, i.e. acceptance order, so expired entries sit at the front.
  const entries = new Map<string, AcceptedRequest>();
  const id = (channelId: string, key: string): string => `${channelId} ${key.toLowerCase()}`;
  const expired = (entry: AcceptedRequest, now: number): boolean => now - entry.acceptedAt >= ttlMs;

  const prune = (now: number): void => {
    for (const [k, entry] of entries) {
      if (!expired(entry, now)) break;
      entries.delete(k);
    }
  };

  return {
    lookup(channelId, key) {
      const now = clock.now().getTime();
      prune(now);
      const entry = entries.get(id(channelId, key));
      return entry && !expired(entry, now) ? entry : undefined;
    },
    remember(channelId, key, accepted) {
      const k = id(channelId, key);
      entries.delete(k);
      entries.set(k, { ...accepted, acceptedAt: clock.now().getTime() });
    },
    size: () => entries.size,
    reset: () => entries.clear(),
  };
}
