/** Public types of the LINE emulator. */
import type { Clock } from '../../clock.ts';
import type { LineMessage } from './validate.ts';

export type { LineMessage } from './validate.ts';

/** Endpoints the emulator serves; rate limits are kept per channel and per endpoint. */
export type LineEndpoint =
  | 'push'
  | 'multicast'
  | 'reply'
  | 'validatePush'
  | 'quota'
  | 'quotaConsumption'
  | 'profile'
  | 'botInfo';

/** `'none'` = no monthly limit (GET /quota answers `{type:"none"}`). */
export type MonthlyQuota = number | 'none';

export interface LineUserInput {
  userId: string;
  displayName?: string;
  pictureUrl?: string;
  statusMessage?: string;
  language?: string;
  /** Default true. False = the user blocked the OA. */
  following?: boolean;
}

export interface LineChannelInput {
  /** Generated (10 digits) when absent. */
  channelId?: string;
  /** Generated (32 hex) when absent. */
  channelSecret?: string;
  /** Bearer token that identifies the channel. Generated when absent. */
  accessToken?: string;
  /** `U` + 32 hex; generated when absent. Also the webhook `destination`. */
  botUserId?: string;
  botDisplayName?: string;
  basicId?: string;
  /** Default `'none'`. */
  monthlyQuota?: MonthlyQuota;
  users?: LineUserInput[];
}

export interface LineChannel {
  channelId: string;
  channelSecret: string;
  accessToken: string;
  botUserId: string;
  botDisplayName: string;
  basicId: string;
  monthlyQuota: MonthlyQuota;
}

/**
 * What to do with a well-formed user id the channel has never seen:
 * - `ignore` (default): 200, nothing delivered (LINE's "silent non-delivery").
 * - `reject`: 400 "Failed to send messages" (the other outcome LINE's docs describe).
 * - `deliver`: treat as a follower (handy for benchmarks with synthetic users).
 */
export type UnknownUserPolicy = 'ignore' | 'reject' | 'deliver';

export interface LineEmulatorOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Default systemClock(). Drives retry-key expiry, rate buckets, quota months, latency, timestamps. */
  clock?: Clock;
  channels?: LineChannelInput[];
  /** Requests per second per channel, by endpoint. `Infinity` disables a limit. */
  rateLimits?: Partial<Record<LineEndpoint, number>>;
  /** Added (on the clock) before every LINE API response. Default 0. */
  latencyMs?: number;
  unknownUsers?: UnknownUserPolicy;
  /** Default 24 h. */
  retryKeyTtlMs?: number;
  /** How long a reply token from a sent webhook event stays usable. Default 60 s. */
  replyTokenTtlMs?: number;
}

export interface SentMessage {
  id: string;
  quoteToken?: string;
}

export type DeliveryEndpoint = 'push' | 'multicast' | 'reply';

/** One delivery to one user (a multicast yields one record per recipient). */
export interface ReceivedMessage {
  channelId: string;
  to: string;
  messages: LineMessage[];
  requestId: string;
  retryKey: string | null;
  at: Date;
  endpoint: DeliveryEndpoint;
  notificationDisabled: boolean;
  /** Push only: the ids returned in `sentMessages`. */
  sentMessages?: SentMessage[];
}

export type RequestOutcome = 'response' | 'dropped' | 'timeout';

export interface RequestLogEntry {
  requestId: string;
  at: Date;
  method: string;
  path: string;
  endpoint: LineEndpoint | null;
  channelId: string | null;
  retryKey: string | null;
  /** null when no response was sent (dropped or held). */
  status: number | null;
  outcome: RequestOutcome;
  /** Kind of injected fault, if one applied. */
  fault: string | null;
  /** LINE's `message` for error responses. */
  errorMessage: string | null;
  acceptedRequestId: string | null;
  body: unknown;
}

export interface LineEmulatorCounters {
  requests: number;
  byEndpoint: Record<string, number>;
  byStatus: Record<string, number>;
  /** Requests accepted with 2xx by push/multicast/reply. */
  accepted: number;
  /** Recipients that got a delivery (each multicast recipient counts). */
  delivered: number;
  /** Recipients of accepted sends who got nothing (blocked or unknown users). */
  suppressed: number;
  conflicts: number;
  rateLimited: number;
  monthlyLimited: number;
  faults: number;
  webhooksSent: number;
}
