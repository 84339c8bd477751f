/** The value a route handler returns, and Zoom's error shapes. Handlers never touch sockets. */

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** `{code, message}` is Zoom's error body; validation errors add `errors`. */
export function zoomError(status: number, code: number, message: string, headers?: Record<string, string>): Reply {
  return headers ? { status, body: { code, message }, headers } : { status, body: { code, message } };
}

export function validationFailed(errors: Array<{ field: string; message: string }>): Reply {
  return { status: 400, body: { code: 300, message: 'Validation Failed.', errors } };
}

export const invalidJson = (): Reply => zoomError(400, 300, 'Request Body should be a valid JSON object.');

export const noContent = (): Reply => ({ status: 204 });

/** Reads `code` from a reply body, for the request log. */
export function replyCode(reply: Reply): number | null {
  const body = reply.body;
  if (typeof body === 'object' && body !== null && 'code' in body && typeof body.code === 'number') return body.code;
  return null;
}

/** Parses a request body that must be a JSON object; undefined when it is not. */
export function parseJsonObject(raw: string): Record<string, unknown> | undefined {
  if (raw.trim() === '') return undefined;
  try {
    const value: unknown = JSON.parse(raw);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
    return undefined;
  } catch {
    return undefined;
  }
}

export interface Route<C> {
  method: string;
  pattern: RegExp;
  handler: (ctx: C, params: string[]) => Promise<Reply> | Reply;
}

/** First route whose method and pattern match; `params` are the decoded capture groups. */
export function matchRoute<R extends Route<never>>(routes: ReadonlyArray<R>, method: string, path: string): { route: R; params: string[] } | 'method-not-allowed' | undefined {
  let pathMatched = false;
  for (const route of routes) {
    const m = route.pattern.exec(path);
    if (!m) continue;
    pathMatched = true;
    if (route.method !== method) continue;
    return { route, params: m.slice(1).map((p) => safeDecode(p ?? '')) };
  }
  return pathMatched ? 'method-not-allowed' : undefined;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
