/**
 * Channels (LINE Official Accounts) and what LINE knows about them: who follows, what the month's
 * usage is, which reply tokens are live. Keyed by (channel, user) since user ids are per provider.
 */
import type { Clock } from '../../clock.ts';
import { newBasicId, newChannelId, newHex, newUserId, USER_ID_PATTERN } from './ids.ts';
import type { LineChannel, LineChannelInput, LineUserInput, MonthlyQuota, UnknownUserPolicy } from './types.ts';

export interface UserProfile {
  userId: string;
  displayName: string;
  pictureUrl?: string;
  statusMessage?: string;
  language?: string;
}

interface UserState {
  profile: UserProfile;
  following: boolean;
  /** Time of the last follow-state change; webhook events older than this don't apply. */
  changedAt: number;
}

interface ReplyToken {
  userId: string;
  expiresAt: number;
  used: boolean;
}

export interface ChannelState {
  channel: LineChannel;
  users: Map<string, UserState>;
  /** Recipients counted per month ("YYYY-MM" in Japan time, where LINE bills). */
  usage: Map<string, number>;
  replyTokens: Map<string, ReplyToken>;
}

export type RecipientFate = 'deliver' | 'suppress' | 'reject';

const JST_OFFSET_MS = 9 * 60 * 60 * 1000;
const monthOf = (ms: number): string => new Date(ms + JST_OFFSET_MS).toISOString().slice(0, 7);

const defaultDisplayName = (userId: string): string => `User ${userId.slice(1, 7)}`;

export interface ChannelRegistry {
  add(input: LineChannelInput): LineChannel;
  byToken(token: string): ChannelState | undefined;
  get(channelId: string): ChannelState | undefined;
  /** Throws for an unknown channel: a programming error in the test or demo. */
  require(channelId: string): ChannelState;
  list(): LineChannel[];
  follow(channelId: string, user: LineUserInput): void;
  unfollow(channelId: string, userId: string): void;
  /** Follow state change carried by a webhook event: applied only if not older than the last change. */
  applyEvent(channelId: string, userId: string, following: boolean, timestamp: number): void;
  isFollowing(channelId: string, userId: string): boolean;
  profile(state: ChannelState, userId: string): UserProfile | undefined;
  fate(state: ChannelState, userId: string, policy: UnknownUserPolicy): RecipientFate;
  monthlyUsage(state: ChannelState): number;
  addUsage(state: ChannelState, recipients: number): void;
  setMonthlyUsage(channelId: string, totalUsage: number): void;
  setMonthlyQuota(channelId: string, quota: MonthlyQuota): void;
  issueReplyToken(channelId: string, token: string, userId: string, ttlMs: number): void;
  /** Single use: returns the user the token was issued for, or undefined if unknown/used/expired. */
  consumeReplyToken(state: ChannelState, token: string): string | undefined;
  clear(): void;
}

export function createChannelRegistry(clock: Clock): ChannelRegistry {
  const byId = new Map<string, ChannelState>();
  const byToken = new Map<string, ChannelState>();
  const now = (): number => clock.now().getTime();

  const require = (channelId: string): ChannelState => {
    const state = byId.get(channelId);
    if (!state) throw new Error(`LINE emulator: unknown channel ${channelId}`);
    return state;
  };

  const setUser = (state: ChannelState, user: LineUserInput, at: number): void => {
    if (!USER_ID_PATTERN.test(user.userId)) throw new Error(`LINE emulator: not a user id: ${user.userId}`);
    const existing = state.users.get(user.userId);
    const profile: UserProfile = {
      ...existing?.profile,
      userId: user.userId,
      displayName: user.displayName ?? existing?.profile.displayName ?? defaultDisplayName(user.userId),
      ...(user.pictureUrl !== undefined && { pictureUrl: user.pictureUrl }),
      ...(user.statusMessage !== undefined && { statusMessage: user.statusMessage }),
      ...(user.language !== undefined && { language: user.language }),
    };
    state.users.set(user.userId, { profile, following: user.following ?? true, changedAt: at });
  };

  const registry: ChannelRegistry = {
    add(input) {
      const channel: LineChannel = {
        channelId: input.channelId ?? newChannelId(),
        channelSecret: input.channelSecret ?? newHex(16),
        accessToken: input.accessToken ?? newHex(32),
        botUserId: input.botUserId ?? newUserId(),
        botDisplayName: input.botDisplayName ?? 'Scheduler Bot',
        basicId: input.basicId ?? newBasicId(),
        monthlyQuota: input.monthlyQuota ?? 'none',
      };
      if (byId.has(channel.channelId)) throw new Error(`LINE emulator: channel ${channel.channelId} already exists`);
      if (byToken.has(channel.accessToken)) throw new Error('LINE emulator: access token already used by another channel');
      if (!USER_ID_PATTERN.test(channel.botUserId)) throw new Error(`LINE emulator: botUserId must be U + 32 hex`);
      const state: ChannelState = { channel, users: new Map(), usage: new Map(), replyTokens: new Map() };
      for (const user of input.users ?? []) setUser(state, user, Number.NEGATIVE_INFINITY);
      byId.set(channel.channelId, state);
      byToken.set(channel.accessToken, state);
      return { ...channel };
    },
    byToken: (token) => byToken.get(token),
    get: (channelId) => byId.get(channelId),
    require,
    list: () => [...byId.values()].map((s) => ({ ...s.channel })),
    follow(channelId, user) {
      setUser(require(channelId), { ...user, following: true }, now());
    },
    unfollow(channelId, userId) {
      const state = require(channelId);
      const existing = state.users.get(userId);
      setUser(state, { ...existing?.profile, userId, following: false }, now());
    },
    applyEvent(channelId, userId, following, timestamp) {
      const state = require(channelId);
      const existing = state.users.get(userId);
      if (existing && existing.changedAt > timestamp) return;
      setUser(state, { ...existing?.profile, userId, following }, timestamp);
    },
    isFollowing: (channelId, userId) => require(channelId).users.get(userId)?.following === true,
    profile(state, userId) {
      const user = state.users.get(userId);
      return user?.following ? { ...user.profile } : undefined;
    },
    fate(state, userId, policy) {
      const user = state.users.get(userId);
      if (user) return user.following ? 'deliver' : 'suppress';
      return policy === 'deliver' ? 'deliver' : policy === 'reject' ? 'reject' : 'suppress';
    },
    monthlyUsage: (state) => state.usage.get(monthOf(now())) ?? 0,
    addUsage(state, recipients) {
      const month = monthOf(now());
      state.usage.set(month, (state.usage.get(month) ?? 0) + recipients);
    },
    setMonthlyUsage(channelId, totalUsage) {
      require(channelId).usage.set(monthOf(now()), totalUsage);
    },
    setMonthlyQuota(channelId, quota) {
      require(channelId).channel.monthlyQuota = quota;
    },
    issueReplyToken(channelId, token, userId, ttlMs) {
      const state = require(channelId);
      const existing = state.replyTokens.get(token);
      // A redelivered event carries the same token; a used token stays used.
      state.replyTokens.set(token, { userId, expiresAt: now() + ttlMs, used: existing?.used ?? false });
    },
    consumeReplyToken(state, token) {
      const entry = state.replyTokens.get(token);
      if (!entry || entry.used || now() >= entry.expiresAt) return undefined;
      entry.used = true;
      return entry.userId;
    },
    clear() {
      byId.clear();
      byToken.clear();
    },
  };
  return registry;
}
