/**
 * The small taxonomy of what a Zoom call can end in, so callers decide by kind, not by status:
 * - retryable: nothing happened on Zoom's side (429 per-second, 5xx or network on an idempotent call);
 * - ambiguous: a create may or may not have happened (timeout, dropped connection, 5xx) — reconcile first;
 * - host-daily-limit: this host's 100 creates/updates for the UTC day are used up — use another host;
 * - account-daily-limit: the account's daily bucket for a category is empty;
 * - auth: credentials rejected (OAuth) — the account needs an operator;
 * - final: any other 4xx; Zoom's {code, message} is the reason.
 */
export type ZoomErrorKind = 'retryable' | 'ambiguous' | 'host-daily-limit' | 'account-daily-limit' | 'auth' | 'final';

export class ZoomError extends Error {
  readonly kind: ZoomErrorKind;
  readonly status: number | undefined;
  readonly code: number | undefined;
  /** When the server said to come back (ms from now). */
  readonly retryAfterMs: number | undefined;
  /** Raised getting an OAuth token: the API call itself was never sent. */
  readonly oauth: boolean;
  constructor(kind: ZoomErrorKind, message: string, details: { status?: number; code?: number; retryAfterMs?: number; cause?: unknown; oauth?: boolean } = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'ZoomError';
    this.kind = kind;
    this.status = details.status;
    this.code = details.code;
    this.retryAfterMs = details.retryAfterMs;
    this.oauth = details.oauth ?? false;
  }
}

export interface ZoomErrorBody {
  code?: number;
  message?: string;
}

/** Classifies a non-2xx answer. Pure: status, parsed body, and whether repeating the call is safe. */
export function classifyZoomResponse(status: number, body: ZoomErrorBody, idempotent: boolean): ZoomErrorKind {
  const message = body.message ?? '';
  // The per-host limit is told apart by its text (Zoom sends it as 429, and per its spec as 300).
  if ((status === 429 || status === 300) && /Meeting Create\/Update|created\/updated for a single user/i.test(message)) return 'host-daily-limit';
  if (status === 429 && /daily rate limit/i.test(message)) return 'account-daily-limit';
  if (status === 429) return 'retryable';
  if (status >= 500) return idempotent ? 'retryable' : 'ambiguous';
  return 'final';
}

export function describeZoomError(status: number, body: ZoomErrorBody): string {
  const code = body.code !== undefined ? ` code ${body.code}` : '';
  return `Zoom answered ${status}${code}: ${body.message ?? '(no message)'}`;
}

/** Zoom's "meeting not found or expired" (404, code 3001): for an end or a delete, already done. */
export function isMeetingGone(error: unknown): boolean {
  return error instanceof ZoomError && (error.status === 404 || error.code === 3001);
}

/** For a DELETE, nothing is left to delete: the meeting is gone or expired (404, 3001) or has ended (3007). */
export function isDeleteDone(error: unknown): boolean {
  return isMeetingGone(error) || (error instanceof ZoomError && error.code === 3007);
}

/**
 * Zoom refuses the host itself, whatever the meeting: its credentials (OAuth refused, 401), its
 * permissions (403), its user gone (1001) or not allowed to host (3161). Another host may do.
 */
export function isHostRefused(error: unknown): boolean {
  if (!(error instanceof ZoomError)) return false;
  return error.kind === 'auth' || error.status === 401 || error.status === 403 || error.code === 1001 || error.code === 3161;
}

/**
 * Proof that a call changed nothing at Zoom: it answered with a refusal (4xx, 429) or the request was
 * never sent (no token). Anything else after a create was sent (a timeout, a 5xx, a 2xx we could not
 * read) may hide a meeting Zoom made.
 */
export function zoomDidNothing(error: unknown): boolean {
  if (!(error instanceof ZoomError)) return false;
  return error.oauth || (error.status !== undefined && error.status >= 400 && error.status < 500);
}
