/**
 * The HTTP shell (node:http, for full control of sockets): faults → auth → rate limits → latency → route.
 * Work continues when the client goes away mid-request, as on the real server, so a create the client
 * gave up on still happens.
 */
import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Clock } from '../../clock.ts';
import type { AccountRegistry } from './accounts.ts';
import { type Fault, type FaultRegistry, faultName } from './faults.ts';
import { type Reply, matchRoute, parseJsonObject, replyCode, zoomError } from './http.ts';
import type { Downloads } from './downloads.ts';
import { type ApiDeps, apiRoutes } from './meetings.ts';
import { metricsRoutes } from './metrics.ts';
import { type TokenStore, handleTokenRequest } from './oauth.ts';
import type { RequestLogEntry } from './types.ts';

export interface ServerDeps {
  clock: Clock;
  accounts: AccountRegistry;
  tokens: TokenStore;
  faults: FaultRegistry;
  api: ApiDeps;
  log: RequestLogEntry[];
  latencyMs: number;
  createLatencyMs: number;
  /** The /_emulator control and inspection routes. */
  control: (method: string, path: string, query: URLSearchParams, rawBody: string) => Reply | Promise<Reply>;
  /** `/rec/...`: recording downloads (own auth, own log, streamed bodies). */
  downloads: Downloads;
}

const routes = [...apiRoutes, ...metricsRoutes];

const MAX_LOG = 100_000;

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

export async function startServer(deps: ServerDeps, host: string, port: number): Promise<RunningServer> {
  const closing = new AbortController();
  let baseUrl = '';

  const sleep = async (ms: number): Promise<void> => {
    if (ms <= 0) return; // a 0 ms virtual-clock timer would wait for the next advance()
    await deps.clock.sleep(ms, closing.signal);
  };

  /** Resolves when the client disconnects or the emulator closes. */
  const held = (res: ServerResponse): Promise<void> =>
    new Promise((resolve) => {
      if (closing.signal.aborted || res.destroyed) return resolve();
      res.once('close', () => resolve());
      closing.signal.addEventListener('abort', () => resolve(), { once: true });
    });

  const serveApi = async (req: IncomingMessage, method: string, url: URL, rawBody: string, entry: RequestLogEntry): Promise<Reply> => {
    const path = url.pathname;
    if (path === '/oauth/token') {
      if (method !== 'POST') return zoomError(405, 405, 'Method Not Allowed');
      entry.accountId = url.searchParams.get('account_id');
      await sleep(deps.latencyMs);
      return handleTokenRequest(
        { query: url.searchParams, rawBody, contentType: req.headers['content-type'], authorization: req.headers.authorization },
        deps.accounts,
        deps.tokens,
        baseUrl,
      );
    }
    const match = matchRoute(routes, method, path);
    if (match === undefined) return zoomError(404, 404, 'Not Found');
    if (match === 'method-not-allowed') return zoomError(405, 405, 'Method Not Allowed');
    const auth = deps.tokens.verify(req.headers.authorization);
    if (!auth.ok) return auth.reply;
    entry.accountId = auth.accountId;
    const account = deps.accounts.get(auth.accountId);
    if (!account) return zoomError(401, 124, 'Invalid access token.');
    const limited = deps.api.limiter.admit(account, match.route.category);
    if (limited) return limited;
    await sleep(match.route.slow ? deps.createLatencyMs : deps.latencyMs);
    const body = method === 'GET' || method === 'DELETE' ? undefined : parseJsonObject(rawBody);
    const reply = await match.route.handler({ deps: deps.api, account, query: url.searchParams, body }, match.params);
    return { ...reply, headers: { 'X-RateLimit-Category': match.route.category, ...reply.headers } };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://emulator.invalid');
    const rawBody = await readBody(req);
    if (url.pathname.startsWith('/_emulator/')) {
      send(res, await deps.control(method, url.pathname, url.searchParams, rawBody));
      return;
    }
    if (url.pathname.startsWith('/rec/') && deps.downloads.handle(req, res, url)) return;
    const entry: RequestLogEntry = {
      method,
      path: url.pathname,
      query: url.search,
      accountId: null,
      status: null,
      outcome: 'pending',
      fault: null,
      at: deps.clock.now().toISOString(),
      code: null,
    };
    deps.log.push(entry);
    // Bounded so long benchmarks don't grow without limit; the oldest entries go first.
    if (deps.log.length > MAX_LOG) deps.log.splice(0, deps.log.length - MAX_LOG);
    const drop = (): void => {
      entry.outcome = 'dropped';
      req.socket.destroy();
    };
    const respond = (reply: Reply): void => {
      entry.status = reply.status;
      entry.code = replyCode(reply);
      entry.outcome = 'responded';
      send(res, reply);
    };

    const fault: Fault | undefined = deps.faults.take(method, url.pathname);
    entry.fault = fault ? faultName(fault) : null;
    if (fault && (fault.kind === undefined || fault.kind === 'status')) {
      return respond({ status: fault.status, body: fault.body ?? { code: fault.status, message: 'Internal Error' }, headers: fault.headers });
    }
    if (fault?.kind === 'drop') return drop();
    if (fault?.kind === 'timeout') {
      entry.outcome = 'timeout';
      await held(res);
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'delay') await sleep(fault.ms);

    const reply = await serveApi(req, method, url, rawBody, entry);
    if (fault?.kind === 'after-commit-drop') {
      entry.status = reply.status;
      return drop();
    }
    if (fault?.kind === 'after-commit-error') {
      const status = fault.status ?? 502;
      return respond({ status, body: fault.body ?? { code: status, message: 'Bad Gateway' } });
    }
    respond(reply);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // Closing aborts pending sleeps: those requests just lose their connection.
      if (closing.signal.aborted || res.headersSent) {
        req.socket.destroy();
        return;
      }
      send(res, zoomError(500, 500, `Zoom emulator error: ${err instanceof Error ? err.message : String(err)}`));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  baseUrl = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

  let closed: Promise<void> | undefined;
  return {
    url: baseUrl,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing.abort();
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, reply: Reply): void {
  if (res.destroyed || res.headersSent) return;
  const headers: Record<string, string | number> = {
    'x-zm-trackingid': `v=2.0;clid=us06;rid=WEB_${randomBytes(16).toString('hex')}`,
    ...reply.headers,
  };
  if (reply.body === undefined) {
    res.writeHead(reply.status, headers);
    res.end();
    return;
  }
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
