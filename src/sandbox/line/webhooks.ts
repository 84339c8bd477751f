/**
 * Webhook sender: builds `{destination, events}`, serialises it the way LINE does (emoji as
 * \uXXXX surrogate escapes), signs the exact bytes, and POSTs them. Sent follow/unfollow events
 * also change the emulator's follow state (by event timestamp), and their reply tokens go live.
 */
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { z } from 'zod';
import type { Clock } from '../../clock.ts';
import type { ChannelRegistry } from './channels.ts';
import { newestFirst } from './events.ts';
import type { WebhookEvent } from './events.ts';
import type { Records } from './records.ts';
import { signLineBody } from './signature.ts';

/** LINE counts no answer within 2 s as `request_timeout`. */
export const WEBHOOK_TIMEOUT_MS = 2000;

export type JsonEscapes = 'astral' | 'non-ascii' | 'none';

export interface WebhookSendOptions {
  channelId: string;
  targetUrl: string;
  /** Built with the event builders, or any JSON objects (sent as given). */
  events: readonly (WebhookEvent | Record<string, unknown>)[];
  /** Default 'valid'. 'invalid' signs with a different secret. */
  signature?: 'valid' | 'invalid' | 'missing';
  /** Host header, e.g. `<slug>.line.example.test` for subdomain routing. */
  host?: string;
  headers?: Record<string, string>;
  /** Default: the channel's bot user id. */
  destination?: string;
  /** On the emulator's clock. Default 2000. */
  timeoutMs?: number;
  /** Default 'astral' (only characters outside the BMP, i.e. most emoji, are escaped, as LINE does). */
  jsonEscapes?: JsonEscapes;
  /** Apply follow/unfollow to the emulator's follow state and register reply tokens. Default true. */
  applyState?: boolean;
}

interface SentRequest {
  channelId: string;
  targetUrl: string;
  at: Date;
  /** The exact body bytes as sent (UTF-8). */
  body: string;
  headers: Record<string, string>;
}

export type WebhookResult = SentRequest &
  (
    | { outcome: 'response'; status: number; responseBody: string; responseHeaders: IncomingHttpHeaders }
    | { outcome: 'timeout' }
    | { outcome: 'error'; error: string }
  );

export interface WebhookSender {
  send(options: WebhookSendOptions): Promise<WebhookResult>;
  /** One POST per event, one after another, in the given order or newest first. */
  sendSeparately(options: WebhookSendOptions & { order?: 'given' | 'newest-first' }): Promise<WebhookResult[]>;
  /** Everything sent so far. */
  sent(): WebhookResult[];
  clear(): void;
}

export function serializeLikeLine(value: unknown, escapes: JsonEscapes = 'astral'): string {
  const json = JSON.stringify(value);
  const hex = (c: string): string => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  if (escapes === 'none') return json;
  if (escapes === 'non-ascii') return json.replace(/[\u007f-\uffff]/g, hex);
  return json.replace(/[\ud800-\udfff]/g, hex);
}

/** The parts of an event that move emulator state; anything else is sent untouched. */
const stateEvent = z.object({
  type: z.string(),
  timestamp: z.number(),
  mode: z.string().optional(),
  replyToken: z.string().optional(),
  source: z.object({ userId: z.string().optional() }).optional(),
});

export function createWebhookSender(deps: {
  clock: Clock;
  channels: ChannelRegistry;
  records: Records;
  replyTokenTtlMs: number;
}): WebhookSender {
  const log: WebhookResult[] = [];

  const applyState = (channelId: string, events: WebhookSendOptions['events']): void => {
    for (const raw of events) {
      const parsed = stateEvent.safeParse(raw);
      if (!parsed.success) continue;
      const { type, timestamp, replyToken, source } = parsed.data;
      const userId = source?.userId;
      if (userId === undefined) continue;
      if (type === 'follow') deps.channels.applyEvent(channelId, userId, true, timestamp);
      if (type === 'unfollow') deps.channels.applyEvent(channelId, userId, false, timestamp);
      if (replyToken !== undefined) deps.channels.issueReplyToken(channelId, replyToken, userId, deps.replyTokenTtlMs);
    }
  };

  const send = async (options: WebhookSendOptions): Promise<WebhookResult> => {
    const state = deps.channels.require(options.channelId);
    const { channel } = state;
    if (options.applyState ?? true) applyState(channel.channelId, options.events);
    const body = serializeLikeLine({ destination: options.destination ?? channel.botUserId, events: options.events }, options.jsonEscapes);
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'user-agent': 'LineBotWebhook/2.0',
      ...options.headers,
    };
    const mode = options.signature ?? 'valid';
    if (mode !== 'missing') {
      headers['x-line-signature'] = signLineBody(mode === 'valid' ? channel.channelSecret : `${channel.channelSecret}-wrong`, body);
    }
    if (options.host !== undefined) headers.host = options.host;
    const sent: SentRequest = { channelId: channel.channelId, targetUrl: options.targetUrl, at: deps.clock.now(), body, headers };
    const outcome = await post(deps.clock, options.targetUrl, body, headers, options.timeoutMs ?? WEBHOOK_TIMEOUT_MS);
    const result: WebhookResult = { ...sent, ...outcome };
    log.push(result);
    deps.records.counters.webhooksSent += 1;
    return result;
  };

  return {
    send,
    async sendSeparately(options) {
      const events = options.order === 'newest-first' ? newestFirst(options.events) : [...options.events];
      const results: WebhookResult[] = [];
      for (const event of events) results.push(await send({ ...options, events: [event] }));
      return results;
    },
    sent: () => [...log],
    clear: () => {
      log.length = 0;
    },
  };
}

type PostOutcome =
  | { outcome: 'response'; status: number; responseBody: string; responseHeaders: IncomingHttpHeaders }
  | { outcome: 'timeout' }
  | { outcome: 'error'; error: string };

function post(clock: Clock, targetUrl: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<PostOutcome> {
  return new Promise((resolve) => {
    const url = new URL(targetUrl);
    const requestFn = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let settled = false;
    const settle = (outcome: PostOutcome): void => {
      if (settled) return;
      settled = true;
      clock.clearTimeout(timer);
      resolve(outcome);
    };
    const req = requestFn(url, { method: 'POST', headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        settle({ outcome: 'response', status: res.statusCode ?? 0, responseBody: Buffer.concat(chunks).toString('utf8'), responseHeaders: res.headers }),
      );
      res.on('error', (err) => settle({ outcome: 'error', error: err.message }));
    });
    const timer = clock.setTimeout(() => {
      settle({ outcome: 'timeout' });
      req.destroy();
    }, timeoutMs);
    req.on('error', (err) => settle({ outcome: 'error', error: err.message }));
    req.end(body);
  });
}
