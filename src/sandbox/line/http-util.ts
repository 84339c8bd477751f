/** Small node:http helpers shared by the LINE API and the control routes. */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** LINE rejects request bodies over 2 MB with 413. */
export const MAX_BODY_BYTES = 2 * 1024 * 1024;

export type BodyResult = { ok: true; raw: Buffer } | { ok: false; reason: 'too-large' | 'aborted' };

export function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyResult): void => {
      if (done) return;
      done = true;
      resolve(result);
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        finish({ ok: false, reason: 'too-large' });
        // Keep draining so the 413 can be written; the data is discarded.
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => finish({ ok: true, raw: Buffer.concat(chunks) }));
    req.on('aborted', () => finish({ ok: false, reason: 'aborted' }));
    req.on('error', () => finish({ ok: false, reason: 'aborted' }));
  });
}

export type JsonParse = { ok: true; value: unknown } | { ok: false; reason: string };

export function parseJson(raw: Buffer): JsonParse {
  try {
    return { ok: true, value: raw.length === 0 ? undefined : (JSON.parse(raw.toString('utf8')) as unknown) };
  } catch (err) {
    return { ok: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

/** Closes the connection without a response: the client sees a reset / "other side closed". */
export function dropConnection(req: IncomingMessage): void {
  req.socket.destroy();
}

export function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
