import { HTTPFetchError } from '@line/bot-sdk';
import { z } from 'zod';
import type { Clock } from '../clock.ts';
import { coerceError } from '../errors.ts';

/**
 * One LINE API call through the official SDK, under our own deadline (the SDK has none), turned into
 * a plain value: an HTTP answer (any status), a timeout, or a network failure. Never throws.
 */
export type ApiResult<T> =
  | {
      kind: 'response';
      status: number;
      /** x-line-request-id: LINE keeps no logs, so this is what a support inquiry needs. */
      requestId: string | null;
      /** x-line-accepted-request-id: on a 409, the request that was accepted under the same retry key. */
      acceptedRequestId: string | null;
      /** The parsed body of a 2xx answer. */
      body: T | undefined;
      /** LINE's `message` of an error answer. */
      errorMessage: string | null;
    }
  | { kind: 'timeout'; afterMs: number }
  | { kind: 'network'; error: string };

/** What the SDK's `…WithHttpInfo` methods return. */
export interface WithHttpInfo<T> {
  httpResponse: Response;
  body: T;
}

const errorBody = z.looseObject({ message: z.string().optional() });

export async function callLine<T>(clock: Clock, timeoutMs: number, call: () => Promise<WithHttpInfo<T>>): Promise<ApiResult<T>> {
  let timer: ReturnType<Clock['setTimeout']> | undefined;
  const deadline = new Promise<ApiResult<T>>((resolve) => {
    timer = clock.setTimeout(() => resolve({ kind: 'timeout', afterMs: timeoutMs }), timeoutMs);
  });
  // The SDK cannot abort its fetch: a timed-out call runs on in the background and its result is dropped.
  const attempt = call().then(
    (ok): ApiResult<T> => ({
      kind: 'response',
      status: ok.httpResponse.status,
      requestId: ok.httpResponse.headers.get('x-line-request-id'),
      acceptedRequestId: ok.httpResponse.headers.get('x-line-accepted-request-id'),
      body: ok.body,
      errorMessage: null,
    }),
    (error: unknown): ApiResult<T> => {
      if (error instanceof HTTPFetchError) {
        return {
          kind: 'response',
          status: error.status,
          requestId: error.headers.get('x-line-request-id'),
          acceptedRequestId: error.headers.get('x-line-accepted-request-id'),
          body: undefined,
          errorMessage: parseMessage(error.body),
        };
      }
      const err = coerceError(error);
      const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
      return { kind: 'network', error: `${err.message}${cause}` };
    },
  );
  try {
    return await Promise.race([attempt, deadline]);
  } finally {
    if (timer) clock.clearTimeout(timer);
  }
}

function parseMessage(body: string): string | null {
  try {
    const parsed = errorBody.safeParse(JSON.parse(body));
    return parsed.success ? (parsed.data.message ?? null) : null;
  } catch {
    return body.slice(0, 200) || null;
  }
}
