import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { virtualClock } from '../../src/clock.ts';
import { createLineClient, type LineClient } from '../../src/line/client.ts';

/**
 * The LINE client against a bare HTTP server that answers what LINE's emulator never would: HTML
 * error pages, empty bodies, no answer at all. (The emulator contract is in contract.test.ts.)
 */
let server: Server | undefined;
let client: LineClient | undefined;
afterEach(async () => {
  await client?.close();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
  client = undefined;
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const push = { method: 'POST' as const, path: '/v2/bot/message/push', body: { to: 'U1', messages: [] }, retryKey: '8f14e45f-ceea-4167-a5d8-4f5b8c2a1e01' };

describe('the LINE client', () => {
  it('sends the token, retry key and JSON body; an HTML error page becomes a response with its text as the reason', async () => {
    let seen: { auth?: string; key?: string; type?: string; body?: string } = {};
    const base = await serve((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen = { auth: req.headers.authorization, key: req.headers['x-line-retry-key'] as string, type: req.headers['content-type'], body };
        res.writeHead(502, { 'content-type': 'text/html', 'x-line-request-id': 'req-1' }).end('<html><body>Bad Gateway</body></html>');
      });
    });
    client = createLineClient(virtualClock('2026-12-01T00:00:00Z'));
    const result = await client.call(base, 'tok', push, 10_000);
    expect(seen).toEqual({ auth: 'Bearer tok', key: push.retryKey, type: 'application/json', body: JSON.stringify(push.body) });
    expect(result).toEqual({ kind: 'response', status: 502, requestId: 'req-1', acceptedRequestId: null, body: undefined, errorMessage: '<html><body>Bad Gateway</body></html>' });
  });

  it('a 2xx with an empty or non-JSON body is still a success, with no body', async () => {
    let n = 0;
    const base = await serve((_req, res) => {
      res.writeHead(200).end(n++ === 0 ? '' : 'not json');
    });
    client = createLineClient(virtualClock('2026-12-01T00:00:00Z'));
    expect(await client.call(base, 'tok', push, 10_000)).toMatchObject({ kind: 'response', status: 200, body: undefined, errorMessage: null });
    expect(await client.call(base, 'tok', push, 10_000)).toMatchObject({ kind: 'response', status: 200, body: undefined, errorMessage: null });
  });

  it('past its deadline on the clock a call is a timeout, and the request is aborted, not left open', async () => {
    let arrived!: () => void;
    const arrival = new Promise<void>((resolve) => (arrived = resolve));
    let closed!: () => void;
    const abort = new Promise<void>((resolve) => (closed = resolve));
    const base = await serve((req) => {
      req.socket.on('close', () => closed());
      arrived();
    });
    const clock = virtualClock('2026-12-01T00:00:00Z');
    client = createLineClient(clock);
    const result = client.call(base, 'tok', push, 10_000);
    await arrival;
    await clock.advance(10_000);
    expect(await result).toEqual({ kind: 'timeout', afterMs: 10_000 });
    await abort;
  });

  it('nobody listening is a network failure with the reason', async () => {
    const base = await serve(() => undefined);
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    server = undefined;
    client = createLineClient(virtualClock('2026-12-01T00:00:00Z'));
    expect(await client.call(base, 'tok', push, 10_000)).toMatchObject({ kind: 'network', error: expect.stringMatching(/ECONNREFUSED|connect/) });
  });
});
