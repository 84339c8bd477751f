/**
 * The LINE API request pipeline: body → injected fault → auth → latency → rate limit → retry key →
 * endpoint. Every response carries a fresh x-line-request-id; every request lands in the log.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { errorBody, MESSAGES } from './errors.ts';
import type { LineErrorBody } from './errors.ts';
import { handleEndpoint } from './endpoints.ts';
import type { ApiResult, EndpointContext } from './endpoints.ts';
import { faultName } from './faults.ts';
import type { FaultAction, FaultMatcher } from './faults.ts';
import { dropConnection, headerValue, parseJson, readBody, sendJson } from './http-util.ts';
import type { JsonParse } from './http-util.ts';
import type { ChannelState } from './channels.ts';
import { isUuid, newRequestId } from './ids.ts';
import type { RateLimiter } from './rate-limits.ts';
import { logRequest } from './records.ts';
import type { LineEndpoint, RequestLogEntry } from './types.ts';

export interface ApiContext extends EndpointContext {
  rateLimiter: RateLimiter;
  faults: FaultMatcher;
  latencyMs: number;
}

interface Route {
  method: 'GET' | 'POST';
  endpoint: LineEndpoint;
  pattern: RegExp;
  /** LINE accepts X-Line-Retry-Key on push, multicast, narrowcast and broadcast only. */
  retryKey: boolean;
}

const ROUTES: Route[] = [
  { method: 'POST', endpoint: 'push', pattern: /^\/v2\/bot\/message\/push$/, retryKey: true },
  { method: 'POST', endpoint: 'multicast', pattern: /^\/v2\/bot\/message\/multicast$/, retryKey: true },
  { method: 'POST', endpoint: 'reply', pattern: /^\/v2\/bot\/message\/reply$/, retryKey: false },
  { method: 'POST', endpoint: 'validatePush', pattern: /^\/v2\/bot\/message\/validate\/push$/, retryKey: false },
  { method: 'GET', endpoint: 'quota', pattern: /^\/v2\/bot\/message\/quota$/, retryKey: false },
  { method: 'GET', endpoint: 'quotaConsumption', pattern: /^\/v2\/bot\/message\/quota\/consumption$/, retryKey: false },
  { method: 'GET', endpoint: 'profile', pattern: /^\/v2\/bot\/profile\/([^/]+)$/, retryKey: false },
  { method: 'GET', endpoint: 'botInfo', pattern: /^\/v2\/bot\/info$/, retryKey: false },
];

function findRoute(method: string, path: string): { route: Route; param: string | null } | undefined {
  for (const route of ROUTES) {
    if (route.method !== method) continue;
    const m = route.pattern.exec(path);
    if (m) return { route, param: m[1] === undefined ? null : decodeURIComponent(m[1]) };
  }
  return undefined;
}

const bearerToken = (req: IncomingMessage): string | undefined => {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(headerValue(req, 'authorization') ?? '');
  return m?.[1];
};

const fail = (status: number, message: string): ApiResult => ({ status, body: errorBody(message) });

export async function handleApi(ctx: ApiContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const requestId = newRequestId();
  const method = (req.method ?? 'GET').toUpperCase();
  const path = new URL(req.url ?? '/', 'http://localhost').pathname;
  const found = findRoute(method, path);
  const token = bearerToken(req);
  const state = token === undefined ? undefined : ctx.channels.byToken(token);
  const retryKey = headerValue(req, 'x-line-retry-key') ?? null;
  const entry: RequestLogEntry = {
    requestId,
    at: ctx.clock.now(),
    method,
    path,
    endpoint: found?.route.endpoint ?? null,
    channelId: state?.channel.channelId ?? null,
    retryKey,
    status: null,
    outcome: 'response',
    fault: null,
    errorMessage: null,
    acceptedRequestId: null,
    body: undefined,
  };

  const raw = await readBody(req);
  if (!raw.ok) {
    if (raw.reason === 'aborted') return;
    respond(res, entry, ctx, { status: 413, body: errorBody(MESSAGES.tooLarge), headers: { connection: 'close' } });
    return;
  }
  const parsed = parseJson(raw.raw);
  entry.body = parsed.ok ? parsed.value : raw.raw.toString('utf8');

  let dropAfterHandling = false;
  const fault = ctx.faults.match({ method, path, channelId: entry.channelId });
  if (fault) {
    entry.fault = faultName(fault);
    const outcome = await applyFault(ctx, fault, req, res, entry);
    if (outcome === 'done') return;
    dropAfterHandling = outcome === 'drop-after';
  }
  if (ctx.latencyMs > 0) await ctx.clock.sleep(ctx.latencyMs);

  const result = decide(ctx, { method, found, token, retryKey, requestId, parsed, state, req });
  if (dropAfterHandling) {
    finishEntry(entry, result);
    entry.outcome = 'dropped';
    logRequest(ctx.records, entry);
    dropConnection(req);
    return;
  }
  respond(res, entry, ctx, result);
}

type FaultOutcome = 'done' | 'continue' | 'drop-after';

async function applyFault(
  ctx: ApiContext,
  fault: FaultAction,
  req: IncomingMessage,
  res: ServerResponse,
  entry: RequestLogEntry,
): Promise<FaultOutcome> {
  if (!('kind' in fault)) {
    respond(res, entry, ctx, { status: fault.status, body: fault.body ?? errorBody(MESSAGES.internal), headers: fault.headers ?? {} });
    return 'done';
  }
  switch (fault.kind) {
    case 'drop':
      entry.outcome = 'dropped';
      logRequest(ctx.records, entry);
      dropConnection(req);
      return 'done';
    case 'timeout':
      // Hold: no response is ever written. The socket goes when the client aborts or the emulator closes.
      entry.outcome = 'timeout';
      logRequest(ctx.records, entry);
      return 'done';
    case 'delay':
      await ctx.clock.sleep(fault.ms);
      return 'continue';
    case 'after-accept-drop':
      return 'drop-after';
  }
}

interface DecideInput {
  method: string;
  found: { route: Route; param: string | null } | undefined;
  token: string | undefined;
  retryKey: string | null;
  requestId: string;
  parsed: JsonParse;
  state: ChannelState | undefined;
  req: IncomingMessage;
}

function decide(ctx: ApiContext, input: DecideInput): ApiResult {
  const { found, state, retryKey } = input;
  if (!found) return fail(404, MESSAGES.notFound);
  if (input.token === undefined) return fail(401, MESSAGES.missingAuth);
  if (!state) return fail(401, MESSAGES.invalidToken);
  const { route } = found;
  const channelId = state.channel.channelId;

  // A retried request counts against the rate limit too, so this comes before the retry-key check.
  if (!ctx.rateLimiter.take(channelId, route.endpoint)) return fail(429, MESSAGES.rateLimited);

  if (retryKey !== null) {
    if (!route.retryKey) return fail(400, MESSAGES.retryKeyNotSupported);
    if (!isUuid(retryKey)) return fail(400, MESSAGES.invalidRetryKey);
    const accepted = ctx.retryKeys.lookup(channelId, retryKey);
    if (accepted) {
      const body: LineErrorBody = { message: MESSAGES.retryKeyAccepted };
      if (accepted.sentMessages) body.sentMessages = accepted.sentMessages;
      return {
        status: 409,
        body,
        headers: { 'x-line-accepted-request-id': accepted.requestId },
        acceptedRequestId: accepted.requestId,
      };
    }
  }

  if (route.method === 'POST' && !/^application\/json\b/i.test(headerValue(input.req, 'content-type') ?? '')) {
    return fail(415, MESSAGES.unsupportedMediaType);
  }

  return handleEndpoint(ctx, {
    endpoint: route.endpoint,
    state,
    requestId: input.requestId,
    retryKey,
    body: input.parsed,
    param: found.param,
  });
}

function finishEntry(entry: RequestLogEntry, result: ApiResult): void {
  entry.status = result.status;
  entry.acceptedRequestId = result.acceptedRequestId ?? null;
  const body = result.body;
  if (result.status >= 400 && typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string') {
    entry.errorMessage = body.message;
  }
}

function respond(res: ServerResponse, entry: RequestLogEntry, ctx: ApiContext, result: ApiResult): void {
  finishEntry(entry, result);
  logRequest(ctx.records, entry);
  sendJson(res, result.status, result.body, { ...result.headers, 'x-line-request-id': entry.requestId });
}
