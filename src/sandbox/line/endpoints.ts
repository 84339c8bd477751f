/**
 * The LINE endpoints proper, called once a request has passed the fault, auth, rate-limit and
 * retry-key stages in api.ts. Sends are all-or-nothing: any error means nothing was delivered.
 */
import type { ChannelRegistry, ChannelState } from './channels.ts';
import { errorBody, MESSAGES, unparsableJsonBody } from './errors.ts';
import { newMessageId, newQuoteToken } from './ids.ts';
import type { Records } from './records.ts';
import type { RetryKeyStore } from './retry-keys.ts';
import type { Clock } from '../../clock.ts';
import type { DeliveryEndpoint, LineEndpoint, LineMessage, SentMessage, UnknownUserPolicy } from './types.ts';
import { validateMessagesOnly, validateMulticast, validatePush, validateReply } from './validate.ts';
import type { JsonParse } from './http-util.ts';

export interface EndpointContext {
  clock: Clock;
  channels: ChannelRegistry;
  retryKeys: RetryKeyStore;
  records: Records;
  unknownUsers: UnknownUserPolicy;
}

export interface EndpointCall {
  endpoint: LineEndpoint;
  state: ChannelState;
  requestId: string;
  retryKey: string | null;
  body: JsonParse;
  /** Path parameter (the user id of GET /profile/{userId}). */
  param: string | null;
}

export interface ApiResult {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  acceptedRequestId?: string;
}

const error = (status: number, message: string): ApiResult => ({ status, body: errorBody(message) });

/** Message types LINE can quote, hence that come back with a quoteToken. */
const QUOTABLE = new Set(['text', 'sticker', 'image', 'video']);

export function handleEndpoint(ctx: EndpointContext, call: EndpointCall): ApiResult {
  const { state } = call;
  const channel = state.channel;
  switch (call.endpoint) {
    case 'quota':
      return {
        status: 200,
        body: channel.monthlyQuota === 'none' ? { type: 'none' } : { type: 'limited', value: channel.monthlyQuota },
      };
    case 'quotaConsumption':
      return { status: 200, body: { totalUsage: ctx.channels.monthlyUsage(state) } };
    case 'botInfo':
      return {
        status: 200,
        body: {
          userId: channel.botUserId,
          basicId: channel.basicId,
          displayName: channel.botDisplayName,
          chatMode: 'bot',
          markAsReadMode: 'auto',
        },
      };
    case 'profile': {
      const profile = call.param === null ? undefined : ctx.channels.profile(state, call.param);
      return profile ? { status: 200, body: profile } : error(404, MESSAGES.notFound);
    }
    default:
      return handleSend(ctx, call);
  }
}

function handleSend(ctx: EndpointContext, call: EndpointCall): ApiResult {
  if (!call.body.ok) return { status: 400, body: unparsableJsonBody(call.body.reason) };
  const body = call.body.value;
  switch (call.endpoint) {
    case 'push': {
      const v = validatePush(body);
      if (!v.ok) return { status: 400, body: v.error };
      return send(ctx, call, 'push', [v.value.to], v.value.messages, v.value.notificationDisabled ?? false);
    }
    case 'multicast': {
      const v = validateMulticast(body);
      if (!v.ok) return { status: 400, body: v.error };
      // A repeated id is one recipient (and one quota unit).
      const to = [...new Set(v.value.to)];
      return send(ctx, call, 'multicast', to, v.value.messages, v.value.notificationDisabled ?? false);
    }
    case 'reply': {
      const v = validateReply(body);
      if (!v.ok) return { status: 400, body: v.error };
      const userId = ctx.channels.consumeReplyToken(call.state, v.value.replyToken);
      if (userId === undefined) return error(400, MESSAGES.invalidReplyToken);
      return send(ctx, call, 'reply', [userId], v.value.messages, v.value.notificationDisabled ?? false);
    }
    case 'validatePush': {
      const v = validateMessagesOnly(body);
      return v.ok ? { status: 200, body: {} } : { status: 400, body: v.error };
    }
    default:
      return error(404, MESSAGES.notFound);
  }
}

function send(
  ctx: EndpointContext,
  call: EndpointCall,
  endpoint: DeliveryEndpoint,
  recipients: string[],
  messages: LineMessage[],
  notificationDisabled: boolean,
): ApiResult {
  const { state } = call;
  const channelId = state.channel.channelId;
  const deliverTo: string[] = [];
  for (const userId of recipients) {
    // A reply token was issued to a user who just reached the bot, so only a block stops the reply.
    const fate = ctx.channels.fate(state, userId, endpoint === 'reply' ? 'deliver' : ctx.unknownUsers);
    if (fate === 'reject') return error(400, MESSAGES.failedToSend);
    if (fate === 'deliver') deliverTo.push(userId);
  }

  // Replies are free; push and multicast count once per recipient who actually gets the messages.
  const cost = endpoint === 'reply' ? 0 : deliverTo.length;
  const quota = state.channel.monthlyQuota;
  if (quota !== 'none' && cost > 0 && ctx.channels.monthlyUsage(state) + cost > quota) {
    return error(429, MESSAGES.monthlyLimit);
  }

  const sentMessages: SentMessage[] | undefined =
    endpoint === 'multicast'
      ? undefined
      : messages.map((m) => (QUOTABLE.has(m.type) ? { id: newMessageId(), quoteToken: newQuoteToken() } : { id: newMessageId() }));

  if (call.retryKey !== null) {
    ctx.retryKeys.remember(channelId, call.retryKey, { requestId: call.requestId, ...(sentMessages && { sentMessages }) });
  }
  ctx.channels.addUsage(state, cost);
  const at = ctx.clock.now();
  for (const to of deliverTo) {
    ctx.records.received.push({
      channelId,
      to,
      messages,
      requestId: call.requestId,
      retryKey: call.retryKey,
      at,
      endpoint,
      notificationDisabled,
      ...(sentMessages && { sentMessages }),
    });
  }
  const counters = ctx.records.counters;
  counters.accepted += 1;
  counters.delivered += deliverTo.length;
  counters.suppressed += recipients.length - deliverTo.length;
  return { status: 200, body: sentMessages ? { sentMessages } : {} };
}
