/**
 * Recording downloads as Zoom serves them (zoom-api.md §8): `GET {download_url}` with a Bearer S2S token or
 * `?access_token=` (download_token or access token) answers 302 to a signed file URL; bad auth answers
 * 200 text/html, which a client must not save as the recording. The file URL honours `Range: bytes=N-[M]`.
 * Fault rules make downloads fail the way real ones do: an error status, the HTML page, a truncated body.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Clock } from '../../clock.ts';
import type { TokenStore } from './oauth.ts';
import type { RecordingFiles } from './recording-files.ts';
import type { DownloadFaultRule, DownloadRequest, MeetingRecord, RecordingFile } from './types.ts';

/** Signed file URLs stay valid this long (a client follows the 302 at once). */
const FILE_URL_TTL_MS = 3_600_000;

const AUTH_PAGE =
  '<!DOCTYPE html><html><head><title>Zoom</title></head><body><div class="error">' +
  'Only the host can download this recording. Please sign in with the host account.</div></body></html>';

export interface Downloads {
  add(rule: DownloadFaultRule): { remove(): void };
  requests(): DownloadRequest[];
  /** Serves `/rec/...`; false when the path is not a download route. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): boolean;
  reset(): void;
}

export interface DownloadDeps {
  clock: Clock;
  tokens: TokenStore;
  files: RecordingFiles;
  baseUrl: () => string;
  findFile(fileId: string): { meeting: MeetingRecord; file: RecordingFile } | undefined;
}

interface Armed {
  rule: DownloadFaultRule;
  remaining: number;
}

export function createDownloads(deps: DownloadDeps): Downloads {
  const { clock } = deps;
  const key = randomBytes(32);
  let rules: Armed[] = [];
  const log: DownloadRequest[] = [];

  const sign = (fileId: string, exp: number): string => createHmac('sha256', key).update(`${fileId}:${exp}`).digest('hex');

  const take = (fileId: string, kinds: ReadonlyArray<DownloadFaultRule['kind']>): DownloadFaultRule | undefined => {
    const hit = rules.find((r) => r.remaining > 0 && kinds.includes(r.rule.kind) && (r.rule.fileId === undefined || r.rule.fileId === fileId));
    if (!hit) return undefined;
    hit.remaining--;
    return hit.rule;
  };

  /** Which auth the request carried, and whether it authorises the meeting's downloads. */
  const authorise = (req: IncomingMessage, url: URL, m: MeetingRecord): { auth: DownloadRequest['auth']; ok: boolean } => {
    if (req.headers.authorization) {
      const check = deps.tokens.verify(req.headers.authorization);
      return { auth: 'bearer', ok: check.ok && check.accountId === m.accountId };
    }
    const q = url.searchParams.get('access_token');
    if (q) {
      if (deps.files.tokenMeeting(q) === m.id) return { auth: 'query', ok: true };
      const check = deps.tokens.verify(`Bearer ${q}`);
      return { auth: 'query', ok: check.ok && check.accountId === m.accountId };
    }
    return { auth: 'none', ok: false };
  };

  const html = (res: ServerResponse): number => {
    res.writeHead(200, { 'Content-Type': 'text/html;charset=utf-8', 'Content-Length': Buffer.byteLength(AUTH_PAGE) });
    res.end(AUTH_PAGE);
    return 200;
  };

  const plain = (res: ServerResponse, status: number, text: string): number => {
    res.writeHead(status, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
    return status;
  };

  const serveDownload = (req: IncomingMessage, res: ServerResponse, url: URL, fileId: string): void => {
    const found = deps.findFile(fileId);
    const { auth, ok } = found ? authorise(req, url, found.meeting) : { auth: 'none' as const, ok: false };
    const record = (status: number): void => void log.push({ fileId, range: req.headers.range ?? null, status, at: clock.now().toISOString(), auth, step: 'download' });
    const fault = take(fileId, ['status', 'html']);
    if (fault?.kind === 'status') return record(plain(res, fault.status ?? 500, 'Internal Server Error'));
    if (fault?.kind === 'html' || !found || !ok) return record(html(res));
    const exp = clock.now().getTime() + FILE_URL_TTL_MS;
    res.writeHead(302, { Location: `${deps.baseUrl()}/rec/file/${encodeURIComponent(fileId)}?exp=${exp}&sig=${sign(fileId, exp)}`, 'Content-Length': 0 });
    res.end();
    record(302);
  };

  const serveFile = (req: IncomingMessage, res: ServerResponse, url: URL, fileId: string): void => {
    const range = req.headers.range ?? null;
    const record = (status: number): void => void log.push({ fileId, range, status, at: clock.now().toISOString(), auth: 'none', step: 'file' });
    const exp = Number(url.searchParams.get('exp'));
    const sig = Buffer.from(url.searchParams.get('sig') ?? '');
    const expected = Buffer.from(sign(fileId, exp));
    const found = deps.findFile(fileId);
    if (!found || sig.length !== expected.length || !timingSafeEqual(sig, expected) || clock.now().getTime() > exp) {
      return record(plain(res, 403, 'Forbidden'));
    }
    const { bytes, contentType } = deps.files.content(found.file);
    const size = bytes.length;
    let start = 0;
    let end = size - 1;
    if (range !== null) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range.trim());
      const from = m ? Number(m[1]) : NaN;
      const to = m?.[2] ? Math.min(Number(m[2]), size - 1) : size - 1;
      if (!Number.isSafeInteger(from) || from >= size || to < from) {
        res.writeHead(416, { 'Content-Range': `bytes */${size}`, 'Content-Length': 0 });
        res.end();
        return record(416);
      }
      start = from;
      end = to;
    }
    const status = range === null ? 200 : 206;
    const body = bytes.subarray(start, end + 1);
    res.writeHead(status, {
      'Content-Type': contentType,
      'Content-Length': body.length,
      'Accept-Ranges': 'bytes',
      ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${size}` } : {}),
    });
    record(status);
    const truncate = take(fileId, ['truncate']);
    if (truncate) {
      // The headers promise the whole body; the connection dies part-way, as on a flaky CDN.
      res.write(body.subarray(0, Math.min(truncate.afterBytes ?? Math.floor(body.length / 2), body.length)), () => res.destroy());
      return;
    }
    res.end(body);
  };

  return {
    add(rule) {
      const armed: Armed = { rule: { ...rule }, remaining: rule.times ?? 1 };
      rules.push(armed);
      return { remove: () => void (rules = rules.filter((r) => r !== armed)) };
    },
    requests: () => log.map((r) => ({ ...r })),
    handle(req, res, url) {
      const m = /^\/rec\/(download|file)\/([^/]+)$/.exec(url.pathname);
      if (!m || (req.method ?? 'GET').toUpperCase() !== 'GET') return false;
      const fileId = decodeURIComponent(m[2] ?? '');
      if (m[1] === 'download') serveDownload(req, res, url, fileId);
      else serveFile(req, res, url, fileId);
      return true;
    },
    reset() {
      rules = [];
      log.length = 0;
    },
  };
}
