/**
 * HTTP control surface under /_emulator/, for driving the emulator from another process (the demo,
 * benchmarks). Mirrors the programmatic API; bodies are JSON and validated with zod.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import type { FaultAction } from './faults.ts';
import { parseJson, readBody, sendJson } from './http-util.ts';
import { USER_ID_PATTERN } from './ids.ts';
import type { LineEmulator } from './index.ts';

const userId = z.string().regex(USER_ID_PATTERN);
const quota = z.union([z.literal('none'), z.int().min(0)]);

const channelInput = z.object({
  channelId: z.string().min(1).optional(),
  channelSecret: z.string().min(1).optional(),
  accessToken: z.string().min(1).optional(),
  botUserId: userId.optional(),
  botDisplayName: z.string().optional(),
  basicId: z.string().optional(),
  monthlyQuota: quota.optional(),
  users: z
    .array(
      z.object({
        userId,
        displayName: z.string().optional(),
        pictureUrl: z.string().optional(),
        statusMessage: z.string().optional(),
        language: z.string().optional(),
        following: z.boolean().optional(),
      }),
    )
    .optional(),
});

const followInput = z.object({ channelId: z.string(), userId, displayName: z.string().optional() });
const unfollowInput = z.object({ channelId: z.string(), userId });
const quotaInput = z.object({ channelId: z.string(), monthlyQuota: quota.optional(), totalUsage: z.int().min(0).optional() });

const faultAction: z.ZodType<FaultAction> = z.union([
  z.object({ status: z.int().min(100).max(599), body: z.unknown().optional(), headers: z.record(z.string(), z.string()).optional() }),
  z.object({ kind: z.literal('timeout') }),
  z.object({ kind: z.literal('drop') }),
  z.object({ kind: z.literal('delay'), ms: z.number().min(0) }),
  z.object({ kind: z.literal('after-accept-drop') }),
]);
const faultInput = z.object({
  method: z.string().optional(),
  path: z.string().optional(),
  /** A RegExp source, tested against the pathname. */
  pathPattern: z.string().optional(),
  channelId: z.string().optional(),
  /** JSON has no Infinity: 'always' means a standing fault. */
  times: z.union([z.int().min(1), z.literal('always')]).optional(),
  fault: faultAction,
});

const webhookInput = z.object({
  channelId: z.string(),
  targetUrl: z.url(),
  events: z.array(z.record(z.string(), z.unknown())),
  signature: z.enum(['valid', 'invalid', 'missing']).optional(),
  host: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  destination: z.string().optional(),
  timeoutMs: z.number().positive().optional(),
  jsonEscapes: z.enum(['astral', 'non-ascii', 'none']).optional(),
});

type Handler = (emulator: LineEmulator, body: unknown, query: URLSearchParams) => Promise<unknown> | unknown;

const parse = <T>(schema: z.ZodType<T>, body: unknown): T => {
  const result = schema.safeParse(body);
  if (!result.success) throw new Error(z.prettifyError(result.error));
  return result.data;
};

const ROUTES: Record<string, Handler> = {
  'GET /_emulator/channels': (e) => e.channels(),
  'POST /_emulator/channels': (e, body) => e.addChannel(parse(channelInput, body)),
  'POST /_emulator/follow': (e, body) => {
    const input = parse(followInput, body);
    e.follow(input.channelId, input.userId, input.displayName);
    return {};
  },
  'POST /_emulator/unfollow': (e, body) => {
    const input = parse(unfollowInput, body);
    e.unfollow(input.channelId, input.userId);
    return {};
  },
  'POST /_emulator/quota': (e, body) => {
    const input = parse(quotaInput, body);
    if (input.monthlyQuota !== undefined) e.setMonthlyQuota(input.channelId, input.monthlyQuota);
    if (input.totalUsage !== undefined) e.setMonthlyUsage(input.channelId, input.totalUsage);
    return { monthlyQuota: e.channel(input.channelId).monthlyQuota, totalUsage: e.monthlyUsage(input.channelId) };
  },
  'GET /_emulator/received': (e, _body, query) => e.received(query.get('userId') ?? undefined, query.get('channelId') ?? undefined),
  'GET /_emulator/requests': (e) => e.requests(),
  'GET /_emulator/counters': (e) => e.counters(),
  'GET /_emulator/faults': (e) => e.faults.list(),
  'POST /_emulator/faults': (e, body) => {
    const input = parse(faultInput, body);
    const handle = e.faults.add({
      ...(input.method !== undefined && { method: input.method }),
      ...(input.channelId !== undefined && { channelId: input.channelId }),
      ...(input.pathPattern !== undefined ? { path: new RegExp(input.pathPattern) } : input.path !== undefined ? { path: input.path } : {}),
      times: input.times === 'always' ? Infinity : (input.times ?? 1),
      fault: input.fault,
    });
    return { id: handle.id };
  },
  'DELETE /_emulator/faults': (e) => {
    e.faults.clear();
    return {};
  },
  'POST /_emulator/webhooks/send': (e, body) => e.webhooks.send(parse(webhookInput, body)),
  'POST /_emulator/reset': (e) => {
    e.reset();
    return {};
  },
};

export async function handleControl(emulator: LineEmulator, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const raw = await readBody(req);
  if (!raw.ok) {
    if (raw.reason === 'too-large') sendJson(res, 413, { message: 'Request entity too large' });
    return;
  }
  const parsed = parseJson(raw.raw);
  if (!parsed.ok) {
    sendJson(res, 400, { message: `Invalid JSON: ${parsed.reason}` });
    return;
  }
  const handler = ROUTES[`${(req.method ?? 'GET').toUpperCase()} ${url.pathname}`];
  if (!handler) {
    sendJson(res, 404, { message: 'Not found', routes: Object.keys(ROUTES) });
    return;
  }
  try {
    sendJson(res, 200, await handler(emulator, parsed.value, url.searchParams));
  } catch (err) {
    // Invalid input and misuse (unknown channel, duplicate token) alike: the caller must fix the call.
    sendJson(res, 400, { message: err instanceof Error ? err.message : String(err) });
  }
}
