/**
 * Webhook event builders (follow, unfollow, message) in LINE's shape: ULID `webhookEventId`,
 * `deliveryContext.isRedelivery`, `mode`, `source {type:'user', userId}`. Timestamps default to
 * the given clock's time.
 */
import { systemClock } from '../../clock.ts';
import type { Clock } from '../../clock.ts';
import { newHex, newMessageId, newQuoteToken, newUlid } from './ids.ts';

export type EventMode = 'active' | 'standby';

/** `userId` is absent when the user never consented to profile access. */
export interface UserSource {
  type: 'user';
  userId?: string;
}

interface EventCommon {
  mode: EventMode;
  timestamp: number;
  source: UserSource;
  webhookEventId: string;
  deliveryContext: { isRedelivery: boolean };
}

export type FollowEvent = EventCommon & { type: 'follow'; replyToken?: string; follow: { isUnblocked: boolean } };
export type UnfollowEvent = EventCommon & { type: 'unfollow' };
export type TextMessageEvent = EventCommon & {
  type: 'message';
  replyToken?: string;
  message: { id: string; type: 'text'; text: string; quoteToken: string };
};
export type WebhookEvent = FollowEvent | UnfollowEvent | TextMessageEvent;

export interface EventOptions {
  /** Event time (ms or Date). Default: the clock's now. Unchanged by redelivery. */
  timestamp?: number | Date;
  /** Default 'active'. Standby events carry no reply token. */
  mode?: EventMode;
  isRedelivery?: boolean;
  webhookEventId?: string;
  replyToken?: string;
}

export interface EventBuilders {
  /** `userId: null` builds a source without userId. */
  followEvent(userId: string | null, options?: EventOptions & { isUnblocked?: boolean }): FollowEvent;
  unfollowEvent(userId: string | null, options?: Omit<EventOptions, 'replyToken'>): UnfollowEvent;
  messageEvent(userId: string | null, text: string, options?: EventOptions): TextMessageEvent;
}

export function createEventBuilders(clock: Clock): EventBuilders {
  const common = (userId: string | null, options: EventOptions = {}): EventCommon => {
    const timestamp = options.timestamp === undefined ? clock.now().getTime() : new Date(options.timestamp).getTime();
    return {
      mode: options.mode ?? 'active',
      timestamp,
      source: userId === null ? { type: 'user' } : { type: 'user', userId },
      webhookEventId: options.webhookEventId ?? newUlid(timestamp),
      deliveryContext: { isRedelivery: options.isRedelivery ?? false },
    };
  };
  const replyToken = (options: EventOptions = {}): { replyToken?: string } =>
    (options.mode ?? 'active') === 'standby' ? {} : { replyToken: options.replyToken ?? newHex(16) };

  return {
    followEvent: (userId, options = {}) => ({
      type: 'follow',
      ...replyToken(options),
      ...common(userId, options),
      follow: { isUnblocked: options.isUnblocked ?? false },
    }),
    unfollowEvent: (userId, options = {}) => ({ type: 'unfollow', ...common(userId, options) }),
    messageEvent: (userId, text, options = {}) => ({
      type: 'message',
      ...replyToken(options),
      ...common(userId, options),
      message: { id: newMessageId(), type: 'text', text, quoteToken: newQuoteToken() },
    }),
  };
}

/** Builders on the system clock; the emulator also exposes builders bound to its own clock (`emulator.events`). */
export const { followEvent, unfollowEvent, messageEvent } = createEventBuilders(systemClock());

/** The same event as LINE redelivers it: identical (same webhookEventId, replyToken, timestamp) but isRedelivery. */
export function asRedelivery<E extends WebhookEvent>(event: E): E {
  return { ...event, deliveryContext: { isRedelivery: true } };
}

/** Newest first: the worst case for a receiver that applies events in arrival order. */
export function newestFirst<E extends object>(events: readonly E[]): E[] {
  const time = (e: E): number => ('timestamp' in e && typeof e.timestamp === 'number' ? e.timestamp : 0);
  return [...events].sort((a, b) => time(b) - time(a));
}
