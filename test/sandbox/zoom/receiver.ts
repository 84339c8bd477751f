/** A tiny webhook receiver on 127.0.0.1 for the emulator's signed deliveries (real HTTP, no mocks). */
import { createHmac } from 'node:crypto';
import { type IncomingHttpHeaders, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  json: { event: string; event_ts: number; payload: Record<string, unknown>; download_token?: string };
}

/** How to answer: a status (empty body), a status with a JSON body, or 'hang' (never answer). */
export type Answer = number | { status: number; body: unknown } | 'hang';

export interface Receiver {
  url: string;
  received: Received[];
  events(): string[];
  answer: (r: Received) => Answer;
  close(): Promise<void>;
}

export const SECRET = 'webhook-secret-token';

export function verify(r: Received, secret = SECRET): boolean {
  const ts = String(r.headers['x-zm-request-timestamp']);
  const expected = `v0=${createHmac('sha256', secret).update(`v0:${ts}:${r.body}`).digest('hex')}`;
  return r.headers['x-zm-signature'] === expected;
}

/** Answers url_validation correctly for `secret`, everything else with 200, unless `answer` is replaced. */
export async function startReceiver(secret = SECRET): Promise<Receiver> {
  const received: Received[] = [];
  const held: ServerResponse[] = [];
  const receiver: Receiver = {
    url: '',
    received,
    events: () => received.map((r) => r.json.event),
    answer: (r) => {
      if (r.json.event !== 'endpoint.url_validation') return 200;
      const plainToken = String(r.json.payload.plainToken);
      return { status: 200, body: { plainToken, encryptedToken: createHmac('sha256', secret).update(plainToken).digest('hex') } };
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of held) res.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const r: Received = { headers: req.headers, body, json: JSON.parse(body) as Received['json'] };
      received.push(r);
      const a = receiver.answer(r);
      if (a === 'hang') return void held.push(res);
      if (typeof a === 'number') return void res.writeHead(a).end();
      res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/zoom/webhook`;
  return receiver;
}
