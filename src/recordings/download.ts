import { createHash, type Hash } from 'node:crypto';
import type { Clock } from '../clock.ts';
import { coerceError } from '../errors.ts';
import { eager } from './eager.ts';
import { contentTypeFor } from './parse.ts';
import type { RecordingStore } from './store.ts';

/** Bytes read ahead of the disk writes (see eager.ts). */
const PREFETCH_BYTES = 8 * 1024 * 1024;
/** Enough of an HTML refusal page to quote Zoom's words. */
const HTML_CAP_BYTES = 4096;

/** One way to authorise a download; tried in order until one is not refused. */
export interface DownloadAuth {
  kind: 'bearer' | 'query';
  token: string;
  /** Told when Zoom refused this token (a cached S2S token is then dropped). */
  onRefused?: () => void;
}

export interface DownloadRequest {
  url: string;
  /** This claim's partial in the store (resumed from its current size). */
  partial: string;
  fileType: string;
  /** Zoom's file_size; null when Zoom gives none (CC, TIMELINE): Content-Length decides then. */
  expectedSize: number | null;
  auths: readonly DownloadAuth[];
  /** Aborts the attempt (the worker lost its lease, or is stopping). */
  signal?: AbortSignal;
  onBytes?: (n: number) => void;
}

export type DownloadResult =
  | { ok: true; size: number; sha256: string; contentType: string; resumedFrom: number }
  | { ok: false; reason: string; bytesStored: number };

/**
 * One download attempt: GET with the first auth Zoom accepts (redirects followed), resuming the
 * partial with `Range` when there is one, hashing as the bytes are written, and verifying the size.
 * It never commits: the worker does, after its fenced settle. A failure leaves a consistent partial.
 */
export async function downloadToStore(store: RecordingStore, clock: Clock, timeoutMs: number, req: DownloadRequest): Promise<DownloadResult> {
  const controller = new AbortController();
  const timer = clock.setTimeout(() => controller.abort(new Error(`download timed out after ${timeoutMs} ms`)), timeoutMs);
  const onOuterAbort = (): void => controller.abort(req.signal?.reason);
  req.signal?.addEventListener('abort', onOuterAbort, { once: true });
  // Aborted already: the listener would never fire.
  if (req.signal?.aborted) onOuterAbort();
  try {
    return await attempt(store, req, controller.signal);
  } catch (error) {
    const reason = controller.signal.aborted ? coerceError(controller.signal.reason).message : coerceError(error).message;
    return { ok: false, reason, bytesStored: await store.partialSize(req.partial).catch(() => 0) };
  } finally {
    clock.clearTimeout(timer);
    req.signal?.removeEventListener('abort', onOuterAbort);
  }
}

async function attempt(store: RecordingStore, req: DownloadRequest, signal: AbortSignal): Promise<DownloadResult> {
  let offset = await store.partialSize(req.partial);
  if (req.expectedSize !== null && offset > req.expectedSize) {
    await store.discardPartial(req.partial);
    offset = 0;
  }
  let hash = createHash('sha256');
  // The digest must cover the whole file, so a resumed download first re-reads what it has.
  if (offset > 0) offset = await hashPartial(store, req.partial, hash, offset);
  const resumedFrom = offset;
  if (req.expectedSize !== null && offset === req.expectedSize && offset > 0) {
    return { ok: true, size: offset, sha256: hash.digest('hex'), contentType: contentTypeFor(req.fileType), resumedFrom };
  }
  if (req.auths.length === 0) return { ok: false, reason: 'no way to authorise the download: no Zoom credentials and no valid download_token', bytesStored: offset };

  let response: Response | undefined;
  const refusals: string[] = [];
  for (const auth of req.auths) {
    const url = new URL(req.url);
    const headers: Record<string, string> = {};
    if (auth.kind === 'bearer') headers.authorization = `Bearer ${auth.token}`;
    else url.searchParams.set('access_token', auth.token);
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const r = await fetch(url, { headers, redirect: 'follow', signal });
    const refused = await refusal(r);
    if (!refused) {
      response = r;
      break;
    }
    auth.onRefused?.();
    refusals.push(`${auth.kind === 'bearer' ? 'Bearer token' : 'access_token'}: ${refused}`);
  }
  if (!response) return { ok: false, reason: `Zoom refused the download: ${refusals.join('; ')}`, bytesStored: offset };

  let total: number | null = req.expectedSize;
  if (response.status === 206) {
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(response.headers.get('content-range') ?? '');
    if (!range || Number(range[1]) !== offset) {
      await response.body?.cancel();
      return { ok: false, reason: `206 with Content-Range "${response.headers.get('content-range') ?? ''}" for a resume at byte ${offset}`, bytesStored: offset };
    }
    if (total === null && range[3] !== '*') total = Number(range[3]);
  } else if (response.status === 200) {
    // A 200 to a range request is the whole file: start over.
    if (offset > 0) {
      offset = 0;
      hash = createHash('sha256');
    }
    const length = response.headers.get('content-length');
    if (total === null && length && /^\d+$/.test(length)) total = Number(length);
  } else {
    await response.body?.cancel();
    if (response.status === 416) await store.discardPartial(req.partial);
    return { ok: false, reason: `download answered HTTP ${response.status}`, bytesStored: response.status === 416 ? 0 : offset };
  }

  let received = 0;
  const source = response.body;
  if (!source) return { ok: false, reason: `HTTP ${response.status} without a body`, bytesStored: offset };
  const h = hash;
  const body = eager(source, PREFETCH_BYTES);
  const tap = async function* (): AsyncGenerator<Uint8Array> {
    for await (const chunk of body.chunks) {
      // Aborted (lease lost, deadline, stopping): not one more byte, even from the read-ahead buffer.
      if (signal.aborted) throw coerceError(signal.reason);
      h.update(chunk);
      received += chunk.length;
      req.onBytes?.(chunk.length);
      yield chunk;
    }
  };
  try {
    await store.append(req.partial, offset, tap());
  } catch (error) {
    body.stop();
    const stored = await store.partialSize(req.partial);
    return { ok: false, reason: `download interrupted after ${offset + received} of ${total ?? '?'} bytes: ${coerceError(signal.aborted ? signal.reason : error).message}`, bytesStored: stored };
  }
  const size = offset + received;
  if (total !== null && size !== total) {
    // Short: keep the partial and resume. Long: the bytes are not what Zoom announced; start over.
    if (size > total) await store.discardPartial(req.partial);
    return { ok: false, reason: `got ${size} bytes where ${total} were announced`, bytesStored: size > total ? 0 : size };
  }
  return { ok: true, size, sha256: h.digest('hex'), contentType: servedType(response.headers.get('content-type'), req.fileType), resumedFrom };
}

/** Why a response is Zoom refusing the token (an HTML page with status 200, or 401/403), or null. */
async function refusal(r: Response): Promise<string | null> {
  const type = (r.headers.get('content-type') ?? '').toLowerCase();
  if (type.startsWith('text/html')) {
    const text = await headOf(r, HTML_CAP_BYTES);
    // Zoom's page says why ("Only the host can download this recording…"): keep its words.
    const words = text.replace(/<(head|script|style)[\s\S]*?<\/\1>/gi, ' ').replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
    return `an HTML page (status ${r.status}) instead of the file${words ? `: "${words}"` : ''}`;
  }
  if (r.status === 401 || r.status === 403) {
    await r.body?.cancel();
    return `HTTP ${r.status}`;
  }
  return null;
}

/** The first `cap` bytes of the body as text; the rest is never read (an HTML page may be endless). */
async function headOf(r: Response, cap: number): Promise<string> {
  const reader = r.body?.getReader();
  if (!reader) return '';
  const parts: Uint8Array[] = [];
  let read = 0;
  try {
    while (read < cap) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      read += value.length;
    }
  } catch {
    // A page cut short still says what it said so far.
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(parts).subarray(0, cap).toString('utf8');
}

async function hashPartial(store: RecordingStore, partial: string, hash: Hash, size: number): Promise<number> {
  let read = 0;
  for await (const chunk of store.readPartial(partial)) {
    const bytes = chunk as Buffer;
    hash.update(bytes);
    read += bytes.length;
  }
  // The partial changed under us (it should not): trust what was read.
  return read === size ? size : read;
}

function servedType(header: string | null, fileType: string): string {
  const type = (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  return !type || type === 'application/octet-stream' || type === 'binary/octet-stream' ? contentTypeFor(fileType) : type;
}
