import { z } from 'zod';
import { retryDelay, type BackoffPolicy } from '../retry.ts';
import type { ApiResult } from './client.ts';

/**
 * What became of one send (a push to one member, or one multicast chunk). This is the seam for the
 * delivery engine: it records `sent`/`duplicate` as delivered, tries `retryable` again after
 * `afterMs` with the same retry key, holds the work while the channel is paused, and ends the
 * delivery on `final` or `skipped` with the reason.
 */
export type SendOutcome =
  | { kind: 'sent'; requestId: string | null; sentMessageIds: string[] }
  /**
   * 409: LINE had already accepted this retry key; the message went out once, earlier. `recorded`:
   * LINE was not asked; our own record says it went out (a multicast chunk already marked sent).
   */
  | { kind: 'duplicate'; requestId: string | null; acceptedRequestId: string | null; recorded?: boolean }
  | { kind: 'retryable'; afterMs: number; reason: string; requestId: string | null }
  /** The channel cannot send now (monthly quota, rejected token, disabled); `until` null: until an operator acts. */
  | { kind: 'channelPaused'; until: Date | null; reason: string }
  | { kind: 'final'; reason: string; status: number | null; requestId: string | null }
  | { kind: 'skipped'; reason: string };

export const MONTHLY_LIMIT = 'You have reached your monthly limit.';
export const RETRY_KEY_ACCEPTED = 'The retry key is already accepted';

export interface ClassifyContext {
  /** 1 for the first attempt. */
  attempt: number;
  backoff: BackoffPolicy;
  now: Date;
  /** How long a channel pauses after LINE says its monthly quota is used up (or its token is refused). */
  pauseMs: number;
  random?: () => number;
}

const pushBody = z.looseObject({ sentMessages: z.array(z.looseObject({ id: z.string() })).optional() });

/** LINE's answer → outcome, by LINE's retry table (line-api.md §2), plus the two kinds of 429. */
export function classifySend(result: ApiResult<unknown>, ctx: ClassifyContext): SendOutcome {
  const retry = (reason: string, requestId: string | null): SendOutcome => ({
    kind: 'retryable',
    afterMs: retryDelay(ctx.backoff, ctx.attempt, undefined, ctx.random),
    reason,
    requestId,
  });
  if (result.kind === 'timeout') return retry(`no answer within ${result.afterMs} ms`, null);
  if (result.kind === 'network') return retry(`network error: ${result.error}`, null);

  const { status, requestId, errorMessage } = result;
  const said = errorMessage ? `: ${errorMessage}` : '';
  if (status >= 200 && status < 300) {
    const parsed = pushBody.safeParse(result.body);
    return { kind: 'sent', requestId, sentMessageIds: parsed.success ? (parsed.data.sentMessages ?? []).map((m) => m.id) : [] };
  }
  if (status === 409 && (result.acceptedRequestId !== null || errorMessage === RETRY_KEY_ACCEPTED)) {
    return { kind: 'duplicate', requestId, acceptedRequestId: result.acceptedRequestId };
  }
  if (status === 429) {
    if (errorMessage?.toLowerCase().includes('monthly limit')) {
      return { kind: 'channelPaused', until: new Date(ctx.now.getTime() + ctx.pauseMs), reason: `LINE 429${said}` };
    }
    // The rate-limit 429: not accepted, so the same key may be tried again.
    return retry(`LINE 429${said}`, requestId);
  }
  // A refused token stops every send of the channel until an operator replaces it.
  if (status === 401) return { kind: 'channelPaused', until: new Date(ctx.now.getTime() + ctx.pauseMs), reason: `LINE 401${said}` };
  if (status >= 500 || status === 408) return retry(`LINE ${status}${said}`, requestId);
  return { kind: 'final', reason: `LINE ${status}${said}`, status, requestId };
}

