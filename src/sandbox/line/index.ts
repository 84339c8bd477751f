/**
 * LINE Messaging API emulator for tests, the demo and benchmarks: LINE's real root paths over
 * HTTP, per-channel tokens, retry keys, rate limits, monthly quota, fault injection, a record of
 * what each user received, and a signed webhook sender. Control routes live under /_emulator/.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../../clock.ts';
import type { Clock } from '../../clock.ts';
import { handleApi } from './api.ts';
import type { ApiContext } from './api.ts';
import { createChannelRegistry } from './channels.ts';
import { handleControl } from './control.ts';
import { errorBody, MESSAGES } from './errors.ts';
import { createEventBuilders } from './events.ts';
import type { EventBuilders } from './events.ts';
import { createFaults } from './faults.ts';
import type { FaultRegistry } from './faults.ts';
import { sendJson } from './http-util.ts';
import { newRequestId } from './ids.ts';
import { createRateLimiter } from './rate-limits.ts';
import { clearRecords, createRecords, filterReceived } from './records.ts';
import { createRetryKeyStore, RETRY_KEY_TTL_MS } from './retry-keys.ts';
import { createWebhookSender } from './webhooks.ts';
import type { WebhookSender } from './webhooks.ts';
import type {
  LineChannel,
  LineChannelInput,
  LineEmulatorCounters,
  LineEmulatorOptions,
  LineUserInput,
  MonthlyQuota,
  ReceivedMessage,
  RequestLogEntry,
} from './types.ts';

export type * from './types.ts';
export type { FaultAction, FaultHandle, FaultInfo, FaultRegistry, FaultRule } from './faults.ts';
export type { EventBuilders, EventMode, EventOptions, FollowEvent, TextMessageEvent, UnfollowEvent, UserSource, WebhookEvent } from './events.ts';
export type { JsonEscapes, WebhookResult, WebhookSender, WebhookSendOptions } from './webhooks.ts';
export type { LineErrorBody, LineErrorDetail } from './errors.ts';
export type { ImagemapMessage, OtherMessage, TextMessage } from './validate.ts';
export { asRedelivery, createEventBuilders, followEvent, messageEvent, newestFirst, unfollowEvent } from './events.ts';
export { signLineBody, verifyLineSignature } from './signature.ts';
export { serializeLikeLine } from './webhooks.ts';
export { DEFAULT_RATE_LIMITS } from './rate-limits.ts';
export { MESSAGES as LINE_ERROR_MESSAGES } from './errors.ts';
export { isUuid, newUserId, USER_ID_PATTERN } from './ids.ts';

export type UserProfileInput = Omit<LineUserInput, 'userId' | 'following'>;

export interface LineEmulator {
  /** Base URL, e.g. http://127.0.0.1:40123; pass it as the SDK's `baseURL`. */
  readonly url: string;
  readonly port: number;
  readonly clock: Clock;
  close(): Promise<void>;

  addChannel(input?: LineChannelInput): LineChannel;
  channels(): LineChannel[];
  channel(channelId: string): LineChannel;
  follow(channelId: string, userId: string, profile?: string | UserProfileInput): void;
  /** The user blocks the OA: pushes still answer 200, but nothing is recorded as received. */
  unfollow(channelId: string, userId: string): void;
  isFollowing(channelId: string, userId: string): boolean;
  setMonthlyQuota(channelId: string, quota: MonthlyQuota): void;
  setMonthlyUsage(channelId: string, totalUsage: number): void;
  monthlyUsage(channelId: string): number;

  /** Deliveries, oldest first, optionally for one user and/or one channel. */
  received(userId?: string, channelId?: string): ReceivedMessage[];
  requests(): RequestLogEntry[];
  counters(): LineEmulatorCounters;
  /** Number of live retry keys (all channels). */
  retryKeyCount(): number;

  readonly faults: FaultRegistry;
  readonly webhooks: WebhookSender;
  /** Event builders whose default timestamps come from the emulator's clock. */
  readonly events: EventBuilders;

  /** Back to the state at start: initial channels and followers; records, faults, keys, buckets, usage cleared. */
  reset(): void;
}

export async function startLineEmulator(options: LineEmulatorOptions = {}): Promise<LineEmulator> {
  const clock = options.clock ?? systemClock();
  const channels = createChannelRegistry(clock);
  const records = createRecords();
  const faults = createFaults();
  const retryKeys = createRetryKeyStore(clock, options.retryKeyTtlMs ?? RETRY_KEY_TTL_MS);
  const rateLimiter = createRateLimiter(clock, options.rateLimits);
  const webhooks = createWebhookSender({ clock, channels, records, replyTokenTtlMs: options.replyTokenTtlMs ?? 60_000 });

  // Resolved once so that reset() restores the same generated ids and tokens.
  const initial = (options.channels ?? []).map((input) => ({ resolved: channels.add(input), users: input.users ?? [] }));
  const restoreInitial = (): void => {
    channels.clear();
    for (const { resolved, users } of initial) channels.add({ ...resolved, users });
  };

  const ctx: ApiContext = {
    clock,
    channels,
    retryKeys,
    records,
    unknownUsers: options.unknownUsers ?? 'ignore',
    rateLimiter,
    faults,
    latencyMs: options.latencyMs ?? 0,
  };

  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    const handler = path === '/_emulator' || path.startsWith('/_emulator/') ? handleControl(emulator, req, res) : handleApi(ctx, req, res);
    handler.catch((err: unknown) => {
      // A bug in the emulator must surface as a 500 rather than a hung test.
      if (res.headersSent) return;
      const message = `${MESSAGES.internal}: ${err instanceof Error ? err.message : String(err)}`;
      sendJson(res, 500, errorBody(message), { 'x-line-request-id': newRequestId() });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  let closing: Promise<void> | undefined;
  const emulator: LineEmulator = {
    url: `http://${host}:${address.port}`,
    port: address.port,
    clock,
    close: () => {
      // Idempotent: a test may close explicitly and again in its teardown.
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Held ("timeout") requests and idle keep-alive sockets would otherwise keep close() waiting.
        server.closeAllConnections();
      });
      return closing;
    },
    addChannel: (input = {}) => channels.add(input),
    channels: () => channels.list(),
    channel: (channelId) => ({ ...channels.require(channelId).channel }),
    follow(channelId, userId, profile) {
      channels.follow(channelId, { ...(typeof profile === 'string' ? { displayName: profile } : profile), userId });
    },
    unfollow: (channelId, userId) => channels.unfollow(channelId, userId),
    isFollowing: (channelId, userId) => channels.isFollowing(channelId, userId),
    setMonthlyQuota: (channelId, quota) => channels.setMonthlyQuota(channelId, quota),
    setMonthlyUsage: (channelId, totalUsage) => channels.setMonthlyUsage(channelId, totalUsage),
    monthlyUsage: (channelId) => channels.monthlyUsage(channels.require(channelId)),
    received: (userId, channelId) => filterReceived(records, userId, channelId),
    requests: () => [...records.requests],
    counters: () => structuredClone(records.counters),
    retryKeyCount: () => retryKeys.size(),
    faults,
    webhooks,
    events: createEventBuilders(clock),
    reset() {
      clearRecords(records);
      faults.clear();
      retryKeys.reset();
      rateLimiter.reset();
      webhooks.clear();
      restoreInitial();
    },
  };

  return emulator;
}
