import { Agent } from 'undici';
import { z } from 'zod';
import type { Clock } from '../clock.ts';
import { coerceError } from '../errors.ts';

/**
 * One LINE API call, under our own deadline, turned into a plain value: an HTTP answer (any
 * status), a timeout, or a network failure. Never throws.
 */
export type ApiResult<T> =
  | {
      kind: 'response';
      status: number;
      /** x-line-request-id: LINE keeps no logs, so this is what a support inquiry needs. */
      requestId: string | null;
      /** x-line-accepted-request-id: on a 409, the request that was accepted under the same retry key. */
      acceptedRequestId: string | null;
      /** The parsed body of a 2xx answer (callers parse it further). */
      body: T | undefined;
      /** LINE's `message` of an error answer. */
      errorMessage: string | null;
    }
  | { kind: 'timeout'; afterMs: number }
  | { kind: 'network'; error: string };

/** One Messaging API request: a path under `line.apiBaseUrl`, a JSON body, and the retry key where LINE takes one. */
export interface LineCall {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  retryKey?: string | null;
}

/**
 * The Messaging API over keep-alive connections (undici's `Agent.request`). The official SDK goes
 * through `fetch`, whose web streams cost about 2.5 times as much CPU per request (`npm run bench --
 * line-floor`): at the 20:00 peak, 73,000 requests in under 7 s, that was the send path's largest
 * cost. A request past its deadline is aborted, not left running.
 */
export interface LineClient {
  call(baseUrl: string, token: string, request: LineCall, timeoutMs: number): Promise<ApiResult<unknown>>;
  close(): Promise<void>;
}

export interface LineClientOptions {
  /**
   * Most connections open to LINE at once (per origin), read at each call; requests beyond it wait
   * for a free connection, within their deadline. A new value replaces the connection pool: requests
   * in flight finish on the old one, which then closes. Default DEFAULT_LINE_CONNECTIONS.
   */
  connections?: () => number;
}

/** The cap when none is given: the default of notifications.sendConcurrency (LINE requests in flight). */
export const DEFAULT_LINE_CONNECTIONS = 1000;

const errorBody = z.looseObject({ message: z.string().optional() });

export function createLineClient(clock: Clock, options: LineClientOptions = {}): LineClient {
  const connections = options.connections ?? (() => DEFAULT_LINE_CONNECTIONS);
  // Without a cap a burst opens a socket per request: HTTP/1.1 carries one request per connection.
  const newAgent = (cap: number): Agent => new Agent({ keepAliveTimeout: 30_000, connections: cap });
  const initial = connections();
  let current = { cap: initial, agent: newAgent(initial) };
  const retiring = new Set<Promise<void>>();
  const agentFor = (): Agent => {
    const cap = connections();
    if (cap !== current.cap) {
      const old = current.agent;
      current = { cap, agent: newAgent(cap) };
      const closing = old.close().catch(() => undefined);
      retiring.add(closing);
      void closing.finally(() => retiring.delete(closing));
    }
    return current.agent;
  };
  const bases = new Map<string, { origin: string; prefix: string }>();
  const baseOf = (baseUrl: string): { origin: string; prefix: string } => {
    let base = bases.get(baseUrl);
    if (!base) {
      const url = new URL(baseUrl);
      base = { origin: url.origin, prefix: url.pathname.replace(/\/+$/, '') };
      if (bases.size > 100) bases.clear();
      bases.set(baseUrl, base);
    }
    return base;
  };

  return {
    async call(baseUrl, token, request, timeoutMs) {
      const controller = new AbortController();
      let timedOut = false;
      const timer = clock.setTimeout(() => {
        timedOut = true;
        controller.abort();
      }, timeoutMs);
      try {
        const { origin, prefix } = baseOf(baseUrl);
        const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'user-agent': 'scheduler' };
        if (request.body !== undefined) headers['content-type'] = 'application/json';
        if (request.retryKey) headers['x-line-retry-key'] = request.retryKey;
        const res = await agentFor().request({
          origin,
          path: prefix + request.path,
          method: request.method,
          headers,
          body: request.body === undefined ? null : JSON.stringify(request.body),
          signal: controller.signal,
        });
        const text = await res.body.text();
        const ok = res.statusCode >= 200 && res.statusCode < 300;
        return {
          kind: 'response',
          status: res.statusCode,
          requestId: header(res.headers['x-line-request-id']),
          acceptedRequestId: header(res.headers['x-line-accepted-request-id']),
          body: ok ? parseJson(text) : undefined,
          errorMessage: ok ? null : parseMessage(text),
        };
      } catch (error) {
        if (timedOut) return { kind: 'timeout', afterMs: timeoutMs };
        const err = coerceError(error);
        const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
        return { kind: 'network', error: `${err.message}${cause}` };
      } finally {
        clock.clearTimeout(timer);
      }
    },
    close: async () => {
      await Promise.all([current.agent.close(), ...retiring]);
    },
  };
}

function header(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function parseMessage(body: string): string | null {
  const parsed = errorBody.safeParse(parseJson(body));
  return parsed.success ? (parsed.data.message ?? null) : body.slice(0, 200) || null;
}
